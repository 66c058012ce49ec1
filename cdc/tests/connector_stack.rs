//! The connector against the local stack (MariaDB or MySQL, Kafka, registry):
//! snapshot, streaming of every operation, restart, DDL while lagging, purged
//! position, missing privileges. Each test runs once per source server
//! (`mariadb::*`, `mysql::*`) and has its own database, topic prefix and
//! server id.

mod stack_support;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use pipeline::testing::Flavour;
use stack_support::*;

per_flavour!(
    snapshot_then_streaming_of_every_operation,
    restart_resumes_after_the_stored_position_without_snapshot,
    rows_written_before_ddl_keep_their_shape_when_lagging,
    purged_position_is_a_clear_error_or_a_new_snapshot,
    missing_privileges_are_named,
    a_killed_binlog_connection_is_resumed_without_loss_or_duplicates,
    snapshot_modes_initial_only_and_no_data,
    snapshot_mode_always_snapshots_on_every_start,
    snapshot_without_reload_falls_back_to_table_locks,
    a_column_type_change_mid_stream_gets_a_new_schema_or_a_clear_refusal,
    an_interrupted_snapshot_is_followed_by_the_deletes_made_since,
    initial_statements_run_on_every_connection_but_the_binlog_one,
    snapshot_lock_waits_are_bounded_and_none_takes_no_lock,
    snapshot_select_overrides_choose_the_rows,
    extended_locking_holds_writers_until_the_last_row,
    an_undecodable_rows_event_is_skipped_with_warn_and_stops_by_default,
);

fn topic(config: &cdc::config::Config, db: &str, table: &str) -> String {
    format!("{}.{db}.{table}", config.connector.topic_prefix)
}

async fn snapshot_then_streaming_of_every_operation(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop(
        "INSERT INTO users (id, email, is_vip) VALUES (1, 'a@x', 0), (2, 'b@x', 1), (3, 'c@x', 0)",
    )
    .await
    .unwrap();
    conn.query_drop("INSERT INTO items (id, name, category, price, inventory) VALUES (1, 'pen', 'office', 1.25, 10)")
        .await
        .unwrap();
    let config = config(&stack, &db);
    let users = topic(&config, &db, "users");
    let purchases = topic(&config, &db, "purchases");
    let running = start(config.clone());

    let snap = wait_for_records(&stack, &users, "3 snapshot rows", |r| r.len() >= 3).await;
    assert!(snap.iter().all(|r| r.op().as_deref() == Some("r")));
    assert!(snap
        .iter()
        .all(|r| r.column("before", "id").is_none() && r.column("after", "id").is_some()));
    let markers: Vec<_> = snap.iter().map(|r| r.snapshot_marker().unwrap()).collect();
    // users is the last table read (items, purchases, users): its last row is `last`.
    assert_eq!(
        markers.last().map(String::as_str),
        Some("last"),
        "{markers:?}"
    );

    // Streaming: insert, update, delete, primary-key change, in one transaction
    // and in autocommit statements.
    conn.query_drop("INSERT INTO users (id, email) VALUES (4, 'd@x')")
        .await
        .unwrap();
    conn.query_drop("START TRANSACTION").await.unwrap();
    conn.query_drop("UPDATE users SET email = 'a2@x' WHERE id = 1")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM users WHERE id = 2")
        .await
        .unwrap();
    conn.query_drop("COMMIT").await.unwrap();
    conn.query_drop("UPDATE users SET id = 30 WHERE id = 3")
        .await
        .unwrap();
    conn.query_drop(
        "INSERT INTO purchases (user_id, item_id, quantity, purchase_price) VALUES (1, 1, 2, 2.50)",
    )
    .await
    .unwrap();

    let all = wait_for_records(&stack, &users, "streamed changes", |r| r.len() >= 10).await;
    let ops: Vec<(Option<i64>, Option<String>)> =
        all[3..].iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        vec![
            (Some(4), Some("c".into())),
            (Some(1), Some("u".into())),
            (Some(2), Some("d".into())),
            (Some(2), None), // tombstone
            (Some(3), Some("d".into())),
            (Some(3), None),
            (Some(30), Some("c".into())),
        ]
    );
    let update = &all[4];
    assert_eq!(
        string(update.column("before", "email")).as_deref(),
        Some("a@x")
    );
    assert_eq!(
        string(update.column("after", "email")).as_deref(),
        Some("a2@x")
    );
    // source.pos is the transaction start, shared by both rows of that transaction.
    let pos = |r: &Record| field(r.field("source").unwrap(), "pos").cloned();
    assert_eq!(pos(&all[4]), pos(&all[5]));
    assert_ne!(pos(&all[3]), pos(&all[4]));

    // Replaying the topic by key gives the table.
    let (rows, replayed) = users_in_table_and_topic(&mut conn, &all).await;
    assert_eq!(replayed, rows);

    let bought = wait_for_records(&stack, &purchases, "the purchase", |r| !r.is_empty()).await;
    assert_eq!(bought[0].op().as_deref(), Some("c"));
    match bought[0].column("after", "purchase_price") {
        Some(Value::Decimal(_)) | Some(Value::Bytes(_)) => {}
        other => panic!("purchase_price should be a decimal, got {other:?}"),
    }
    running.stop().await;
}

async fn restart_resumes_after_the_stored_position_without_snapshot(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let config = config(&stack, &db);
    let users = topic(&config, &db, "users");

    let running = start(config.clone());
    // The snapshot's record is in Kafka: its position was read, later rows stream.
    wait_for_records(&stack, &users, "snapshot", |r| !r.is_empty()).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (2, 'b@x')")
        .await
        .unwrap();
    wait_for_records(&stack, &users, "snapshot + insert", |r| r.len() >= 2).await;
    let summary = running.stop().await;
    assert_eq!(summary.snapshot_rows, Some(1));

    // Changes while the connector is down, one of them a multi-row transaction.
    conn.query_drop("INSERT INTO users (id, email) VALUES (3, 'c@x'), (4, 'd@x'), (5, 'e@x')")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM users WHERE id = 1")
        .await
        .unwrap();

    let running = start(config.clone());
    let all = wait_for_records(&stack, &users, "changes made while stopped", |r| {
        r.iter().any(|r| r.key_id() == Some(1) && r.value.is_none())
    })
    .await;
    let summary = running.stop().await;
    assert_eq!(
        summary.snapshot_rows, None,
        "a restart must not snapshot again"
    );
    let reads = all
        .iter()
        .filter(|r| r.op().as_deref() == Some("r"))
        .count();
    assert_eq!(reads, 1);
    // Every change exactly once.
    let creates: Vec<i64> = all
        .iter()
        .filter(|r| r.op().as_deref() == Some("c"))
        .filter_map(Record::key_id)
        .collect();
    assert_eq!(creates, vec![2, 3, 4, 5]);
    let state = replay(&all);
    assert_eq!(state.keys().copied().collect::<Vec<_>>(), vec![2, 3, 4, 5]);
}

async fn rows_written_before_ddl_keep_their_shape_when_lagging(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    let config = config(&stack, &db);
    let users = topic(&config, &db, "users");

    let running = start(config.clone());
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    wait_for_records(&stack, &users, "first insert", |r| !r.is_empty()).await;
    running.stop().await;

    // While stopped: a row in the old shape, the DDL, a row in the new shape.
    conn.query_drop("INSERT INTO users (id, email) VALUES (2, 'b@x')")
        .await
        .unwrap();
    conn.query_drop("ALTER TABLE users ADD COLUMN nickname VARCHAR(20) AFTER email")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO users (id, email, nickname) VALUES (3, 'c@x', 'cee')")
        .await
        .unwrap();

    let running = start(config.clone());
    let all = wait_for_records(&stack, &users, "rows around the DDL", |r| r.len() >= 3).await;
    running.stop().await;

    let by_id = |id| all.iter().find(|r| r.key_id() == Some(id)).unwrap();
    let old = by_id(2);
    let new = by_id(3);
    assert_eq!(string(old.column("after", "email")).as_deref(), Some("b@x"));
    assert!(
        old.column("after", "nickname").is_none(),
        "row 2 was written before the column existed"
    );
    assert_eq!(
        string(new.column("after", "nickname")).as_deref(),
        Some("cee")
    );
    assert_eq!(old.value_schema_id, by_id(1).value_schema_id);
    assert_ne!(old.value_schema_id, new.value_schema_id);
}

async fn purged_position_is_a_clear_error_or_a_new_snapshot(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offsets.json");
    // A position in a binlog file the server does not have (as after PURGE).
    std::fs::write(
        &path,
        r#"{"file":"mysql-bin.000000","pos":4,"event":0,"row":0,"server_id":1,"ts_sec":0}"#,
    )
    .unwrap();
    let file = path.display().to_string();
    let config = with(
        &config(&stack, &db),
        &[
            ("offset.storage", "file"),
            ("offset.storage.file.filename", &file),
        ],
    );

    let err = start(config.clone())
        .task
        .await
        .unwrap()
        .expect_err("a purged position must stop the connector");
    assert!(
        matches!(
            err,
            cdc::CdcError::Start(cdc::start::StartError::PurgedFile { .. })
        ),
        "{err}"
    );
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains("snapshot.mode=when_needed"),
        "{err}"
    );

    let config = with(&config, &[("snapshot.mode", "when_needed")]);
    let users = topic(&config, &db, "users");
    let running = start(config);
    let records = wait_for_records(&stack, &users, "re-snapshot", |r| !r.is_empty()).await;
    assert_eq!(records[0].op().as_deref(), Some("r"));
    let summary = running.stop().await;
    assert_eq!(summary.snapshot_rows, Some(1));
    // The new position replaced the purged one.
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_ne!(stored["file"], "mysql-bin.000000");
}

async fn missing_privileges_are_named(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, None).await;
    let user = account_name("u");
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{ACCOUNT_PASSWORD}'"
    ))
    .await
    .unwrap();
    conn.query_drop(format!("GRANT SELECT ON `{db}`.* TO '{user}'@'%'"))
        .await
        .unwrap();
    let config = as_account(&config(&stack, &db), &user);

    let err = start(config).task.await.unwrap().unwrap_err();
    conn.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    let text = err.to_string();
    assert!(!err.is_transient(), "{text}");
    assert!(
        text.contains(&format!(
            "the account {user} lacks REPLICATION SLAVE; run GRANT REPLICATION SLAVE ON *.*"
        )),
        "{text}"
    );
    assert!(text.contains("lacks REPLICATION CLIENT"), "{text}");
}

async fn a_killed_binlog_connection_is_resumed_without_loss_or_duplicates(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    // A replication account of this test only, so killing its connections
    // cannot disturb connectors of other tests.
    let user = connector_account(&mut conn, "r").await;
    let config = as_account(&config(&stack, &db), &user);
    let users = topic(&config, &db, "users");

    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let running = start(config);
    wait_for_records(&stack, &users, "the snapshot", |r| !r.is_empty()).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (4, 'd@x')")
        .await
        .unwrap();
    // Streamed, so the binlog connection is up.
    wait_for_records(&stack, &users, "a streamed insert", |r| r.len() >= 2).await;

    let dumps: Vec<u64> = conn
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND LIKE 'Binlog Dump%'",
            (&user,),
        )
        .await
        .unwrap();
    assert_eq!(dumps.len(), 1, "one binlog connection expected");
    conn.query_drop(format!("KILL {}", dumps[0])).await.unwrap();
    conn.query_drop("START TRANSACTION").await.unwrap();
    conn.query_drop("INSERT INTO users (id, email) VALUES (2, 'b@x'), (3, 'c@x')")
        .await
        .unwrap();
    conn.query_drop("UPDATE users SET email = 'a2@x' WHERE id = 1")
        .await
        .unwrap();
    conn.query_drop("COMMIT").await.unwrap();

    let all = wait_for_records(&stack, &users, "changes after the reconnect", |r| {
        r.len() >= 5
    })
    .await;
    let again: Vec<u64> = conn
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND LIKE 'Binlog Dump%'",
            (&user,),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the connector reconnected once");
    assert_ne!(again[0], dumps[0]);
    running.stop().await;
    conn.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    let ops: Vec<(Option<i64>, Option<String>)> =
        all.iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        vec![
            (Some(1), Some("r".into())),
            (Some(4), Some("c".into())),
            (Some(2), Some("c".into())),
            (Some(3), Some("c".into())),
            (Some(1), Some("u".into())),
        ]
    );
}

/// A demo database holding users 1 and 2, and a root connection to it.
async fn two_users(stack: &pipeline::testing::Stack) -> (String, mysql_async::Conn) {
    let db = demo_database(stack).await;
    let mut conn = admin(stack, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x')")
        .await
        .unwrap();
    (db, conn)
}

async fn snapshot_modes_initial_only_and_no_data(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let (db, mut conn) = two_users(&stack).await;

    // initial_only: the run ends by itself after the snapshot.
    let base = config(&stack, &db);
    let only = with(&base, &[("snapshot.mode", "initial_only")]);
    let summary = tokio::time::timeout(std::time::Duration::from_secs(60), start(only).task)
        .await
        .expect("initial_only must stop by itself")
        .unwrap()
        .unwrap();
    assert_eq!(summary.snapshot_rows, Some(2));
    let records = wait_for_records(&stack, &topic(&base, &db, "users"), "snapshot", |r| {
        r.len() >= 2
    })
    .await;
    assert!(records.iter().all(|r| r.op().as_deref() == Some("r")));

    // no_data (fresh prefix): no rows read, only what happens afterwards.
    let fresh = config(&stack, &db);
    let users = topic(&fresh, &db, "users");
    let no_data = with(&fresh, &[("snapshot.mode", "no_data")]);
    let running = start(no_data.clone());
    // Once a position is stored, later changes are streamed.
    wait_for_stored_offset(&stack, &no_data).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (3, 'c@x')")
        .await
        .unwrap();
    let records = wait_for_records(&stack, &users, "the insert", |r| {
        r.iter().any(|r| r.key_id() == Some(3))
    })
    .await;
    assert_eq!(running.stop().await.snapshot_rows, Some(0));
    assert!(
        records.iter().all(|r| r.op().as_deref() == Some("c")),
        "no_data reads no rows"
    );
}

/// `snapshot.mode=always`: every start reads the tables again, even with a
/// good stored position, then streams from the new snapshot's position, so a
/// change made while the connector was stopped arrives as a read, not as an
/// update (Debezium's behaviour).
async fn snapshot_mode_always_snapshots_on_every_start(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let (db, mut conn) = two_users(&stack).await;
    let always = with(&config(&stack, &db), &[("snapshot.mode", "always")]);
    let users = topic(&always, &db, "users");

    let first = start(always.clone());
    wait_for_records(&stack, &users, "the first snapshot", |r| r.len() >= 2).await;
    wait_for_stored_offset(&stack, &always).await;
    assert_eq!(first.stop().await.snapshot_rows, Some(2));

    conn.query_drop("INSERT INTO users (id, email) VALUES (3, 'c@x')")
        .await
        .unwrap();
    conn.query_drop("UPDATE users SET email = 'a2@x' WHERE id = 1")
        .await
        .unwrap();
    let second = start(always.clone());
    wait_for_records(&stack, &users, "the second snapshot", |r| r.len() >= 5).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (4, 'd@x')")
        .await
        .unwrap();
    let records = wait_for_records(&stack, &users, "the insert after it", |r| {
        r.iter().any(|r| r.key_id() == Some(4))
    })
    .await;
    assert_eq!(second.stop().await.snapshot_rows, Some(3));
    let ops: Vec<(Option<i64>, Option<String>)> =
        records.iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        [
            (Some(1), Some("r".into())),
            (Some(2), Some("r".into())),
            (Some(1), Some("r".into())),
            (Some(2), Some("r".into())),
            (Some(3), Some("r".into())),
            (Some(4), Some("c".into())),
        ],
        "changes made while stopped arrive as reads of the new snapshot"
    );
    let email = records[2].column("after", "email");
    assert_eq!(string(email).as_deref(), Some("a2@x"));
}

async fn snapshot_without_reload_falls_back_to_table_locks(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO items (id, name, price) VALUES (1, 'pen', 1.50)")
        .await
        .unwrap();
    let user = account_name("l");
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{ACCOUNT_PASSWORD}'"
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "GRANT SELECT, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT \
         ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let base = config(&stack, &db);
    let config = as_account(&base, &user);
    let items = topic(&config, &db, "items");
    let running = start(config);
    wait_for_records(&stack, &items, "the snapshot", |r| !r.is_empty()).await;
    conn.query_drop("UPDATE items SET price = 2.00 WHERE id = 1")
        .await
        .unwrap();
    let records = wait_for_records(&stack, &items, "the update", |r| r.len() >= 2).await;
    running.stop().await;
    conn.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    let ops: Vec<_> = records.iter().map(|r| r.op()).collect();
    assert_eq!(ops, vec![Some("r".into()), Some("u".into())]);
}

async fn a_column_type_change_mid_stream_gets_a_new_schema_or_a_clear_refusal(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO items (id, name, inventory) VALUES (1, 'pen', 7)")
        .await
        .unwrap();
    let config = config(&stack, &db);
    let items = topic(&config, &db, "items");
    let mut running = start(config);
    wait_for_records(&stack, &items, "the snapshot", |r| !r.is_empty()).await;
    // Same column names, wider type: only the types tell the shapes apart.
    conn.query_drop("ALTER TABLE items MODIFY inventory BIGINT")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO items (id, name, inventory) VALUES (2, 'ink', 5000000000)")
        .await
        .unwrap();
    let records = tokio::select! {
        stopped = &mut running.task => panic!("the connector stopped: {stopped:?}"),
        records = wait_for_records(&stack, &items, "the insert", |r| r.len() >= 2) => records,
    };
    assert_ne!(records[0].value_schema_id, records[1].value_schema_id);
    assert_eq!(records[0].column("after", "inventory"), Some(Value::Int(7)));
    assert_eq!(
        records[1].column("after", "inventory"),
        Some(Value::Long(5_000_000_000))
    );

    // A change the registry's compatibility rules refuse stops the connector
    // with the subject and the registry's reason, before any record of it.
    conn.query_drop("ALTER TABLE items MODIFY price DECIMAL(9,3)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO items (id, name, price) VALUES (3, 'cap', 2.125)")
        .await
        .unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), running.task)
        .await
        .expect("the connector must stop")
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert!(!err.is_transient(), "{text}");
    assert!(text.contains(&format!("{items}-value")), "{text}");
    assert!(text.contains("incompatible"), "{text}");
}

/// A snapshot interrupted after it emitted a row, and a delete of that row before
/// the next start: the new snapshot no longer sees the row, so only streaming
/// from the interrupted snapshot's position can emit the delete. The stored
/// `snapshot: true` marker is written as a snapshot begins; this test stores it
/// by hand at a position before the delete.
async fn an_interrupted_snapshot_is_followed_by_the_deletes_made_since(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let (db, mut conn) = two_users(&stack).await;
    let (file, pos) = binlog_status(&mut conn, &stack).await;
    conn.query_drop("DELETE FROM users WHERE id = 1")
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offsets.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"file":"{file}","pos":{pos},"event":0,"row":0,"snapshot":true,"server_id":1,"ts_sec":0}}"#
        ),
    )
    .unwrap();
    let file = path.display().to_string();
    let config = with(
        &config(&stack, &db),
        &[
            ("offset.storage", "file"),
            ("offset.storage.file.filename", &file),
        ],
    );
    let users = topic(&config, &db, "users");

    let running = start(config);
    let records = wait_for_records(&stack, &users, "snapshot, then the delete", |r| {
        r.iter().any(|r| r.op().as_deref() == Some("d"))
    })
    .await;
    let summary = running.stop().await;
    assert_eq!(
        summary.snapshot_rows,
        Some(1),
        "the new snapshot sees user 2 only"
    );
    let ops: Vec<(Option<String>, Option<i64>)> =
        records.iter().map(|r| (r.op(), r.key_id())).collect();
    assert!(
        ops.contains(&(Some("r".into()), Some(2))),
        "snapshot row of user 2: {ops:?}"
    );
    assert!(
        ops.contains(&(Some("d".into()), Some(1))),
        "delete of user 1 replayed from the interrupted snapshot's position: {ops:?}"
    );
    // Streaming took over: the stored position is no longer a snapshot marker.
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(stored.get("snapshot").is_none(), "{stored}");
}

/// The stack's MariaDB offers no TLS: `database.ssl.mode=required` stops the
/// connector with a definite error, while `preferred` (the default, which
/// every `mariadb::*` test runs with) falls back to plain TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_without_tls_refuses_ssl_mode_required() {
    let Some(stack) = pipeline::testing::stack_for(Flavour::MariaDb) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, None).await;
    let have_ssl: String = conn
        .query_first("SELECT @@have_ssl")
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(
        have_ssl, "DISABLED",
        "the stack's MariaDB was expected without TLS"
    );
    let config = with(&config(&stack, &db), &[("database.ssl.mode", "required")]);
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), start(config).task)
        .await
        .expect("the connector must stop by itself")
        .unwrap()
        .expect_err("required TLS against a server without it");
    assert!(matches!(err, cdc::CdcError::Connect(_)), "{err}");
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("SSL"), "{err}");
}

/// `database.initial.statements` run on each new connection except the one
/// reading the binlog (as Debezium runs them on its JDBC connections only):
/// each connection records its id in a table, and the binlog dump's is not
/// there. A statement the server refuses stops the connector at start,
/// named.
async fn initial_statements_run_on_every_connection_but_the_binlog_one(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("CREATE TABLE sessions (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let user = connector_account(&mut conn, "init").await;
    conn.query_drop(format!("GRANT INSERT ON `{db}`.sessions TO '{user}'@'%'"))
        .await
        .unwrap();
    let statements = format!(
        "SET SESSION wait_timeout = 3600; INSERT INTO `{db}`.sessions VALUES (CONNECTION_ID())"
    );
    let config = with(
        &as_account(&config(&stack, &db), &user),
        &[
            ("database.initial.statements", &statements),
            ("table.include.list", &format!("{db}\\.users")),
        ],
    );
    let users = topic(&config, &db, "users");
    let running = start(config.clone());
    wait_for_records(&stack, &users, "the snapshot", |r| !r.is_empty()).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (2, 'b@x')")
        .await
        .unwrap();
    wait_for_records(&stack, &users, "the streamed insert", |r| r.len() >= 2).await;
    let dumps: Vec<u64> = conn
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? \
             AND COMMAND LIKE 'Binlog Dump%'",
            (&user,),
        )
        .await
        .unwrap();
    let initialised: Vec<u64> = conn.query("SELECT id FROM sessions").await.unwrap();
    running.stop().await;
    assert_eq!(dumps.len(), 1, "the connector's binlog connection");
    assert!(
        !initialised.is_empty(),
        "no connection ran the initial statements"
    );
    assert!(
        !initialised.contains(&dumps[0]),
        "the binlog connection {} ran them: {initialised:?}",
        dumps[0]
    );

    let refused = with(&config, &[("database.initial.statements", "SELEC 1")]);
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), start(refused).task)
        .await
        .expect("the connector stops at start")
        .unwrap()
        .expect_err("a refused initial statement");
    assert!(
        matches!(err, cdc::CdcError::InitialStatement { .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().contains("\"SELEC 1\""), "{err}");
    conn.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
}

/// `snapshot.lock.timeout.ms` bounds the snapshot's wait for its locks (a
/// transient error, retried later), and `snapshot.locking.mode=none` takes
/// no lock at all: an account that may neither FLUSH TABLES WITH READ LOCK
/// nor LOCK TABLES, refused under the default mode, snapshots and streams.
async fn snapshot_lock_waits_are_bounded_and_none_takes_no_lock(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO items (id, name, price) VALUES (1, 'pen', 1.50)")
        .await
        .unwrap();
    let base = config(&stack, &db);
    let create = |user: &str, privileges: &str| {
        [
            format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{ACCOUNT_PASSWORD}'"),
            format!("GRANT {privileges} ON *.* TO '{user}'@'%'"),
        ]
    };

    // Without RELOAD the snapshot locks the captured tables one by one; one
    // held by another session makes it give up after the timeout.
    let locker = account_name("w");
    for sql in create(
        &locker,
        "SELECT, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT",
    ) {
        conn.query_drop(sql).await.unwrap();
    }
    let mut holder = admin(&stack, Some(&db)).await;
    holder.query_drop("LOCK TABLES items WRITE").await.unwrap();
    let waiting = with(
        &as_account(&base, &locker),
        &[("snapshot.lock.timeout.ms", "1000")],
    );
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), start(waiting).task)
        .await
        .expect("the snapshot gives up waiting for its locks")
        .unwrap()
        .expect_err("a lock timeout");
    holder.query_drop("UNLOCK TABLES").await.unwrap();
    assert!(
        matches!(
            err,
            cdc::CdcError::Snapshot(cdc::snapshot::SnapshotError::LockTimeout { timeout_ms: 1000 })
        ),
        "{err}"
    );
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("snapshot.locking.mode=none"),
        "{err}"
    );

    // An account that can take no lock: refused under minimal, a snapshot
    // and streaming under none.
    let reader = account_name("n");
    for sql in create(
        &reader,
        "SELECT, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT",
    ) {
        conn.query_drop(sql).await.unwrap();
    }
    let err = refused_at_start(as_account(&base, &reader)).await;
    assert!(
        err.to_string()
            .starts_with("cannot lock tables for a consistent snapshot"),
        "{err}"
    );
    let unlocked = with(
        &as_account(&base, &reader),
        &[("snapshot.locking.mode", "none")],
    );
    let items = topic(&unlocked, &db, "items");
    let running = start(unlocked);
    wait_for_records(&stack, &items, "the snapshot", |r| !r.is_empty()).await;
    conn.query_drop("UPDATE items SET price = 2.00 WHERE id = 1")
        .await
        .unwrap();
    let records = wait_for_records(&stack, &items, "the update", |r| r.len() >= 2).await;
    running.stop().await;
    for user in [&locker, &reader] {
        conn.query_drop(format!("DROP USER '{user}'@'%'"))
            .await
            .unwrap();
    }
    let ops: Vec<_> = records.iter().map(|r| r.op()).collect();
    assert_eq!(ops, vec![Some("r".into()), Some("u".into())]);
}

/// `snapshot.select.statement.overrides`: the snapshot emits the rows of the
/// user's SELECT, in its order, its columns matched by name; streaming is
/// not filtered. A statement the server refuses is a definite error naming
/// the setting.
async fn snapshot_select_overrides_choose_the_rows(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop(
        "INSERT INTO items (id, name, price) VALUES (1, 'pen', 1.50), (2, 'ink', 2.50), (3, 'pad', 3.50)",
    )
    .await
    .unwrap();
    let base = config(&stack, &db);
    let table = format!("{db}.items");
    let key = format!("snapshot.select.statement.overrides.{table}");

    let refused = with(
        &base,
        &[
            ("snapshot.select.statement.overrides", &table),
            (&key, "SELECT * FROM no_such_table"),
        ],
    );
    let err = refused_at_start(refused).await.to_string();
    assert!(
        err.starts_with(&format!("the server refused {key}")),
        "{err}"
    );

    let select = format!("SELECT price, name, id FROM `{db}`.items WHERE id <> 2 ORDER BY id DESC");
    let overridden = with(
        &base,
        &[
            ("snapshot.select.statement.overrides", &table),
            (&key, &select),
        ],
    );
    let items = topic(&overridden, &db, "items");
    let running = start(overridden);
    wait_for_records(&stack, &items, "the snapshot", |r| r.len() >= 2).await;
    conn.query_drop("UPDATE items SET price = 2.75 WHERE id = 2")
        .await
        .unwrap();
    let records = wait_for_records(&stack, &items, "the update", |r| r.len() >= 3).await;
    running.stop().await;
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.op(), r.key_id(), string(r.column("after", "name"))))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("r".into()), Some(3), Some("pad".into())),
            (Some("r".into()), Some(1), Some("pen".into())),
            (Some("u".into()), Some(2), Some("ink".into())),
        ]
    );
    // Columns the SELECT leaves out are null.
    assert_eq!(string(records[0].column("after", "category")), None);
}

/// `snapshot.locking.mode=extended`: writers wait until the last row is
/// read, not only while the position and schemas are. A snapshot SELECT
/// that sleeps (an override) keeps the snapshot in its row phase while
/// another session writes with a 1 s lock wait. (Not contrasted with
/// `minimal` here: that sleeping SELECT would hold up the global read lock
/// of any other test's snapshot, and with it that test's writers and ours.)
async fn extended_locking_holds_writers_until_the_last_row(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO items (id, name, price) VALUES (1, 'pen', 1.50)")
        .await
        .unwrap();
    let base = config(&stack, &db);
    let items = topic(&base, &db, "items");
    let table = format!("{db}.items");
    let key = format!("snapshot.select.statement.overrides.{table}");
    let select = format!("SELECT * FROM `{db}`.items WHERE SLEEP(6) = 0");
    let cfg = with(
        &base,
        &[
            ("snapshot.locking.mode", "extended"),
            ("snapshot.select.statement.overrides", &table),
            (&key, &select),
        ],
    );
    let running = start(cfg);
    let pattern = format!("SELECT * FROM `{db}`.items WHERE SLEEP%");
    pipeline::testing::wait_until(
        std::time::Duration::from_secs(60),
        "the snapshot to read its rows",
        || {
            let pattern = pattern.clone();
            let url = stack.mysql_url(Some(&db));
            async move {
                let mut c = mysql_async::Conn::from_url(url).await.ok()?;
                let n: Option<u64> = c
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ?",
                        (pattern,),
                    )
                    .await
                    .ok()?;
                c.disconnect().await.ok();
                (n? > 0).then_some(())
            }
        },
    )
    .await;
    conn.query_drop("SET SESSION lock_wait_timeout = 1")
        .await
        .unwrap();
    let wrote = conn
        .query_drop("INSERT INTO users (id, email) VALUES (1, 'w@x')")
        .await;
    let still_reading: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ?",
            (&pattern,),
        )
        .await
        .unwrap();
    wait_for_records(&stack, &items, "the snapshot row", |r| !r.is_empty()).await;
    running.stop().await;
    assert_eq!(
        still_reading,
        Some(1),
        "the snapshot's SELECT ended too soon to tell"
    );
    assert!(
        matches!(&wrote, Err(mysql_async::Error::Server(e)) if e.code == 1205),
        "a write during the row phase under extended locking gave {wrote:?}"
    );
}

/// `event.processing.failure.handling.mode`: a rows event cdc cannot decode
/// (a partial JSON update, written by a session that sets
/// binlog_row_value_options=PARTIAL_JSON; MySQL only) is skipped with
/// `warn` while the stream goes on, and stops the connector by default with
/// the setting that produced it named.
async fn an_undecodable_rows_event_is_skipped_with_warn_and_stops_by_default(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    if flavour == Flavour::MariaDb {
        eprintln!("skipped: MariaDB writes no partial JSON updates (no binlog_row_value_options)");
        return;
    }
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("CREATE TABLE docs (id BIGINT PRIMARY KEY, j JSON)")
        .await
        .unwrap();
    // A document large enough that MySQL logs the change as a diff.
    conn.query_drop(r#"INSERT INTO docs VALUES (1, JSON_OBJECT('a', 1, 'b', REPEAT('x', 500)))"#)
        .await
        .unwrap();
    let mut partial = admin(&stack, Some(&db)).await;
    partial
        .query_drop("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'")
        .await
        .unwrap();
    let base = config(&stack, &db);

    let warn = with(&base, &[("event.processing.failure.handling.mode", "warn")]);
    let docs = topic(&warn, &db, "docs");
    let mut running = start(warn);
    wait_for_records(&stack, &docs, "the snapshot", |r| !r.is_empty()).await;
    partial
        .query_drop("UPDATE docs SET j = JSON_SET(j, '$.a', 2) WHERE id = 1")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO docs VALUES (2, JSON_OBJECT())")
        .await
        .unwrap();
    let records = tokio::select! {
        stopped = &mut running.task => panic!("the connector stopped: {stopped:?}"),
        records = wait_for_records(&stack, &docs, "the insert after the partial update", |r| {
            r.iter().any(|r| r.key_id() == Some(2))
        }) => records,
    };
    running.stop().await;
    let got: Vec<_> = records.iter().map(|r| (r.op(), r.key_id())).collect();
    assert_eq!(
        got,
        vec![(Some("r".into()), Some(1)), (Some("c".into()), Some(2))],
        "the partial update is skipped, the insert after it is not"
    );

    let failing = config(&stack, &db);
    let docs = topic(&failing, &db, "docs");
    let running = start(failing);
    wait_for_records(&stack, &docs, "the snapshot", |r| r.len() >= 2).await;
    partial
        .query_drop("UPDATE docs SET j = JSON_SET(j, '$.a', 3) WHERE id = 1")
        .await
        .unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), running.task)
        .await
        .expect("the connector must stop")
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert!(!err.is_transient(), "{text}");
    assert!(text.contains("binlog_row_value_options"), "{text}");
}
