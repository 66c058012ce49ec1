-- Step 4: the seeds' other questions, as views over maintained tables.

-- Order trends: orders, revenue and units per minute of purchases.created_at.
CREATE VIEW order_trends AS
SELECT minute, orders, revenue, items_sold
FROM agg_orders_per_minute
WHERE orders > 0;

-- Low-stock alerts: items whose remaining stock is below the threshold the
-- alert fired with, and when it fired.
CREATE VIEW low_stock_alerts AS
SELECT a.item_id,
       i.name AS item_name,
       rs.remaining_stock,
       a.threshold,
       a.fired_at
FROM low_stock_alert_state a
JOIN items i ON i.id = a.item_id
JOIN remaining_stock rs ON rs.item_id = a.item_id;

-- Conversion funnel by acquisition channel (multi-touch: a user counts in every
-- channel they arrived from): visitors -> product viewers -> buyers (product
-- viewers from that channel with at least one completed purchase, status <> 0).
CREATE VIEW conversion_funnel AS
SELECT uc.channel,
       count(*) AS visitors,
       count(*) FILTER (WHERE uc.product_pageviews > 0) AS product_viewers,
       count(*) FILTER (WHERE uc.product_pageviews > 0 AND a.completed > 0) AS buyers,
       sum(uc.pageviews)::bigint AS pageviews,
       sum(uc.product_pageviews)::bigint AS product_pageviews,
       (count(*) FILTER (WHERE uc.product_pageviews > 0 AND a.completed > 0))::double precision
           / count(*) AS conversion_rate
FROM user_channels uc
LEFT JOIN agg_user_purchases a ON a.user_id = uc.user_id
GROUP BY uc.channel;

-- Top sellers: items by units sold (rank 1 = best).
CREATE VIEW top_sellers AS
SELECT ps.item_id,
       i.name AS item_name,
       i.category AS item_category,
       ps.items_sold,
       ps.orders,
       ps.revenue,
       rank() OVER (ORDER BY ps.items_sold DESC) AS sales_rank
FROM purchase_summary ps
LEFT JOIN items i ON i.id = ps.item_id;

-- Most viewed products: product pageviews per item, all channels.
CREATE VIEW most_viewed_products AS
SELECT v.item_id,
       i.name AS item_name,
       i.category AS item_category,
       v.pageviews,
       rank() OVER (ORDER BY v.pageviews DESC) AS view_rank
FROM agg_item_views v
LEFT JOIN items i ON i.id = v.item_id
WHERE v.pageviews > 0;
