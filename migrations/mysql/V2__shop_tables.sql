-- The demo's three tables, with the columns, types and defaults of the original
-- bootstrap SQL. Differences, on purpose:
-- * no inline `REFERENCES user(id)`: MySQL ignored them, and MariaDB 10.5+ rejects
--   them (the tables are `users` and `items`, not `user` and `item`);
-- * IF NOT EXISTS, so applying the file by hand twice is harmless.
-- SERIAL is BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE.
CREATE TABLE IF NOT EXISTS shop.users (
    id SERIAL PRIMARY KEY,
    email VARCHAR(255),
    is_vip BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS shop.items (
    id SERIAL PRIMARY KEY,
    name VARCHAR(100),
    category VARCHAR(100),
    price DECIMAL(7,2),
    inventory INT,
    inventory_updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS shop.purchases (
    id SERIAL PRIMARY KEY,
    user_id BIGINT UNSIGNED,
    item_id BIGINT UNSIGNED,
    status TINYINT UNSIGNED DEFAULT 1,
    quantity INT UNSIGNED DEFAULT 1,
    purchase_price DECIMAL(12,2),
    deleted BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);
