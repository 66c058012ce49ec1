-- The demo's `shop` database. Statements name their database explicitly because
-- the migration runner keeps its history in another database (so a connector
-- capturing `shop` sees only the demo's tables), and because docker-compose's
-- MySQL runs these files as they are at first start.
CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4;
