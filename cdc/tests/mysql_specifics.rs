//! What only Oracle's MySQL (8.4+/9.x, the stack's 9.7) does, against a live
//! server: GTIDs (tagged ones too, 8.3+) in `source.gtid` and in the stored
//! offset's `gtids`, compressed transaction payloads, rows events with flags
//! mysql_common does not name (`USE_SQL_FOREIGN_KEY_F`, set on every rows
//! event by 9.x, whose SQL-layer foreign keys also log cascaded deletes as
//! rows), `SHOW BINARY LOG STATUS` (the only spelling 8.4+ accepts), invisible
//! columns, caching_sha2 logins with and without TLS under each
//! `database.ssl.mode`, and certificate verification (`verify_ca`,
//! `verify_identity`, trust stores, client certificates) against the stack's
//! own CA.
//!
//! The GTID test needs a server nobody else writes to (its stored set must
//! equal the server's `gtid_executed`), so it starts a private one; the others
//! use the stack's MySQL with their own database and account.

mod stack_support;

use std::time::Duration;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use pipeline::testing::{stack_for, Flavour, Stack};
use stack_support::*;

fn topic(config: &cdc::config::Config, db: &str, table: &str) -> String {
    format!("{}.{db}.{table}", config.connector.topic_prefix)
}

/// `source.gtid` of a record.
fn gtid(r: &Record) -> Option<String> {
    match unwrap_union(field(r.field("source")?, "gtid")?) {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `source.<name>` of a record, as a number.
fn source_long(r: &Record, name: &str) -> Option<i64> {
    match unwrap_union(field(r.field("source")?, name)?) {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// Whether two GTID set texts name the same transactions, as the server
/// itself reads them (tags, interval order and case do not matter).
async fn same_gtid_set(conn: &mut Conn, a: &str, b: &str) -> bool {
    conn.exec_first::<bool, _, _>(
        "SELECT GTID_SUBSET(?, ?) AND GTID_SUBSET(?, ?)",
        (a, b, b, a),
    )
    .await
    .unwrap()
    .unwrap()
}

async fn gtid_executed(conn: &mut Conn) -> String {
    let set: String = conn
        .query_first("SELECT @@GLOBAL.gtid_executed")
        .await
        .unwrap()
        .unwrap();
    set.replace('\n', "")
}

/// Runs `statements` and returns the one GTID they committed (the server is
/// private: nothing else commits meanwhile).
async fn committed_gtid(conn: &mut Conn, statements: &str) -> String {
    let before = gtid_executed(conn).await;
    conn.query_drop(statements).await.unwrap();
    let after = gtid_executed(conn).await;
    conn.exec_first::<String, _, _>("SELECT GTID_SUBTRACT(?, ?)", (after, before))
        .await
        .unwrap()
        .unwrap()
}

/// Runs `config` until its snapshot of the users table is in Kafka.
async fn snapshot_works(stack: &Stack, db: &str, config: cdc::config::Config) {
    let users = topic(&config, db, "users");
    let running = start(config);
    wait_for_records(stack, &users, "the snapshot", |r| !r.is_empty()).await;
    running.stop().await;
}

mod mysql {
    use super::*;

    /// Every streamed record names its transaction's GTID (tagged ones as
    /// `uuid:tag:n`), and the offset stored at the end holds exactly the
    /// server's `gtid_executed`: the snapshot's set plus every transaction
    /// seen since, of captured tables or not (Debezium's `gtids`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gtids_and_tagged_gtids_reach_source_gtid_and_the_stored_offset() {
        let Some(stack) = stack_for(Flavour::MySql) else {
            return;
        };
        let Some(server) = PrivateServer::start(Flavour::MySql, 61).await else {
            return;
        };
        // The private server's root (no password) is the connector's account:
        // a tagged GTID needs TRANSACTION_GTID_TAG, which root holds.
        let private = server.stack(&stack);
        let db = demo_database(&private).await;
        let mut conn = admin(&private, Some(&db)).await;
        conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let offsets = dir.path().join("offsets.json");
        let file = offsets.display().to_string();
        let config = with(
            &config(&private, &db),
            &[
                ("offset.storage", "file"),
                ("offset.storage.file.filename", &file),
            ],
        );
        let users = topic(&config, &db, "users");
        let running = start(config);
        wait_for_records(&stack, &users, "the snapshot", |r| !r.is_empty()).await;

        let plain =
            committed_gtid(&mut conn, "INSERT INTO users (id, email) VALUES (2, 'b@x')").await;
        let tagged = committed_gtid(
            &mut conn,
            "SET gtid_next = 'AUTOMATIC:shop'; \
             INSERT INTO users (id, email) VALUES (3, 'c@x'); \
             SET gtid_next = 'AUTOMATIC'",
        )
        .await;
        assert!(tagged.contains(":shop:"), "{tagged}");
        // A transaction of a table the connector does not capture still
        // belongs to the stored set.
        let other = committed_gtid(&mut conn, "CREATE TABLE other (id INT PRIMARY KEY)").await;
        let two_rows = committed_gtid(
            &mut conn,
            "START TRANSACTION; \
             UPDATE users SET email = 'a2@x' WHERE id = 1; \
             DELETE FROM users WHERE id = 2; \
             COMMIT",
        )
        .await;
        let records = wait_for_records(&stack, &users, "the streamed changes", |r| {
            r.iter()
                .any(|r| r.key_id() == Some(2) && r.op().as_deref() == Some("d"))
        })
        .await;
        let executed = gtid_executed(&mut conn).await;
        // The offset of the last transaction is stored once Kafka acknowledged it.
        let stored = pipeline::testing::wait_until(
            Duration::from_secs(30),
            "the stored gtids to reach gtid_executed",
            || async {
                let text = std::fs::read_to_string(&offsets).ok()?;
                let o: cdc::offsets::SourceOffset = serde_json::from_str(&text).ok()?;
                let gtids = o.gtids?;
                let mut conn = admin(&private, None).await;
                same_gtid_set(&mut conn, &gtids, &executed)
                    .await
                    .then_some(gtids)
            },
        )
        .await;
        running.stop().await;
        eprintln!("stored gtids {stored}; gtid_executed {executed}; other {other}");

        let streamed: Vec<(Option<i64>, Option<String>, Option<String>)> = records
            .iter()
            .filter(|r| r.value.is_some() && r.op().as_deref() != Some("r"))
            .map(|r| (r.key_id(), r.op(), gtid(r)))
            .collect();
        assert_eq!(
            streamed,
            vec![
                (Some(2), Some("c".into()), Some(plain.clone())),
                (Some(3), Some("c".into()), Some(tagged.clone())),
                (Some(1), Some("u".into()), Some(two_rows.clone())),
                (Some(2), Some("d".into()), Some(two_rows.clone())),
            ]
        );
        // Snapshot reads carry no GTID.
        assert_eq!(gtid(&records[0]), None);
        let mut conn = admin(&private, None).await;
        for g in [&plain, &tagged, &other, &two_rows] {
            assert!(same_gtid_set(&mut conn, g, g).await, "{g} is a GTID");
        }
        conn.disconnect().await.ok();
        drop(server);
    }

    /// The same transaction written with `binlog_transaction_compression=ON`
    /// (one Transaction_payload event holding its row events, ZSTD) and
    /// without gives the same records, each with its own transaction's
    /// position; and the server did compress it (the payload event is in the
    /// binlog).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compressed_transaction_payloads_give_the_same_records() {
        let Some(stack) = stack_for(Flavour::MySql) else {
            return;
        };
        let db = stack.fresh_mysql_database().await;
        let mut conn = admin(&stack, Some(&db)).await;
        for t in ["plain", "packed"] {
            conn.query_drop(format!(
                "CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(200), n BIGINT)"
            ))
            .await
            .unwrap();
        }
        let config = config(&stack, &db);
        let running = start(config.clone());
        wait_for_stored_offset(&stack, &config).await;
        let (file, start_pos) = binlog_status(&mut conn, &stack).await;

        // Large enough that zstd has something to do; updates and deletes too.
        let transaction = |t: &str| {
            let values: Vec<String> = (1..=50)
                .map(|i| format!("({i}, REPEAT('x{i}', 40), {i})"))
                .collect();
            format!(
                "START TRANSACTION; \
                 INSERT INTO {t} VALUES {}; \
                 UPDATE {t} SET n = n * 100 WHERE id <= 10; \
                 DELETE FROM {t} WHERE id > 45; \
                 COMMIT",
                values.join(",")
            )
        };
        conn.query_drop(transaction("plain")).await.unwrap();
        conn.query_drop("SET SESSION binlog_transaction_compression = ON")
            .await
            .unwrap();
        conn.query_drop(transaction("packed")).await.unwrap();
        conn.query_drop("SET SESSION binlog_transaction_compression = OFF")
            .await
            .unwrap();

        let expected = 50 + 10 + 5 * 2; // creates, updates, deletes + tombstones
        let plain = wait_for_records(&stack, &topic(&config, &db, "plain"), "plain", |r| {
            r.len() >= expected
        })
        .await;
        let packed = wait_for_records(&stack, &topic(&config, &db, "packed"), "packed", |r| {
            r.len() >= expected
        })
        .await;
        running.stop().await;
        assert_eq!(plain.len(), expected);
        assert_eq!(packed.len(), expected);
        for (p, c) in plain.iter().zip(&packed) {
            assert_eq!((p.key_id(), p.op()), (c.key_id(), c.op()));
            for image in ["before", "after"] {
                assert_eq!(
                    p.field(image),
                    c.field(image),
                    "{image} of {:?}",
                    p.key_id()
                );
            }
            if p.value.is_some() {
                assert_eq!(source_long(p, "row"), source_long(c, "row"));
            }
        }
        // Each transaction's records share its start position; the two differ.
        let positions = |records: &[Record]| {
            let mut pos: Vec<i64> = records
                .iter()
                .filter_map(|r| source_long(r, "pos"))
                .collect();
            pos.dedup();
            pos
        };
        assert_eq!(positions(&plain).len(), 1, "{:?}", positions(&plain));
        assert_eq!(positions(&packed).len(), 1, "{:?}", positions(&packed));
        assert!(positions(&plain)[0] < positions(&packed)[0]);

        let events: Vec<mysql_async::Row> = conn
            .query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {start_pos}"))
            .await
            .unwrap();
        let kinds: Vec<String> = events
            .iter()
            .map(|r| r.get::<String, _>(2).unwrap())
            .collect();
        assert!(
            kinds.iter().any(|k| k == "Transaction_payload"),
            "no compressed payload in the binlog: {kinds:?}"
        );
        conn.disconnect().await.ok();
    }

    /// MySQL 9.x sets `USE_SQL_FOREIGN_KEY_F` on its rows events (a flag
    /// mysql_common does not name) and, with foreign keys checked by the SQL
    /// layer, logs the rows an `ON DELETE CASCADE` removes: they reach the
    /// child's topic as deletes, which InnoDB-internal cascades never did.
    /// Invisible columns are captured like visible ones, in the snapshot
    /// (Debezium selects the table's columns by name) and in streaming.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_key_cascades_and_invisible_columns_are_captured() {
        let Some(stack) = stack_for(Flavour::MySql) else {
            return;
        };
        let db = stack.fresh_mysql_database().await;
        let mut conn = admin(&stack, Some(&db)).await;
        conn.query_drop(
            "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20));
             CREATE TABLE child (id INT PRIMARY KEY, parent_id INT,
                 FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE);
             CREATE TABLE hidden (id INT PRIMARY KEY, shown INT, secret INT INVISIBLE);
             INSERT INTO parent VALUES (1, 'one'), (2, 'two');
             INSERT INTO child VALUES (10, 1), (11, 1), (20, 2);
             INSERT INTO hidden (id, shown, secret) VALUES (1, 10, 100);",
        )
        .await
        .unwrap();
        let config = config(&stack, &db);
        let child = topic(&config, &db, "child");
        let hidden = topic(&config, &db, "hidden");
        let running = start(config.clone());
        wait_for_records(&stack, &child, "the child snapshot", |r| r.len() >= 3).await;
        let snap =
            wait_for_records(&stack, &hidden, "the hidden snapshot", |r| !r.is_empty()).await;
        assert_eq!(snap[0].column("after", "secret"), Some(Value::Int(100)));

        conn.query_drop("DELETE FROM parent WHERE id = 1")
            .await
            .unwrap();
        conn.query_drop("INSERT INTO hidden (id, shown, secret) VALUES (2, 20, 200)")
            .await
            .unwrap();
        conn.query_drop("UPDATE hidden SET secret = 101 WHERE id = 1")
            .await
            .unwrap();
        let children = wait_for_records(&stack, &child, "the cascaded deletes", |r| {
            r.iter().filter(|r| r.op().as_deref() == Some("d")).count() >= 2
        })
        .await;
        let hidden =
            wait_for_records(&stack, &hidden, "the hidden changes", |r| r.len() >= 3).await;
        running.stop().await;

        // INT keys (Record::key_id reads BIGINT ones).
        let deleted: Vec<Option<Value>> = children
            .iter()
            .filter(|r| r.op().as_deref() == Some("d"))
            .map(|r| field(r.key.as_ref()?, "id").cloned())
            .collect();
        assert_eq!(deleted, vec![Some(Value::Int(10)), Some(Value::Int(11))]);
        assert_eq!(
            children.last().unwrap().value,
            None,
            "a tombstone follows the last delete"
        );
        assert_eq!(hidden[1].op().as_deref(), Some("c"));
        assert_eq!(hidden[1].column("after", "secret"), Some(Value::Int(200)));
        assert_eq!(hidden[2].op().as_deref(), Some("u"));
        assert_eq!(hidden[2].column("before", "secret"), Some(Value::Int(100)));
        assert_eq!(hidden[2].column("after", "secret"), Some(Value::Int(101)));
        // One registered shape: the snapshot and the binlog saw the same columns.
        assert!(hidden
            .iter()
            .all(|r| r.value_schema_id == hidden[0].value_schema_id));
        conn.disconnect().await.ok();
    }

    /// MySQL 8.4 removed `SHOW MASTER STATUS`; the connector asks with the
    /// statement the server's version accepts.
    #[tokio::test]
    async fn binlog_status_uses_the_statement_the_version_accepts() {
        let Some(stack) = stack_for(Flavour::MySql) else {
            return;
        };
        let mut conn = admin(&stack, None).await;
        let info = cdc::preflight::server_info(&mut conn).await.unwrap();
        assert_eq!(info.flavor, cdc::preflight::Flavor::MySql);
        assert_eq!(info.binlog_status_statement(), "SHOW BINARY LOG STATUS");
        assert!(conn.query_drop("SHOW MASTER STATUS").await.is_err());
        let position = cdc::snapshot::current_position(&mut conn, &info)
            .await
            .expect("the snapshot's position query");
        assert!(position.file.starts_with("mysql-bin."), "{position:?}");
        let executed = gtid_executed(&mut conn).await;
        let gtids = position.gtids.expect("GTIDs are on");
        // Later commits of other tests may have moved gtid_executed on.
        let subset: bool = conn
            .exec_first("SELECT GTID_SUBSET(?, ?)", (&gtids, &executed))
            .await
            .unwrap()
            .unwrap();
        assert!(subset, "{gtids} within {executed}");
        conn.disconnect().await.ok();
    }

    /// A caching_sha2_password account logs in under each `database.ssl.mode`:
    /// `disabled` in plain TCP (the first login of a fresh account is the full
    /// exchange, the password RSA-encrypted with the server's key), `preferred`
    /// and `required` over TLS. The stack's MySQL runs without
    /// performance_schema, so the account itself tells: once it is altered to
    /// `REQUIRE SSL`, only an encrypted login gets in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn caching_sha2_logins_with_and_without_tls() {
        let Some(stack) = stack_for(Flavour::MySql) else {
            return;
        };
        let db = demo_database(&stack).await;
        let mut conn = admin(&stack, Some(&db)).await;
        conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
            .await
            .unwrap();
        let user = account_name("s");
        conn.query_drop(format!(
            "CREATE USER '{user}'@'%' IDENTIFIED WITH caching_sha2_password BY 'pw';
             GRANT SELECT, RELOAD, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, \
             REPLICATION CLIENT ON *.* TO '{user}'@'%';"
        ))
        .await
        .unwrap();
        let config_for = |mode: &str| {
            with(
                &config(&stack, &db),
                &[
                    ("database.user", &user),
                    ("database.password", "pw"),
                    ("database.ssl.mode", mode),
                ],
            )
        };
        snapshot_works(&stack, &db, config_for("disabled")).await;

        conn.query_drop(format!("ALTER USER '{user}'@'%' REQUIRE SSL"))
            .await
            .unwrap();
        for mode in ["preferred", "required"] {
            snapshot_works(&stack, &db, config_for(mode)).await;
        }
        let err = start(config_for("disabled"))
            .task
            .await
            .unwrap()
            .expect_err("a plain login of a REQUIRE SSL account");
        assert!(matches!(err, cdc::CdcError::Connect(_)), "{err}");
        assert!(err.to_string().contains("Access denied"), "{err}");

        conn.query_drop(format!("DROP USER '{user}'@'%'"))
            .await
            .unwrap();
        conn.disconnect().await.ok();
    }

    /// Verified TLS against the stack's MySQL, whose certificate the stack's
    /// own CA signed for 127.0.0.1 (not for `localhost`). With that CA as the
    /// trust store, `verify_ca` streams by either name and `verify_identity`
    /// by the name the certificate carries only; with the system's CAs, or by
    /// a name it lacks, the connector stops at start with a definite error
    /// naming the mode and what to check. An account `REQUIRE X509` gets in
    /// with the client certificate of `database.ssl.keystore` only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verified_tls_trusts_only_the_named_ca_and_host() {
        let Some(stack) = stack_for(Flavour::MySql) else {
            return;
        };
        let tls = stack
            .mysql_tls
            .clone()
            .expect("the stack's MySQL has its TLS material");
        let ca = tls.ca.display().to_string();
        let db = demo_database(&stack).await;
        let mut conn = admin(&stack, Some(&db)).await;
        conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
            .await
            .unwrap();
        assert_eq!(
            stack.mysql_host, "127.0.0.1",
            "the name the certificate carries"
        );
        let config_for = |pairs: &[(&str, &str)]| with(&config(&stack, &db), pairs);

        for mode in ["verify_ca", "verify_identity"] {
            snapshot_works(
                &stack,
                &db,
                config_for(&[
                    ("database.ssl.mode", mode),
                    ("database.ssl.truststore", &ca),
                ]),
            )
            .await;
        }
        snapshot_works(
            &stack,
            &db,
            config_for(&[
                ("database.hostname", "localhost"),
                ("database.ssl.mode", "verify_ca"),
                ("database.ssl.truststore", &ca),
            ]),
        )
        .await;

        wrong_name_and_unknown_ca_are_refused(&config_for, &ca).await;
        // `cdc verify` connects with the same settings and says the same.
        let err = cdc::verify::verify(
            &config_for(&[
                ("database.hostname", "localhost"),
                ("database.ssl.mode", "verify_identity"),
                ("database.ssl.truststore", &ca),
            ]),
            &cdc::verify::Options::default(),
        )
        .await
        .expect_err("refused");
        assert!(matches!(err, cdc::verify::VerifyError::Tls(_)), "{err}");

        // A client certificate: required by the account, sent from the keystore.
        let (user, with_keystore, without) = x509_account(&mut conn, &tls, &config_for).await;
        snapshot_works(&stack, &db, with_keystore).await;
        denied_without_a_client_certificate(without).await;

        conn.query_drop(format!("DROP USER '{user}'@'%'"))
            .await
            .unwrap();
        conn.disconnect().await.ok();
    }
}
