-- The change-data-capture connector's account, with the least privileges a
-- Debezium-style MySQL connector needs:
-- * SELECT: snapshot reads and information_schema;
-- * RELOAD: FLUSH TABLES WITH READ LOCK for the consistent snapshot;
-- * LOCK TABLES: the per-table lock fallback where a global read lock is refused;
-- * SHOW DATABASES: discover the captured databases;
-- * REPLICATION SLAVE: read the binlog;
-- * REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5+): binlog position and file list.
-- The password is the demo's; point the connector at another account in production.
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY 'cdc-password';
GRANT SELECT, RELOAD, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%';
