-- Step 7: the seed's pushes (analytics/src/push.rs).
--
-- The demo streamed `high_value_users` back out to Kafka (a Debezium-envelope
-- sink) and notified on abandoned carts. Both are derived from committed
-- summary tables by a periodic sweep whose transaction writes, together:
--   - the new state (what has been published / notified), so a restart never
--     emits a change twice nor misses one;
--   - the events to send, in `push_outbox`;
--   - `NOTIFY abandoned_cart` (Postgres delivers it only if the transaction
--     commits).
-- A publisher sends outbox rows to Kafka in id order and deletes them after
-- the broker acknowledged them (at-least-once; a crash between the ack and
-- the delete re-sends the same events, in the same order).

-- The high-value set as last published: one row per user in the set.
CREATE TABLE high_value_users_published (
    user_id        bigint PRIMARY KEY,
    email          text,
    lifetime_value numeric NOT NULL,
    purchases      bigint  NOT NULL
);

-- One row per cart ever notified: an incomplete purchase (status 0) of a user
-- inactive for the window. The primary key is what makes "notified once" hold.
CREATE TABLE abandoned_cart_notifications (
    purchase_id    bigint PRIMARY KEY,
    user_id        bigint NOT NULL,
    email          text,
    item_id        bigint,
    purchase_price numeric,
    quantity       bigint,
    created_at     timestamptz,
    notified_at    timestamptz NOT NULL
);
-- The dashboard lists the newest notifications.
CREATE INDEX abandoned_cart_notifications_notified
    ON abandoned_cart_notifications (notified_at DESC, purchase_id DESC);

-- Events waiting for Kafka. `stream` names the push ('high_value_users' or
-- 'abandoned_carts'); the publisher maps it to the configured topic. `payload`
-- is the event as JSON (the high-value envelope is Avro-encoded at send time,
-- with the schema id the registry returns then).
CREATE TABLE push_outbox (
    id         bigserial PRIMARY KEY,
    stream     text   NOT NULL,
    key        bigint NOT NULL,
    payload    jsonb  NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Where the abandoned-cart sweep left off, so a sweep reads only what changed:
-- users whose last pageview is newer than the newest one already inactive at
-- the previous sweep (they just crossed the window) and purchases above the
-- highest id seen. A periodic full sweep catches the rest (a pageview that
-- arrived late with an old timestamp, a purchase committed out of id order,
-- a status set back to 0).
CREATE TABLE push_sweep_state (
    only_row           boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    inactive_watermark timestamptz,
    purchase_watermark bigint NOT NULL DEFAULT 0
);
INSERT INTO push_sweep_state DEFAULT VALUES;
