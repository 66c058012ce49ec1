//! Proof that the local stack is real: a framed Avro record through the schema
//! registry and the Kafka broker, binlog row events with column names from
//! MariaDB, and a Postgres query. Each test skips (with the reason printed) when
//! no stack is configured, and fails under `make test`.

use std::time::Duration;

use apache_avro::types::Value;
use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;
use pipeline::kafka::{ensure_topic, TopicSpec};
use pipeline::testing::{stack, stack_for, unique_name, Flavour};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn avro_record_round_trips_through_registry_and_broker() {
    let Some(stack) = stack() else { return };
    let topic = unique_name("smoke");
    ensure_topic(
        &stack.kafka(),
        &TopicSpec {
            name: &topic,
            partitions: 1,
            replication: 1,
            configs: &[],
        },
    )
    .await
    .expect("create topic");

    let schema = r#"{"type":"record","name":"Ping","namespace":"smoke","fields":[{"name":"n","type":"long"},{"name":"who","type":"string"}]}"#;
    let settings = SrSettings::new(stack.schema_registry_url.clone());
    let encoder = AvroEncoder::new(settings.clone());
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.clone(),
        false,
        SuppliedSchema::new(Some("smoke.Ping".into()), SchemaType::Avro, schema.into()),
    );
    let payload = encoder
        .encode(
            vec![
                ("n", Value::Long(42)),
                ("who", Value::String("stack".into())),
            ],
            strategy,
        )
        .await
        .expect("register and encode");
    assert_eq!(payload[0], 0, "Confluent framing starts with magic byte 0");

    let producer: FutureProducer = stack
        .kafka()
        .client_config()
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivery");

    let consumer: StreamConsumer = stack
        .kafka()
        .client_config()
        .set("group.id", unique_name("smoke"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(TIMEOUT, consumer.recv())
        .await
        .expect("a record within the timeout")
        .expect("consume");
    assert_eq!(message.key(), Some(&b"k"[..]));
    let decoded = AvroDecoder::new(settings)
        .decode(message.payload())
        .await
        .expect("decode through the registry");
    assert_eq!(
        decoded.value,
        Value::Record(vec![
            ("n".into(), Value::Long(42)),
            ("who".into(), Value::String("stack".into())),
        ])
    );
}

/// Column values of one row image, by name, as the table map's FULL metadata names them.
fn named(row: &mysql_async::binlog::row::BinlogRow) -> Vec<(String, String)> {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = match row.as_ref(i) {
                Some(BinlogValue::Value(v)) => v.as_sql(true),
                other => format!("{other:?}"),
            };
            (column.name_str().into_owned(), value)
        })
        .collect()
}

#[tokio::test]
async fn binlog_rows_carry_column_names_from_the_table_map() {
    let Some(stack) = stack() else { return };
    let db = stack.fresh_mysql_database().await;
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .expect("connect");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, label VARCHAR(20))")
        .await
        .unwrap();
    let (file, pos): (String, u64) = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|row: mysql_async::Row| (row.get(0).unwrap(), row.get(1).unwrap()))
        .expect("binary logging is on");
    conn.query_drop("INSERT INTO t VALUES (1, 'one')")
        .await
        .unwrap();
    conn.query_drop("UPDATE t SET label = 'uno' WHERE id = 1")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM t WHERE id = 1").await.unwrap();

    // The connector's own account reads the binlog: this also proves its grants.
    let cdc_url = format!(
        "mysql://{}:{}@{}:{}/",
        stack.cdc_user, stack.cdc_password, stack.mysql_host, stack.mysql_port
    );
    let binlog_conn = mysql_async::Conn::from_url(cdc_url)
        .await
        .expect("cdc account connects");
    let mut stream = binlog_conn
        .get_binlog_stream(
            BinlogStreamRequest::new(4_000_000 + std::process::id())
                .with_filename(file.as_bytes())
                .with_pos(pos),
        )
        .await
        .expect("binlog stream");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(TIMEOUT, stream.next())
            .await
            .expect("binlog events within the timeout")
            .expect("stream open")
            .expect("event");
        let Some(EventData::RowsEvent(rows)) = event.read_data().expect("parse") else {
            continue;
        };
        let tme = stream
            .get_tme(rows.table_id())
            .expect("table map precedes rows");
        if tme.database_name() != db.as_str() {
            continue;
        }
        let kind = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => "insert",
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => "update",
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => "delete",
            _ => "other",
        };
        for row in rows.rows(tme) {
            let (before, after) = row.expect("row decodes");
            seen.push((kind, before.as_ref().map(named), after.as_ref().map(named)));
        }
    }
    let image = |id: &str, label: &str| {
        Some(vec![
            ("id".to_owned(), id.to_owned()),
            ("label".to_owned(), label.to_owned()),
        ])
    };
    assert_eq!(
        seen,
        vec![
            ("insert", None, image("1", "'one'")),
            ("update", image("1", "'one'"), image("1", "'uno'")),
            ("delete", image("1", "'uno'"), None),
        ]
    );
}

#[tokio::test]
async fn postgres_answers_queries() {
    let Some(stack) = stack() else { return };
    let url = stack.fresh_postgres_database().await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT 40 + $1::int AS answer", &[&2i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>("answer"), 42);
}

#[tokio::test]
async fn stack_migrations_created_the_shop_schema_and_analytics_database() {
    let Some(stack) = stack() else { return };
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(Some("shop")))
        .await
        .expect("the shop database exists");
    let tables: Vec<String> = conn
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop' ORDER BY 1")
        .await
        .unwrap();
    assert_eq!(tables, ["items", "purchases", "users"]);
    let (client, connection) =
        tokio_postgres::connect(&stack.postgres_url("analytics"), tokio_postgres::NoTls)
            .await
            .expect("the analytics database exists");
    tokio::spawn(connection);
    let applied: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert!(applied >= 1, "analytics migrations were applied");
}

/// The stack's real MySQL: Oracle's server with the compose demo's binlog
/// settings, and the connector account (caching_sha2_password, 9.x's only
/// password plugin) logs in over plain TCP (RSA key exchange) and over TLS.
#[tokio::test]
async fn stack_mysql_is_oracle_mysql_with_gtids_and_a_caching_sha2_connector_account() {
    let Some(stack) = stack_for(Flavour::MySql) else {
        return;
    };
    let mut admin = mysql_async::Conn::from_url(stack.mysql_url(None))
        .await
        .expect("root over TCP");
    let (version, gtid_mode, format, image, metadata): (String, String, String, String, String) =
        admin
            .query_first(
                "SELECT VERSION(), @@gtid_mode, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata",
            )
            .await
            .unwrap()
            .unwrap();
    assert!(!version.to_lowercase().contains("mariadb"), "{version}");
    assert_eq!(
        (
            gtid_mode.as_str(),
            format.as_str(),
            image.as_str(),
            metadata.as_str()
        ),
        ("ON", "ROW", "FULL", "FULL")
    );
    let plugin: String = admin
        .query_first("SELECT plugin FROM mysql.user WHERE user = 'cdc' AND host = '%'")
        .await
        .unwrap()
        .expect("the migrations created the cdc account");
    assert_eq!(plugin, "caching_sha2_password");
    admin.disconnect().await.ok();

    for tls in [false, true] {
        let mut opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(stack.mysql_host.clone())
            .tcp_port(stack.mysql_port)
            .user(Some(stack.cdc_user.clone()))
            .pass(Some(stack.cdc_password.clone()))
            .prefer_socket(false);
        if tls {
            // The server's certificate is self-signed (made at initialisation).
            opts = opts
                .ssl_opts(mysql_async::SslOpts::default().with_danger_accept_invalid_certs(true));
        }
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .unwrap_or_else(|e| panic!("cdc login (tls={tls}): {e}"));
        let cipher: Option<(String, String)> = conn
            .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .await
            .unwrap();
        let cipher = cipher.map(|(_, c)| c).unwrap_or_default();
        assert_eq!(
            !cipher.is_empty(),
            tls,
            "Ssl_cipher = {cipher:?} (tls={tls})"
        );
        // 8.4+ names: SHOW MASTER STATUS is gone in 9.x.
        let status: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOG STATUS").await.unwrap();
        assert_eq!(status.len(), 1);
        conn.disconnect().await.ok();
    }
}

/// A private MySQL (tests that stop servers or change settings use one):
/// it gets its own server UUID, keeps its data across a clean stop and a
/// SIGKILL, and its files go with the handle.
#[tokio::test]
async fn a_private_mysql_server_restarts_with_its_data_and_cleans_up() {
    use pipeline::testing::private_mysql::{chroot, replication_args, PrivateMySql};
    let Some(_stack) = stack_for(Flavour::MySql) else {
        return;
    };
    let Some(root) = chroot() else { return };
    let mut server = PrivateMySql::start(&root, &replication_args(41)).await;
    let dir = server.host_path("");
    let mut conn = server.admin().await;
    let stack_uuid: String = {
        let stack = stack_for(Flavour::MySql).unwrap();
        let mut c = mysql_async::Conn::from_url(stack.mysql_url(None))
            .await
            .unwrap();
        c.query_first("SELECT @@server_uuid")
            .await
            .unwrap()
            .unwrap()
    };
    let uuid: String = conn
        .query_first("SELECT @@server_uuid")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(uuid, stack_uuid, "a private server has its own server_uuid");
    conn.query_drop(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1)",
    )
    .await
    .unwrap();
    conn.disconnect().await.ok();
    server.stop().await;
    server.start_again().await;
    let mut conn = server.admin().await;
    conn.query_drop("INSERT INTO d.t VALUES (2)").await.unwrap();
    conn.disconnect().await.ok();
    server.kill();
    server.start_again().await;
    let mut conn = server.admin().await;
    let (n, executed): (i64, String) = conn
        .query_first("SELECT (SELECT COUNT(*) FROM d.t), @@gtid_executed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);
    assert!(executed.starts_with(&uuid), "{executed}");
    conn.disconnect().await.ok();
    drop(server);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
