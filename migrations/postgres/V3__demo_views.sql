-- Step 3: the demo's views (seeds/000), same names and columns, answering the
-- same questions, read from the maintained tables of steps 1-2. None of them
-- scans all purchases or pageviews except where noted. The demo's SQL bugs are
-- fixed (see analytics/README.md):
--   item_summary: one row per item id (the demo joined per-channel pageview rows,
--     multiplying every purchase sum by the channel count, and grouped by name);
--     item_id is appended as an extra last column so same-named items stay apart.
--   remaining_stock: left join, so items without purchases since their last
--     restock show their whole inventory instead of vanishing.
--   high_value_users: lifetime_value = SUM(purchase_price) (purchase_price is
--     already the line total; the demo multiplied by quantity again).

CREATE VIEW purchase_summary AS
SELECT item_id, revenue, orders, items_sold
FROM agg_item_purchases
WHERE orders > 0;

CREATE VIEW item_summary AS
SELECT i.name AS item_name,
       i.category AS item_category,
       p.items_sold,
       p.orders,
       p.revenue,
       v.pageviews,
       p.orders::double precision / v.pageviews AS conversion_rate,
       i.id AS item_id
FROM items i
JOIN agg_item_purchases p ON p.item_id = i.id AND p.orders > 0
JOIN agg_item_views v ON v.item_id = i.id AND v.pageviews > 0;

CREATE VIEW remaining_stock AS
SELECT i.id AS item_id,
       i.inventory - COALESCE(s.sold_since_restock, 0) AS remaining_stock
FROM items i
LEFT JOIN agg_item_stock s ON s.item_id = i.id;

-- rank() - 1 is exactly "how many items sold more" (ties share a rank).
CREATE VIEW trending_items AS
SELECT item_id,
       (rank() OVER (ORDER BY items_sold DESC) - 1)::bigint AS trend_rank
FROM purchase_summary;

CREATE VIEW item_metadata AS
SELECT rs.item_id AS id, rs.remaining_stock, ti.trend_rank
FROM remaining_stock rs
JOIN trending_items ti ON ti.item_id = rs.item_id;

CREATE VIEW high_value_users AS
SELECT u.id, u.email, a.lifetime_value, a.purchases
FROM users u
JOIN agg_user_purchases a ON a.user_id = u.id
WHERE a.lifetime_value > 10000;

-- Reads the purchases mirror through the partial index on status = 0.
CREATE VIEW incomplete_purchases AS
SELECT u.id AS user_id,
       u.email,
       u.is_vip,
       p.item_id,
       p.status,
       p.quantity,
       p.purchase_price,
       p.created_at,
       p.updated_at
FROM users u
JOIN purchases p ON p.user_id = u.id
WHERE p.status = 0;

-- The question: users who browsed but have had no pageview for 3 minutes
-- (the demo's temporal filter listed every (user, minute) older than 3 minutes,
-- including users still browsing). visited_at_minute is the minute of the
-- user's last pageview.
CREATE VIEW inactive_users_last_3_mins AS
SELECT user_id,
       date_trunc('minute', last_pageview_at) AS visited_at_minute
FROM user_activity
WHERE last_pageview_at <= now() - interval '3 minutes';

CREATE VIEW abandoned_cart AS
SELECT DISTINCT ip.user_id, ip.email, ip.item_id, ip.purchase_price, ip.status
FROM incomplete_purchases ip
JOIN inactive_users_last_3_mins iu ON iu.user_id = ip.user_id;
