-- Step 5: the conversion funnel as a maintained table (one row per channel)
-- instead of a GROUP BY over every (user, channel) pair at query time.
--
-- Pageview batches add counts and, for a (user, channel) pair's first pageview
-- or first product pageview, a visitor / product viewer (and a buyer when the
-- user has a completed purchase). Purchase batches that flip a user's buyer
-- status (agg_user_purchases.completed crossing zero) add or remove that user
-- from `buyers` of every channel they viewed products from. Both sides take a
-- per-user advisory lock before reading the other side's table, so two
-- instances folding a user's pageviews and purchases concurrently count the
-- user exactly once. user_channels stays: the purchase side reads it.
CREATE TABLE agg_channel_funnel (
    channel           text PRIMARY KEY,
    visitors          bigint NOT NULL DEFAULT 0,
    product_viewers   bigint NOT NULL DEFAULT 0,
    buyers            bigint NOT NULL DEFAULT 0,
    pageviews         bigint NOT NULL DEFAULT 0,
    product_pageviews bigint NOT NULL DEFAULT 0
);

-- Backfill from what earlier versions maintained; the lock keeps instances of
-- an earlier version from committing in between.
LOCK TABLE user_channels, agg_user_purchases IN SHARE MODE;

INSERT INTO agg_channel_funnel
SELECT uc.channel,
       count(*),
       count(*) FILTER (WHERE uc.product_pageviews > 0),
       count(*) FILTER (WHERE uc.product_pageviews > 0 AND a.completed > 0),
       sum(uc.pageviews)::bigint,
       sum(uc.product_pageviews)::bigint
FROM user_channels uc
LEFT JOIN agg_user_purchases a ON a.user_id = uc.user_id
GROUP BY uc.channel;

CREATE OR REPLACE VIEW conversion_funnel AS
SELECT channel,
       visitors,
       product_viewers,
       buyers,
       pageviews,
       product_pageviews,
       buyers::double precision / visitors AS conversion_rate
FROM agg_channel_funnel
WHERE visitors > 0;
