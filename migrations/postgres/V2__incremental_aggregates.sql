-- Step 2: aggregate tables maintained incrementally, one delta upsert per batch
-- (INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x). Deltas are additive,
-- so two instances folding different partitions into the same row in concurrent
-- transactions stay correct (the row lock serialises them). Rows whose counts
-- fall to zero are kept and filtered by the views.

-- purchase_summary: per item, over every purchase row present in MySQL.
CREATE TABLE agg_item_purchases (
    item_id    bigint PRIMARY KEY,
    revenue    numeric NOT NULL DEFAULT 0,
    orders     bigint  NOT NULL DEFAULT 0,
    items_sold bigint  NOT NULL DEFAULT 0
);

-- item_pageviews is itself maintained (product pageviews by item and channel).
CREATE TABLE item_pageviews (
    item_id   bigint NOT NULL,
    channel   text   NOT NULL,
    pageviews bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, channel)
);

-- Product pageviews per item, all channels (item_summary, most_viewed_products).
CREATE TABLE agg_item_views (
    item_id   bigint PRIMARY KEY,
    pageviews bigint NOT NULL DEFAULT 0
);

-- remaining_stock: quantity of the item's purchases created after the item's
-- current inventory_updated_at. Purchases add deltas; an item change (restock)
-- recomputes its row from purchases_item_created.
CREATE TABLE agg_item_stock (
    item_id            bigint PRIMARY KEY,
    sold_since_restock bigint NOT NULL DEFAULT 0
);

-- high_value_users and the funnel's buyers: per user.
CREATE TABLE agg_user_purchases (
    user_id        bigint PRIMARY KEY,
    purchases      bigint  NOT NULL DEFAULT 0,
    completed      bigint  NOT NULL DEFAULT 0,  -- status <> 0
    lifetime_value numeric NOT NULL DEFAULT 0
);

-- inactive_users_last_3_mins: the newest pageview per user (GREATEST upsert);
-- the view filters by now() so the window is right whenever it is queried.
CREATE TABLE user_activity (
    user_id          bigint PRIMARY KEY,
    last_pageview_at timestamptz NOT NULL
);

-- conversion_funnel: pageviews per user and acquisition channel.
CREATE TABLE user_channels (
    user_id           bigint NOT NULL,
    channel           text   NOT NULL,
    pageviews         bigint NOT NULL DEFAULT 0,
    product_pageviews bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, channel)
);

-- order_trends: per minute of purchases.created_at.
CREATE TABLE agg_orders_per_minute (
    minute     timestamptz PRIMARY KEY,
    orders     bigint  NOT NULL DEFAULT 0,
    revenue    numeric NOT NULL DEFAULT 0,
    items_sold bigint  NOT NULL DEFAULT 0
);

-- low_stock_alerts: one row per item whose remaining stock is below the
-- threshold, with the time the alert fired (the commit that crossed it). The
-- row is removed when stock is back at or above the threshold (restock).
CREATE TABLE low_stock_alert_state (
    item_id            bigint PRIMARY KEY,
    threshold          bigint NOT NULL,
    remaining_at_fire  bigint NOT NULL,
    fired_at           timestamptz NOT NULL
);
