-- Step 1: the bookkeeping every batch transaction writes.
--
-- Mirror tables hold, per primary key, the last row analytics applied from the
-- Debezium stream (`after` of the newest event). Folding a change subtracts the
-- mirrored row's contribution and adds the new row's, so a re-sent event (cdc
-- restart) is a no-op: invariant 4 of the architecture.
--
-- consumer_offsets holds the next Kafka offset to read per (group, topic,
-- partition); it is written in the same transaction as the changes the batch
-- made (invariant 3), so a batch is applied exactly once.
--
-- freshness holds, per input stream, the age of the newest source event of the
-- last committed batch (MySQL commit time / pageview received_at -> commit).

CREATE TABLE users (
    id         bigint PRIMARY KEY,
    email      text,
    is_vip     boolean,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE items (
    id                   bigint PRIMARY KEY,
    name                 text,
    category             text,
    price                numeric,
    inventory            bigint,
    inventory_updated_at timestamptz,
    created_at           timestamptz,
    updated_at           timestamptz
);

CREATE TABLE purchases (
    id             bigint PRIMARY KEY,
    user_id        bigint,
    item_id        bigint,
    status         integer,
    quantity       bigint,
    purchase_price numeric,
    deleted        boolean,
    created_at     timestamptz,
    updated_at     timestamptz
);

-- remaining_stock is recomputed per item on restock from this index (one
-- item's purchases, never all purchases).
CREATE INDEX purchases_item_created ON purchases (item_id, created_at);
-- incomplete_purchases / abandoned_cart read only status = 0 rows.
CREATE INDEX purchases_incomplete ON purchases (user_id) WHERE status = 0;

CREATE TABLE consumer_offsets (
    group_id    text   NOT NULL,
    topic       text   NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

CREATE TABLE freshness (
    stream          text PRIMARY KEY,      -- 'cdc' or 'pageviews'
    newest_event_at timestamptz NOT NULL,  -- MySQL commit time / pageview received_at
    committed_at    timestamptz NOT NULL,
    age_ms          bigint NOT NULL,       -- committed_at - newest_event_at
    batch_records   bigint NOT NULL
);
