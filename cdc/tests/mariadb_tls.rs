//! TLS to MariaDB under the verifying `database.ssl.mode`s, trust and key
//! stores, as `mysql_specifics` tests them on MySQL. The stack's MariaDB runs
//! without TLS (a test relies on a server that refuses it), so a private
//! MariaDB is given the TLS material of the stack's MySQL: its own CA, a
//! server certificate naming 127.0.0.1 (not `localhost`) and a client
//! certificate in a PKCS#12 key store. Both the snapshot connection and the
//! binlog stream go through the same TLS settings.

mod stack_support;

use mysql_async::prelude::Queryable;
use pipeline::testing::private_mariadb::replication_args;
use pipeline::testing::{stack_for, Flavour, Stack};
use stack_support::*;

fn topic(config: &cdc::config::Config, db: &str) -> String {
    format!("{}.{db}.users", config.connector.topic_prefix)
}

/// The connector starts, snapshots the one row and streams an insert made
/// after the snapshot (over the binlog connection), then stops.
async fn snapshot_and_stream_work(stack: &Stack, db: &str, config: cdc::config::Config, id: u32) {
    let users = topic(&config, db);
    let running = start(config);
    wait_for_records(stack, &users, "the snapshot", |r| !r.is_empty()).await;
    let mut conn = admin(stack, Some(db)).await;
    conn.query_drop(format!(
        "INSERT INTO users (id, email) VALUES ({id}, 'tls{id}@x')"
    ))
    .await
    .unwrap();
    wait_for_records(stack, &users, "the streamed insert", |r| {
        r.iter().any(|r| r.key_id() == Some(i64::from(id)))
    })
    .await;
    running.stop().await;
    conn.disconnect().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_tls_to_mariadb_trusts_only_the_named_ca_and_host() {
    let Some(mysql) = stack_for(Flavour::MySql) else {
        return;
    };
    let Some(stack) = stack_for(Flavour::MariaDb) else {
        return;
    };
    let tls = mysql
        .mysql_tls
        .clone()
        .expect("the stack's MySQL has its TLS material");
    let material = tls.ca.parent().expect("a directory").to_owned();
    let Some(server) = PrivateServer::start_with(Flavour::MariaDb, |root| {
        let mut args = replication_args(root, 71);
        args.extend([
            format!("--ssl-ca={}", tls.ca.display()),
            format!("--ssl-cert={}", material.join("server-cert.pem").display()),
            format!("--ssl-key={}", material.join("server-key.pem").display()),
        ]);
        args
    })
    .await
    else {
        return;
    };
    let private = server.stack(&stack);
    let db = demo_database(&private).await;
    let mut conn = admin(&private, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let ca = tls.ca.display().to_string();
    let config_for = |pairs: &[(&str, &str)]| with(&config(&private, &db), pairs);

    for (id, mode) in [(2, "verify_ca"), (3, "verify_identity")] {
        snapshot_and_stream_work(
            &private,
            &db,
            config_for(&[
                ("database.ssl.mode", mode),
                ("database.ssl.truststore", &ca),
            ]),
            id,
        )
        .await;
    }

    wrong_name_and_unknown_ca_are_refused(&config_for, &ca).await;

    // An account that must show a client certificate (MariaDB's REQUIRE
    // X509): in with the key store's, refused without.
    let (_, with_keystore, without) = x509_account(&mut conn, &tls, &config_for).await;
    snapshot_and_stream_work(&private, &db, with_keystore, 4).await;
    denied_without_a_client_certificate(without).await;
    conn.disconnect().await.ok();
    drop(server);
}
