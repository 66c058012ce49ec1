-- Golden scenario, phase (b): run once the connector has finished its
-- snapshot, so all of it arrives through the binlog. Same rules as
-- a_setup.sql. The last statement inserts the user 'end-of-scenario': a
-- runner has seen everything once that row's record arrived.
SET SESSION sql_mode = 'ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION';
SET SESSION time_zone = '+00:00';
SET TIMESTAMP = 1767229200;
-- Rows_query events: the statement of each change, for include.query.
SET SESSION binlog_rows_query_log_events = ON;

-- The edge rows again, now read from row events instead of SELECTs.
INSERT INTO all_types SELECT id + 10, t_tinyint, t_tinyint_u, t_bool, t_smallint, t_smallint_u,
    t_mediumint, t_mediumint_u, t_int, t_int_u, t_bigint, t_bigint_u, t_decimal, t_decimal_small,
    t_float, t_double, t_bit1, t_bit10, t_bit64, t_date, t_year, t_time0, t_time3, t_time6,
    t_datetime0, t_datetime3, t_datetime6, t_ts0, t_ts3, t_ts6, t_char, t_varchar, t_latin1,
    t_utf8mb4, t_binary, t_varbinary, t_tinyblob, t_blob, t_mediumblob, t_longblob, t_tinytext,
    t_text, t_mediumtext, t_longtext, t_enum, t_set, t_json, d_int, d_varchar, d_decimal,
    d_datetime, d_enum, d_bool FROM all_types WHERE id <= 4 ORDER BY id;
INSERT INTO time_edges SELECT id + 10, t, t0 FROM time_edges ORDER BY id;
INSERT INTO flags SELECT id + 10, f, n, u, t FROM flags ORDER BY id;
UPDATE flags SET f = 0, n = 2, t = -1 WHERE id = 11;

-- Inserts, updates, deletes.
INSERT INTO users (email, is_vip) VALUES ('dee@example.com', TRUE);
INSERT INTO items (name, category, price, inventory) VALUES ('Mug', 'kitchen', 4.50, 100);
INSERT INTO purchases (user_id, item_id, quantity, purchase_price) VALUES (4, 3, 3, 13.50);
SET TIMESTAMP = 1767229260;
UPDATE purchases SET status = 2 WHERE id = 3;
UPDATE items SET inventory = inventory - 3, inventory_updated_at = CURRENT_TIMESTAMP WHERE id = 3;
UPDATE users SET email = NULL, is_vip = NULL WHERE id = 3;
UPDATE all_types SET t_int_u = 0, t_json = JSON_SET(t_json, '$.a.b[0]', 'one'), t_time6 = '-12:00:00.5', t_enum = NULL WHERE id = 11;
UPDATE all_types SET d_int = NULL, d_varchar = 'set' WHERE id = 13;
DELETE FROM purchases WHERE id = 1;
DELETE FROM time_edges WHERE id = 11;

-- A primary-key change.
UPDATE users SET id = 100 WHERE id = 2;

-- Binary keys: an insert, a key change, a delete. A comment in a statement
-- stays in its Rows_query event.
INSERT INTO bin_keys (k, b, v) VALUES (0x0102, 0xFFFE, REPEAT(0x00, 5));
UPDATE bin_keys SET k = 0x0103, v = 0xFBFF /* the key changes */ WHERE k = 0x0102;
DELETE FROM bin_keys WHERE k = 'zz';

-- One transaction over several rows of several tables.
SET TIMESTAMP = 1767229320;
BEGIN;
INSERT INTO users (id, email) VALUES (200, 'tx1@example.com'), (201, 'tx2@example.com');
INSERT INTO purchases (user_id, item_id, quantity, purchase_price) VALUES (200, 1, 1, 19.99), (201, 2, 1, 12345.67);
UPDATE items SET inventory = inventory - 1 WHERE id IN (1, 2);
DELETE FROM users WHERE id = 1;
COMMIT;

-- A schema change, and rows that use the new column.
ALTER TABLE items ADD COLUMN color VARCHAR(20) DEFAULT 'none' AFTER category;
INSERT INTO items (name, category, color, price, inventory) VALUES ('Chair', 'home', 'red', 45.00, 5);
INSERT INTO items (name, category, price, inventory) VALUES ('Desk', 'home', 150.00, 1);
UPDATE items SET color = 'blue' WHERE id = 1;
-- Equal to the row before once column_mappers truncates category to 4
-- characters (updated_at keeps its value: the same frozen timestamp), so
-- that configuration's skip.messages.without.change drops it.
UPDATE items SET category = 'homeware' WHERE id = 1;
DELETE FROM items WHERE id = 2;

-- A TRUNCATE (loadgen --reseed's): a truncate record on the table's topic
-- where skipped.operations lets it through, nothing where it is Debezium's
-- default (t). AUTO_INCREMENT restarts, so the next purchase is id 1 again.
TRUNCATE TABLE purchases;
INSERT INTO purchases (user_id, item_id, quantity, purchase_price) VALUES (100, 1, 2, 39.98);

-- Spatial and VECTOR values from row events; a geometry changing type and SRID.
INSERT INTO geo SELECT id + 10, g, p, p4326, ls, poly, mp, gc, req, v FROM geo ORDER BY id;
UPDATE geo SET g = ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))', 3857), p = NULL,
    v = STRING_TO_VECTOR('[-1, 0.5, 2]') WHERE id = 11;
DELETE FROM geo WHERE id = 12;

INSERT INTO users (email) VALUES ('end-of-scenario');
