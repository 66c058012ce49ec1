-- Step 8: what a dashboard asks of `incomplete_purchases` and `abandoned_cart`
-- (the newest rows, and how many / how much), without reading every
-- incomplete purchase. The full views stay unchanged: every row, as the demo
-- defined them (~109k and ~22k rows at 1M purchases: their cost is mostly
-- sending the rows).
--
-- What is maintained, and by whom:
--   - agg_user_purchases.incomplete / incomplete_value: per user, the count and
--     the sum of purchase_price of the mirrored purchases with status = 0.
--     Written by the same per-user delta upsert as `purchases` / `completed`
--     (analytics/src/fold.rs: one more pair of additive deltas, no extra
--     statement), so exactly once with the batch's offsets, and cleared by a
--     purchases TRUNCATE with the rest of the row (store::clear_truncated).
--   - purchases_incomplete_newest: the incomplete purchases in "newest first"
--     order, a partial index (one index entry per status-0 purchase row
--     written; rows with another status are not in it).
--
-- Upgrading: an instance of an earlier version does not write the two new
-- columns; stop every instance of an earlier version before starting this one
-- (as for step 5).

ALTER TABLE agg_user_purchases
    ADD COLUMN incomplete       bigint  NOT NULL DEFAULT 0,  -- status = 0
    ADD COLUMN incomplete_value numeric NOT NULL DEFAULT 0;  -- their purchase_price

-- Backfill from the mirror; the ALTER above holds agg_user_purchases until
-- commit, the lock below keeps purchases still while it is read.
LOCK TABLE purchases IN SHARE MODE;

UPDATE agg_user_purchases a
SET incomplete = s.n, incomplete_value = s.v
FROM (SELECT user_id, count(*) AS n, COALESCE(sum(purchase_price), 0) AS v
      FROM purchases
      WHERE status = 0 AND user_id IS NOT NULL
      GROUP BY user_id) s
WHERE a.user_id = s.user_id;

-- "Newest first" = created_at descending (a NULL created_at last), then id.
CREATE INDEX purchases_incomplete_newest
    ON purchases (created_at DESC NULLS LAST, id DESC) WHERE status = 0;

-- The newest `n` rows of incomplete_purchases, with the purchase id: a
-- backward walk of purchases_incomplete_newest joined to users by primary key
-- (stops after n matches). Same rows as the view, ordered.
CREATE FUNCTION incomplete_purchases_page(n integer)
RETURNS TABLE (purchase_id bigint, user_id bigint, email text, is_vip boolean,
               item_id bigint, status integer, quantity bigint,
               purchase_price numeric, created_at timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT p.id, u.id, u.email, u.is_vip, p.item_id, p.status, p.quantity,
           p.purchase_price, p.created_at, p.updated_at
    FROM purchases p
    JOIN users u ON u.id = p.user_id
    WHERE p.status = 0
    ORDER BY p.created_at DESC NULLS LAST, p.id DESC
    LIMIT n
$$;

-- How many rows incomplete_purchases has, of how many users, worth how much:
-- one row per user with an incomplete purchase (users, not purchases).
CREATE VIEW incomplete_purchases_totals AS
SELECT COALESCE(sum(a.incomplete), 0)::bigint AS purchases,
       count(*) AS users,
       COALESCE(sum(a.incomplete_value), 0) AS value
FROM agg_user_purchases a
JOIN users u ON u.id = a.user_id
WHERE a.incomplete > 0;

-- Abandoned carts: incomplete purchases of users inactive for the window
-- (inactive_users_last_3_mins). A cart is abandoned when its user's last
-- pageview became window-old: `abandoned_at`. Inactivity depends on now(),
-- so nothing about it can be maintained by the fold; what is maintained is
-- which users have incomplete purchases and how many.
--
-- Counts and value: the inactive users (user_activity, one row per user who
-- browsed) joined to the per-user incomplete counts. `carts` counts
-- purchases, like abandoned_cart_notifications; the demo's abandoned_cart
-- view groups by (user_id, email, item_id, purchase_price, status), so one
-- user's two carts of the same item at the same price are one row there.
CREATE VIEW abandoned_cart_totals AS
SELECT COALESCE(sum(a.incomplete), 0)::bigint AS carts,
       count(*) AS users,
       COALESCE(sum(a.incomplete_value), 0) AS value
FROM user_activity ua
JOIN agg_user_purchases a ON a.user_id = ua.user_id AND a.incomplete > 0
JOIN users u ON u.id = ua.user_id
WHERE ua.last_pageview_at <= now() - (SELECT inactivity_window FROM analytics_settings);

-- The newest `n` abandoned carts: the inactive users sorted by their last
-- pageview, newest first (a sort of the inactive users' rows of
-- user_activity), then, user by user until n carts are found, the user's
-- carts through purchases_incomplete (one index probe per user; a user
-- without a cart costs just that probe) and the user's row by primary key.
CREATE FUNCTION abandoned_cart_page(n integer)
RETURNS TABLE (purchase_id bigint, user_id bigint, email text, item_id bigint,
               purchase_price numeric, status integer, quantity bigint,
               created_at timestamptz, abandoned_at timestamptz)
LANGUAGE sql STABLE
AS $$
    WITH s AS (SELECT inactivity_window AS w FROM analytics_settings)
    SELECT c.id, r.user_id, c.email, c.item_id, c.purchase_price, c.status,
           c.quantity, c.created_at, r.last_pageview_at + (SELECT w FROM s)
    FROM (SELECT ua.user_id, ua.last_pageview_at
          FROM user_activity ua
          WHERE ua.last_pageview_at <= now() - (SELECT w FROM s)
          ORDER BY ua.last_pageview_at DESC, ua.user_id DESC) r
    CROSS JOIN LATERAL (
        SELECT p.id, u.email, p.item_id, p.purchase_price, p.status, p.quantity, p.created_at
        FROM purchases p
        JOIN users u ON u.id = p.user_id
        WHERE p.user_id = r.user_id AND p.status = 0
        ORDER BY p.created_at DESC NULLS LAST, p.id DESC
        LIMIT n
    ) c
    ORDER BY r.last_pageview_at DESC, r.user_id DESC, c.created_at DESC NULLS LAST, c.id DESC
    LIMIT n
$$;
