-- Step 6: settings analytics writes at start, and every object the seed demo's
-- SQL names that earlier steps did not create, so its queries run unchanged
-- (seeds/000 and the abandoned-cart guide that adds `last_user_visit`).

-- One row. analytics overwrites it at start from its configuration
-- (ANALYTICS_INACTIVITY_WINDOW_SECS, ANALYTICS_PAGEVIEW_LOG_SECS), so with
-- several instances the one started last decides.
CREATE TABLE analytics_settings (
    only_row               boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- A user without a pageview for this long is inactive (the demo: 3 minutes).
    inactivity_window      interval NOT NULL DEFAULT interval '3 minutes',
    -- How long pageview_log keeps a pageview, by received_at; 0 keeps none.
    pageview_log_retention interval NOT NULL DEFAULT interval '15 minutes'
);
INSERT INTO analytics_settings DEFAULT VALUES;

-- The window is a setting now (tests use seconds); the name stays the demo's.
CREATE OR REPLACE VIEW inactive_users_last_3_mins AS
SELECT user_id,
       date_trunc('minute', last_pageview_at) AS visited_at_minute
FROM user_activity
WHERE last_pageview_at <= now() - (SELECT inactivity_window FROM analytics_settings);

-- The recent pageviews themselves, appended by each batch in its transaction
-- (so exactly once) and pruned past the retention. The aggregates never read
-- it: it exists for the seed's ad-hoc queries over the raw stream.
CREATE TABLE pageview_log (
    user_id       bigint NOT NULL,
    pageview_type text   NOT NULL,  -- 'products' or 'profiles'
    target_id     bigint,
    channel       text,
    received_at   bigint NOT NULL   -- Unix seconds, as in the pageview JSON
);
CREATE INDEX pageview_log_received_at ON pageview_log (received_at);

-- The seed's Kafka source of raw pageview bytes (Materialize's FORMAT BYTES:
-- one bytea column `data`), rebuilt as the JSON loadgen sends, key order kept.
CREATE VIEW json_pageviews AS
SELECT convert_to(
           json_build_object(
               'user_id', user_id,
               'url', '/' || pageview_type || '/' || target_id,
               'channel', channel,
               'received_at', received_at)::text,
           'UTF8') AS data
FROM pageview_log;

-- The seed's v_pageviews, same columns and types, read from the log directly
-- (the seed's definition parses json_pageviews; it gives the same rows).
CREATE VIEW v_pageviews AS
SELECT user_id::int AS user_id,
       pageview_type,
       target_id::int AS target_id,
       channel,
       received_at
FROM pageview_log;

-- The abandoned-cart guide's last_user_visit (DISTINCT ON over v_pageviews),
-- from the maintained newest pageview per user: exact for all time, not only
-- the log's retention.
CREATE VIEW last_user_visit AS
SELECT user_id::int AS user_id,
       extract(epoch FROM last_pageview_at)::bigint AS received_at
FROM user_activity;

-- Materialize's mz_now() as the seed's temporal filters use it: compared with
-- epoch milliseconds (`mz_now() >= (received_at*1000 + 180000)::numeric`).
CREATE FUNCTION mz_now() RETURNS numeric
LANGUAGE sql STABLE
AS $$ SELECT round(extract(epoch FROM now()) * 1000) $$;

-- Materialize's `double` (item_summary casts `::double`); Postgres spells it
-- double precision.
CREATE DOMAIN double AS double precision;
