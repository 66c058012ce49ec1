-- Step 9: what Postgres does per batch, made cheaper (measured in the
-- 1M-pageview drain of `make bench`: Postgres 4.1-4.3 CPU-s -> 2.1 s).
--
-- 1. The per-key aggregates are updated in place (HOT) instead of through
--    their primary key index. Each batch upserts every key it touched once;
--    an update stays on its row's page, with no new index entry, only when
--    the page has room for the new version. At the default fillfactor (100)
--    pages are full and ~95% of the updates were not HOT (user_channels:
--    10k of 159k); at 50 a page has room for one new version of each of its
--    rows, and the next batch's visit prunes the old ones, so ~99% are.
--    The tables are small (one row per key: user, item, user x channel), so
--    twice the pages cost little. Applies to pages written from now on; a
--    `VACUUM FULL <table>` applies it to an existing table at once.
--
-- 2. pageview_log loses its index on received_at. It served only the
--    retention's DELETE, which each batch ran in its transaction; it cost
--    every logged pageview an index insertion: 1-2 of Postgres' 3.1-4.1
--    CPU-s per 1M pageviews in the drain (2.1 s without it), and ~0.6-0.9 s
--    per 1M even when received_at only grows. The retention now runs on its
--    own connection, off the batches' path (analytics/src/retention.rs): a
--    sequential DELETE every half retention, so the table holds up to 1.5
--    retentions and each pageview is read about 3 times in its life, which
--    costs Postgres less than the index did (~0.2 us per row read).
--
-- 3. So that readers still see exactly the retention, whenever the last
--    prune ran, the two views over the log now filter on it (an InitPlan
--    read once per query). Their columns and rows are otherwise unchanged.

-- Upgrading: an instance of an earlier version still prunes in each batch,
-- which without the index reads the whole log every batch; stop every
-- instance of an earlier version before starting this one (as for step 5).

ALTER TABLE item_pageviews     SET (fillfactor = 50);
ALTER TABLE agg_item_views     SET (fillfactor = 50);
ALTER TABLE user_activity      SET (fillfactor = 50);
ALTER TABLE user_channels      SET (fillfactor = 50);
ALTER TABLE agg_item_purchases SET (fillfactor = 50);
ALTER TABLE agg_user_purchases SET (fillfactor = 50);
ALTER TABLE agg_item_stock     SET (fillfactor = 50);

DROP INDEX pageview_log_received_at;

CREATE OR REPLACE VIEW json_pageviews AS
SELECT convert_to(
           json_build_object(
               'user_id', user_id,
               'url', '/' || pageview_type || '/' || target_id,
               'channel', channel,
               'received_at', received_at)::text,
           'UTF8') AS data
FROM pageview_log
WHERE received_at >= (SELECT extract(epoch FROM now() - pageview_log_retention)::bigint
                      FROM analytics_settings);

CREATE OR REPLACE VIEW v_pageviews AS
SELECT user_id::int AS user_id,
       pageview_type,
       target_id::int AS target_id,
       channel,
       received_at
FROM pageview_log
WHERE received_at >= (SELECT extract(epoch FROM now() - pageview_log_retention)::bigint
                      FROM analytics_settings);
