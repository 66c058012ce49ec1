-- Golden scenario, phase (a): run before the connector starts, so all of it
-- arrives through the snapshot. The runner executes this file statement by
-- statement (split on ";" at line ends) on one connection whose default
-- database is the scenario's fresh database; no statement names a database,
-- so the same file serves any database name.
--
-- Determinism: every statement runs with a fixed session clock (SET
-- TIMESTAMP), so DEFAULT CURRENT_TIMESTAMP and ON UPDATE CURRENT_TIMESTAMP
-- give the same values on every run, and in UTC. sql_mode leaves out
-- NO_ZERO_DATE, NO_ZERO_IN_DATE and STRICT_*, so zero dates can be stored.
SET SESSION sql_mode = 'ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION';
SET SESSION time_zone = '+00:00';
SET TIMESTAMP = 1767225600;

-- The demo's three tables, as migrations/mysql/V2__shop_tables.sql defines them.
CREATE TABLE users (
    id SERIAL PRIMARY KEY,
    email VARCHAR(255),
    is_vip BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

CREATE TABLE items (
    id SERIAL PRIMARY KEY,
    name VARCHAR(100),
    category VARCHAR(100),
    price DECIMAL(7,2),
    inventory INT,
    inventory_updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

CREATE TABLE purchases (
    id SERIAL PRIMARY KEY,
    user_id BIGINT UNSIGNED,
    item_id BIGINT UNSIGNED,
    status TINYINT UNSIGNED DEFAULT 1 COMMENT 'order status: 1 new, 2 paid',
    quantity INT UNSIGNED DEFAULT 1,
    purchase_price DECIMAL(12,2),
    deleted BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

-- Every MySQL column type the connector maps, with its edge values.
CREATE TABLE all_types (
    id INT NOT NULL PRIMARY KEY,
    t_tinyint TINYINT,
    t_tinyint_u TINYINT UNSIGNED,
    t_bool BOOLEAN,
    t_smallint SMALLINT,
    t_smallint_u SMALLINT UNSIGNED,
    t_mediumint MEDIUMINT,
    t_mediumint_u MEDIUMINT UNSIGNED,
    t_int INT,
    t_int_u INT UNSIGNED,
    t_bigint BIGINT,
    t_bigint_u BIGINT UNSIGNED,
    t_decimal DECIMAL(65,30),
    t_decimal_small DECIMAL(7,2),
    t_float FLOAT,
    t_double DOUBLE,
    t_bit1 BIT(1),
    t_bit10 BIT(10),
    t_bit64 BIT(64),
    t_date DATE,
    t_year YEAR,
    t_time0 TIME,
    t_time3 TIME(3),
    t_time6 TIME(6),
    t_datetime0 DATETIME,
    t_datetime3 DATETIME(3),
    t_datetime6 DATETIME(6),
    t_ts0 TIMESTAMP NULL,
    t_ts3 TIMESTAMP(3) NULL,
    t_ts6 TIMESTAMP(6) NULL,
    t_char CHAR(10),
    t_varchar VARCHAR(50),
    t_latin1 VARCHAR(20) CHARACTER SET latin1,
    t_utf8mb4 VARCHAR(20) CHARACTER SET utf8mb4,
    t_binary BINARY(4),
    t_varbinary VARBINARY(16),
    t_tinyblob TINYBLOB,
    t_blob BLOB,
    t_mediumblob MEDIUMBLOB,
    t_longblob LONGBLOB,
    t_tinytext TINYTEXT,
    t_text TEXT,
    t_mediumtext MEDIUMTEXT,
    t_longtext LONGTEXT,
    t_enum ENUM('small','medium','large'),
    t_set SET('a','b','c'),
    t_json JSON,
    d_int INT DEFAULT 42,
    d_varchar VARCHAR(10) DEFAULT 'dflt',
    d_decimal DECIMAL(5,2) DEFAULT 1.50,
    d_datetime DATETIME DEFAULT '2020-02-29 12:34:56',
    d_enum ENUM('x','y') DEFAULT 'y',
    d_bool BOOLEAN DEFAULT TRUE
);

-- TIME values outside 00:00..24:00 (Debezium's connect mode cannot carry them).
CREATE TABLE time_edges (
    id INT NOT NULL PRIMARY KEY,
    t TIME(6),
    t0 TIME NOT NULL DEFAULT '00:00:00'
);

INSERT INTO users (email, is_vip) VALUES ('ann@example.com', TRUE), ('bob@example.com', FALSE), ('cy@example.com', NULL);
INSERT INTO items (name, category, price, inventory) VALUES ('Lamp', 'home', 19.99, 10), ('Tent', 'outdoor', 12345.67, 0);
INSERT INTO purchases (user_id, item_id, status, quantity, purchase_price) VALUES (1, 1, 1, 2, 39.98), (2, 2, 255, 4294967295, 9999999999.99);

-- 1: maxima; 2: minima; 3: zero dates, small fractions, defaults taken;
-- 4: NULL everywhere, also in the columns that have defaults.
-- Not here: dates MySQL accepts under ALLOW_INVALID_DATES such as
-- '2024-02-30': real Debezium 3.6.3 stops with "Error while deserializing
-- binlog data of datetimeV2: Invalid date 'FEBRUARY 30'" when it streams one.
INSERT INTO all_types VALUES (1,
    127, 255, 1, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
    9223372036854775807, 18446744073709551615,
    99999999999999999999999999999999999.999999999999999999999999999999, 99999.99,
    3.40282e38, 1.7976931348623157e308,
    b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111',
    '9999-12-31', 2155, '838:59:59', '838:59:59.000', '838:59:59.000000',
    '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999',
    '2038-01-19 03:14:07', '2038-01-19 03:14:07.999', '2038-01-19 03:14:07.999999',
    'abc', 'héllo wörld', 'café ñ', '😀 emoji ✓', 0x00FF10, 0xDEADBEEF00,
    0x00, 0x0102030405, REPEAT(0xAB, 300), REPEAT(0xCD, 300),
    'tiny', 'text ü', REPEAT('m', 300), REPEAT('L', 300),
    'large', 'a,c', '{"a": {"b": [1, 2.5, "x", null, true, {"c": []}]}, "d": "ü", "e": -0.0, "f": 18446744073709551615}',
    7, 'seven', 999.99, '2000-01-01 00:00:00', 'x', FALSE);
INSERT INTO all_types VALUES (2,
    -128, 0, 0, -32768, 0, -8388608, 0, -2147483648, 0,
    -9223372036854775808, 0,
    -99999999999999999999999999999999999.999999999999999999999999999999, -99999.99,
    -3.40282e38, -1.7976931348623157e308,
    b'0', b'0', b'0',
    '1000-01-01', 1901, '-838:59:59', '-838:59:59.000', '-838:59:59.000000',
    '1000-01-01 00:00:00', '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.000000',
    '1970-01-01 00:00:01', '1970-01-01 00:00:01.000', '1970-01-01 00:00:01.000000',
    '', '', '', '', X'', X'',
    X'', X'', X'', X'',
    '', '', '', '',
    'small', '', '[]',
    -1, '', -999.99, '1000-01-01 00:00:00', 'x', FALSE);
INSERT INTO all_types (id, t_tinyint, t_decimal, t_decimal_small, t_float, t_double, t_bit64,
    t_date, t_year, t_time0, t_time3, t_time6, t_datetime0, t_datetime3, t_datetime6,
    t_ts0, t_ts3, t_ts6, t_char, t_enum, t_set, t_json) VALUES (3,
    -1, 0.000000000000000000000000000001, 0.01, 1.5, 0.1, b'1000000000000000000000000000000000000000000000000000000000000000',
    '0000-00-00', 0, '00:00:00', '-00:00:00.001', '23:59:59.999999',
    '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '2024-02-29 10:00:00.000001',
    '0000-00-00 00:00:00', '2024-02-29 12:00:00.5', '2026-01-01 00:00:00.000001',
    'pad  ', 'medium', 'a,b,c', '{"nested": {"deeper": {"deepest": [[1], [2, [3]]]}}, "s": "quote \\" and \\\\"}');
INSERT INTO all_types VALUES (4,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL);

INSERT INTO time_edges VALUES (1, '-838:59:59.000000', '-838:59:59'), (2, '838:59:59.000000', '838:59:59'),
    (3, '24:00:00.000000', '24:00:00'), (4, '23:59:59.999999', '23:59:59'), (5, '-00:00:00.000001', '-00:00:01'),
    (6, '100:30:15.5', '00:00:00'), (7, NULL, '12:00:00');

-- Binary values in a key, in columns with defaults and in a BLOB: what
-- binary.handling.mode changes (the schema's default included). SHOW CREATE
-- TABLE, which Debezium parses, writes the defaults as 'ab\0', '''\n' and
-- 0xC3A9FF (not UTF-8), and q's as 'it''s a \\ b'; information_schema
-- writes 0x6162, 0x270A, 0xC3A9FF and the unescaped text.
CREATE TABLE bin_keys (
    k VARBINARY(8) NOT NULL PRIMARY KEY,
    b BINARY(3) DEFAULT 'ab',
    v BLOB,
    y VARBINARY(4) DEFAULT 0x270A,
    x VARBINARY(4) DEFAULT 0xC3A9FF,
    q VARCHAR(12) DEFAULT 'it''s a \\ b'
);
INSERT INTO bin_keys (k, v) VALUES (0x00FF, 0x68656C6C6F), ('zz', NULL);

-- TINYINT(1) (BOOLEAN) and other TINYINTs holding more than 0 and 1: what a
-- TINYINT-to-boolean converter makes of 2, -1, -128 and an unsigned 200, of
-- a NOT NULL column's default and of NULLs, in the configurations with
-- `converters`; plain int16 in the others.
CREATE TABLE flags (
    id INT NOT NULL PRIMARY KEY,
    f BOOLEAN,
    n TINYINT(1) NOT NULL DEFAULT 1,
    u TINYINT(1) UNSIGNED DEFAULT 0,
    t TINYINT
);
INSERT INTO flags VALUES (1, 1, 0, 200, 5), (2, -1, -1, 0, -3), (3, 2, 127, 1, 0), (4, NULL, -128, NULL, NULL);
INSERT INTO flags (id) VALUES (5);

-- Column names Avro does not allow (field.name.adjustment.mode=avro): a
-- hyphen, a leading digit, letters outside ASCII.
CREATE TABLE odd_names (id INT PRIMARY KEY, `my-col` INT, `1st` INT, `ünï` VARCHAR(3));
INSERT INTO odd_names VALUES (1, 2, 3, 'x');

-- Spatial types and MySQL 9's VECTOR: Debezium's Geometry and Point structs
-- (WKB, and the SRID or null for 0) and its FloatVector (an array of
-- floats). Several columns share the Geometry and the Point struct: AvroData
-- defines each once per schema and names it after that; `req` is a required
-- Point beside the optional ones.
CREATE TABLE geo (
    id INT NOT NULL PRIMARY KEY,
    g GEOMETRY,
    p POINT,
    p4326 POINT SRID 4326,
    ls LINESTRING,
    poly POLYGON,
    mp MULTIPOINT,
    gc GEOMETRYCOLLECTION,
    req POINT NOT NULL,
    v VECTOR(3)
);
INSERT INTO geo VALUES (1, ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('POINT(-1.5 2.25)'),
    ST_GeomFromText('POINT(52.5 13.4)', 4326), ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)'),
    ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0))'), ST_GeomFromText('MULTIPOINT((1 1), (2 2))'),
    ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))'), POINT(0, 0),
    STRING_TO_VECTOR('[1.5, -2, 3.25]'));
INSERT INTO geo (id, req, v) VALUES (2, POINT(1e300, -1e-300), STRING_TO_VECTOR('[0, 0.1, 3.4e38]'));
