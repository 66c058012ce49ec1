//! The seed's pushes: `high_value_users` streamed back out to Kafka, and a
//! notification when a cart is abandoned.
//!
//! # Design: a sweep, an outbox, a publisher
//!
//! Both pushes are derived from the committed summary tables, never from the
//! batch commit path, so the consumer's exactly-once invariant (each batch's
//! writes and offsets in one transaction, `store.rs`) is untouched. Every
//! `--push-interval-ms` one task runs, in one Postgres transaction:
//!
//! 1. **Abandoned carts.** Every incomplete purchase (status 0) of a user in
//!    `inactive_users_last_3_mins` that is not yet in
//!    `abandoned_cart_notifications` is inserted there, an `abandoned_carts`
//!    event goes to `push_outbox`, and `pg_notify('abandoned_cart', json)` is
//!    called. Postgres delivers a NOTIFY only when its transaction commits, and
//!    the notification row commits with it, so each cart is notified once,
//!    across restarts and crashes (the key is the purchase id). The sweep reads
//!    the view, so it follows whatever inactivity window the view applies.
//!    Reading every incomplete purchase of every inactive user costs ~0.8 s at
//!    1M purchases, so a sweep reads only what changed since the previous one
//!    (`push_sweep_state`: users who crossed the window since, purchases above
//!    the highest id seen; ~15-30 ms), and a full sweep every
//!    [`FULL_SWEEP_EVERY`] (and at start) catches late pageviews, purchases
//!    committed out of id order and statuses set back to 0.
//! 2. **High-value users.** The `high_value_users` view is diffed against
//!    `high_value_users_published` (the set as last published): a user entering
//!    the set is a create (`op c`, `after`), a changed row an update (`op u`,
//!    `before` + `after`), a user leaving a delete (`op d`, `before`) that the
//!    publisher follows with a tombstone: Debezium's envelope, so a sink that
//!    follows Debezium topics (upsert on `after`, delete on `d`/tombstone)
//!    mirrors the set. The published table is updated in the same statement.
//!    Changes between two sweeps coalesce (one event per user per sweep
//!    carrying the newest row), which a sink following the topic cannot tell
//!    from a slower source.
//!
//! The transaction first takes an advisory transaction lock, so concurrent
//! instances sweep one after the other and each sees the previous one's state.
//!
//! Then the publisher sends `push_outbox` rows in id order (again under an
//! advisory lock, so one instance publishes at a time and order is kept),
//! waits until Kafka acknowledged all of them, and deletes them in the same
//! transaction that locked them. Delivery to Kafka is therefore at-least-once
//! and in order: a crash after the acks but before the delete re-sends the
//! same events in the same order (every event carries header `outbox.id`, so a
//! consumer that must see each once can drop repeats); a sink that applies
//! them as upserts/deletes by key ends in the same state either way.
//!
//! # Topics and formats
//!
//! - `high-value-users` (`--high-value-users-topic`): key Avro `{id: long}`,
//!   value a Debezium-style Avro envelope `{before, after, op, ts_ms}` whose
//!   `Value` is the view's row `{id, email, lifetime_value (decimal(38,2)),
//!   purchases}`; schemas registered under `<topic>-key` / `<topic>-value`,
//!   Confluent wire format. One partition, compacted.
//! - `abandoned-carts` (`--abandoned-carts-topic`): key the user id (decimal
//!   text, like pageviews), value the JSON the NOTIFY carries:
//!   `{purchase_id, user_id, email, item_id, purchase_price, quantity, status,
//!   created_at, abandoned_at}`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use pipeline::backoff::Backoff;
use pipeline::kafka::{ensure_topic, KafkaArgs, SideProducer, TopicError, TopicSpec};
use pipeline::registry::{RegistryClient, RegistryError};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value as Json};
use tokio_postgres::Client;

use crate::config::Config;
use crate::store::{self, col, StoreError};

/// The shortest big-endian two's complement of `v`: Avro decimal bytes, as
/// Connect's `Decimal` (`BigInteger.toByteArray()`) writes them.
fn minimal_twos_complement(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// `stream` values in `push_outbox`.
pub const HIGH_VALUE_USERS: &str = "high_value_users";
pub const ABANDONED_CARTS: &str = "abandoned_carts";
/// The NOTIFY channel.
pub const ABANDONED_CART_CHANNEL: &str = "abandoned_cart";

/// Arbitrary constants: advisory locks serialising the sweep and the publisher
/// across instances (the sweep's lives in the store: a purchases TRUNCATE
/// takes it too).
const SWEEP_LOCK: i64 = store::PUSH_SWEEP_LOCK;
const PUBLISH_LOCK: i64 = 0x7075_7368_7075_626c;
/// Outbox rows sent per publisher transaction.
const PUBLISH_BATCH: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("cannot register the {topic} schemas: {source}")]
    Registry {
        topic: String,
        source: Box<RegistryError>,
    },
    #[error("cannot create the push producer: {0}")]
    Client(Box<KafkaError>),
    #[error("cannot send outbox event {id} to {topic}: {source}")]
    Produce {
        id: i64,
        topic: String,
        source: Box<KafkaError>,
    },
    #[error(transparent)]
    Topic(#[from] Box<TopicError>),
    #[error("outbox event {id} is malformed: {reason}")]
    Malformed { id: i64, reason: String },
}

/// Newly abandoned carts: notification rows, outbox events, NOTIFYs and the
/// sweep's watermarks in one statement (one snapshot). `$1`: full sweep;
/// `$2`, `$3`: the watermarks of `push_sweep_state`. An incremental sweep
/// reads only users who crossed the inactivity window since the last sweep
/// and purchases above the purchase watermark (custom plans: the parameters
/// are known when the statement is planned, and `inactive` is inlined so the
/// planner sees `user_activity`'s statistics). NOT EXISTS skips carts already
/// notified without attempting their insert; ON CONFLICT is the backstop.
const SWEEP_ABANDONED: &str = "
WITH inactive AS NOT MATERIALIZED (
    SELECT ua.user_id, ua.last_pageview_at
    FROM inactive_users_last_3_mins iu
    JOIN user_activity ua ON ua.user_id = iu.user_id
), candidates AS (
    SELECT p.id
    FROM inactive i
    JOIN purchases p ON p.user_id = i.user_id AND p.status = 0
    WHERE $1 OR $2::timestamptz IS NULL OR i.last_pageview_at > $2::timestamptz
    UNION
    SELECT p.id
    FROM purchases p
    JOIN inactive i ON i.user_id = p.user_id
    WHERE p.id > $3 AND p.status = 0
), fresh AS (
    INSERT INTO abandoned_cart_notifications
        (purchase_id, user_id, email, item_id, purchase_price, quantity, created_at, notified_at)
    SELECT p.id, p.user_id, u.email, p.item_id, p.purchase_price, p.quantity, p.created_at, now()
    FROM candidates c
    JOIN purchases p ON p.id = c.id
    JOIN users u ON u.id = p.user_id
    WHERE NOT EXISTS (SELECT 1 FROM abandoned_cart_notifications n WHERE n.purchase_id = p.id)
    ON CONFLICT (purchase_id) DO NOTHING
    RETURNING *
), events AS (
    SELECT purchase_id, user_id,
           jsonb_build_object('purchase_id', purchase_id, 'user_id', user_id, 'email', email,
                              'item_id', item_id, 'purchase_price', purchase_price,
                              'quantity', quantity, 'status', 0, 'created_at', created_at,
                              'abandoned_at', notified_at) AS payload
    FROM fresh
), queued AS (
    INSERT INTO push_outbox (stream, key, payload)
    SELECT 'abandoned_carts', user_id, payload FROM events ORDER BY purchase_id
    RETURNING 1
), marked AS (
    UPDATE push_sweep_state SET
        inactive_watermark = GREATEST(inactive_watermark,
                                      (SELECT max(last_pageview_at) FROM inactive)),
        purchase_watermark = GREATEST(purchase_watermark,
                                      (SELECT COALESCE(max(id), 0) FROM purchases))
    RETURNING 1
)
SELECT count(pg_notify('abandoned_cart', payload::text)) FROM events";

/// How often the abandoned-cart sweep reads every incomplete purchase of every
/// inactive user instead of only what changed (see `push_sweep_state`).
pub const FULL_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The high-value set's changes since the last sweep, applied to the published
/// table and queued, in one statement (one snapshot).
const SWEEP_HIGH_VALUE: &str = "
WITH cur AS (
    SELECT id, email, lifetime_value, purchases FROM high_value_users
), changed AS (
    SELECT COALESCE(c.id, p.user_id) AS user_id,
           CASE WHEN p.user_id IS NOT NULL THEN jsonb_build_object(
               'id', p.user_id, 'email', p.email, 'purchases', p.purchases,
               'lifetime_value', p.lifetime_value,
               'lifetime_value_cents', round(p.lifetime_value * 100)::text) END AS before,
           CASE WHEN c.id IS NOT NULL THEN jsonb_build_object(
               'id', c.id, 'email', c.email, 'purchases', c.purchases,
               'lifetime_value', c.lifetime_value,
               'lifetime_value_cents', round(c.lifetime_value * 100)::text) END AS after
    FROM cur c
    FULL JOIN high_value_users_published p ON p.user_id = c.id
    WHERE c.id IS NULL OR p.user_id IS NULL
       OR (c.email, c.lifetime_value, c.purchases) IS DISTINCT FROM (p.email, p.lifetime_value, p.purchases)
), gone AS (
    DELETE FROM high_value_users_published p USING changed ch
    WHERE ch.after IS NULL AND p.user_id = ch.user_id
    RETURNING 1
), kept AS (
    INSERT INTO high_value_users_published (user_id, email, lifetime_value, purchases)
    SELECT c.id, c.email, c.lifetime_value, c.purchases
    FROM cur c JOIN changed ch ON ch.user_id = c.id
    ON CONFLICT (user_id) DO UPDATE
        SET email = excluded.email, lifetime_value = excluded.lifetime_value,
            purchases = excluded.purchases
    RETURNING 1
), queued AS (
    INSERT INTO push_outbox (stream, key, payload)
    SELECT 'high_value_users', user_id,
           jsonb_build_object('op', CASE WHEN before IS NULL THEN 'c'
                                         WHEN after IS NULL THEN 'd' ELSE 'u' END,
                              'before', before, 'after', after,
                              'ts_ms', (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
    FROM changed ORDER BY user_id
    RETURNING 1
)
SELECT count(*) FROM changed";

/// What one sweep found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub abandoned_carts: i64,
    pub high_value_changes: i64,
}

/// One sweep (see the module docs): both pushes' state, outbox rows and
/// NOTIFYs commit together or not at all.
///
/// `full`: read every incomplete purchase of every inactive user, not only
/// what changed since the last sweep (see [`FULL_SWEEP_EVERY`]).
pub async fn sweep(client: &mut Client, full: bool) -> Result<Swept, PushError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SWEEP_LOCK])
        .await?;
    let state = tx
        .query_one(
            "SELECT inactive_watermark, purchase_watermark FROM push_sweep_state",
            &[],
        )
        .await?;
    let (inactive_watermark, purchase_watermark): (Option<chrono::DateTime<chrono::Utc>>, i64) =
        (col(&state, 0)?, col(&state, 1)?);
    let abandoned_carts = tx
        .query_one(
            SWEEP_ABANDONED,
            &[&full, &inactive_watermark, &purchase_watermark],
        )
        .await?;
    let abandoned_carts: i64 = col(&abandoned_carts, 0)?;
    let high_value_changes = tx.query_one(SWEEP_HIGH_VALUE, &[]).await?;
    let high_value_changes: i64 = col(&high_value_changes, 0)?;
    tx.commit().await?;
    Ok(Swept {
        abandoned_carts,
        high_value_changes,
    })
}

/// The Avro schemas of the high-value-users topic and their registry ids.
#[derive(Debug)]
struct HighValueCodec {
    key_schema: Schema,
    value_schema: Schema,
    key_id: u32,
    value_id: u32,
}

fn high_value_key_schema() -> Json {
    json!({
        "type": "record", "name": "Key", "namespace": "analytics.high_value_users",
        "fields": [{"name": "id", "type": "long"}],
        "connect.name": "analytics.high_value_users.Key",
    })
}

fn high_value_value_schema() -> Json {
    let decimal = json!({
        "type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2,
        "connect.version": 1, "connect.name": "org.apache.kafka.connect.data.Decimal",
        "connect.parameters": {"scale": "2", "connect.decimal.precision": "38"},
    });
    json!({
        "type": "record", "name": "Envelope", "namespace": "analytics.high_value_users",
        "fields": [
            {"name": "before", "type": ["null", {
                "type": "record", "name": "Value",
                "fields": [
                    {"name": "id", "type": "long"},
                    {"name": "email", "type": ["null", "string"], "default": null},
                    {"name": "lifetime_value", "type": decimal},
                    {"name": "purchases", "type": "long"},
                ],
                "connect.name": "analytics.high_value_users.Value",
            }], "default": null},
            {"name": "after", "type": ["null", "Value"], "default": null},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"], "default": null},
        ],
        "connect.version": 1,
        "connect.name": "analytics.high_value_users.Envelope",
    })
}

impl HighValueCodec {
    async fn register(registry: &RegistryClient, topic: &str) -> Result<Self, PushError> {
        let (key_json, value_json) = (
            high_value_key_schema().to_string(),
            high_value_value_schema().to_string(),
        );
        let failed = |source| PushError::Registry {
            topic: topic.to_owned(),
            source: Box::new(source),
        };
        let key_id = registry
            .register(&format!("{topic}-key"), &key_json)
            .await
            .map_err(failed)?;
        let value_id = registry
            .register(&format!("{topic}-value"), &value_json)
            .await
            .map_err(failed)?;
        // The schemas are constants of this module (the unit tests parse
        // them): a failure here is a bug in this file, not an input.
        #[allow(clippy::expect_used)]
        let parse = |s: &str| Schema::parse_str(s).expect("the push schemas are valid Avro");
        Ok(Self {
            key_schema: parse(&key_json),
            value_schema: parse(&value_json),
            key_id,
            value_id,
        })
    }

    fn key(&self, id: i64) -> Result<Vec<u8>, apache_avro::Error> {
        frame(
            self.key_id,
            &self.key_schema,
            Value::Record(vec![("id".into(), Value::Long(id))]),
        )
    }

    /// The envelope for an outbox payload `{op, before, after, ts_ms}`.
    fn value(&self, payload: &Json) -> Result<Vec<u8>, String> {
        let row = |side: &str| -> Result<Value, String> {
            let Some(r) = payload.get(side).filter(|r| !r.is_null()) else {
                return Ok(Value::Union(0, Box::new(Value::Null)));
            };
            let id = r["id"].as_i64().ok_or("row without id")?;
            let email = match r["email"].as_str() {
                Some(e) => Value::Union(1, Box::new(Value::String(e.to_owned()))),
                None => Value::Union(0, Box::new(Value::Null)),
            };
            let cents: i128 = r["lifetime_value_cents"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .ok_or("row without lifetime_value_cents")?;
            let purchases = r["purchases"].as_i64().ok_or("row without purchases")?;
            Ok(Value::Union(
                1,
                Box::new(Value::Record(vec![
                    ("id".into(), Value::Long(id)),
                    ("email".into(), email),
                    (
                        "lifetime_value".into(),
                        Value::Decimal(apache_avro::Decimal::from(minimal_twos_complement(cents))),
                    ),
                    ("purchases".into(), Value::Long(purchases)),
                ])),
            ))
        };
        let op = payload["op"].as_str().ok_or("event without op")?;
        let ts = match payload["ts_ms"].as_i64() {
            Some(t) => Value::Union(1, Box::new(Value::Long(t))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let envelope = Value::Record(vec![
            ("before".into(), row("before")?),
            ("after".into(), row("after")?),
            ("op".into(), Value::String(op.to_owned())),
            ("ts_ms".into(), ts),
        ]);
        frame(self.value_id, &self.value_schema, envelope).map_err(|e| e.to_string())
    }
}

fn frame(id: u32, schema: &Schema, value: Value) -> Result<Vec<u8>, apache_avro::Error> {
    #[allow(deprecated)] // 0.22's datum API, as in decode.rs
    let datum = apache_avro::to_avro_datum(schema, value)?;
    let mut out = Vec::with_capacity(datum.len() + 5);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&datum);
    Ok(out)
}

/// One Kafka record to send for an outbox row.
struct Outgoing {
    id: i64,
    topic: String,
    key: Vec<u8>,
    /// None: a tombstone.
    payload: Option<Vec<u8>>,
}

/// Sends the push topics' outbox.
pub struct Publisher {
    producer: SideProducer,
    registry: RegistryClient,
    high_value_topic: String,
    abandoned_topic: String,
    codec: Option<HighValueCodec>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("high_value_topic", &self.high_value_topic)
            .field("abandoned_topic", &self.abandoned_topic)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(config: &Config, registry: RegistryClient) -> Result<Self, PushError> {
        // Order per key matters (a delete, its tombstone, a re-entry): the
        // side producer keeps one request in flight.
        let producer = SideProducer::new(&config.kafka.side_producer())
            .map_err(|e| PushError::Client(Box::new(e)))?;
        Ok(Self {
            producer,
            registry,
            high_value_topic: config.high_value_users_topic.clone(),
            abandoned_topic: config.abandoned_carts_topic.clone(),
            codec: None,
        })
    }

    /// Creates both topics unless they exist.
    pub async fn ensure_topics(
        &self,
        kafka: &KafkaArgs,
        replication: i32,
    ) -> Result<(), PushError> {
        for (name, configs) in [
            (&self.high_value_topic, &[("cleanup.policy", "compact")][..]),
            (&self.abandoned_topic, &[][..]),
        ] {
            ensure_topic(
                kafka,
                &TopicSpec {
                    name,
                    partitions: 1,
                    replication,
                    configs,
                },
            )
            .await
            .map_err(Box::new)?;
        }
        Ok(())
    }

    /// Sends up to [`PUBLISH_BATCH`] outbox rows in id order and deletes them
    /// once Kafka acknowledged every one. Returns how many rows went out.
    pub async fn publish(&mut self, client: &mut Client) -> Result<u64, PushError> {
        let tx = client.transaction().await?;
        let locked = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
            .await?;
        let locked: bool = col(&locked, 0)?;
        if !locked {
            return Ok(0);
        }
        let rows = tx
            .query(
                "SELECT id, stream, key, payload FROM push_outbox ORDER BY id LIMIT $1",
                &[&PUBLISH_BATCH],
            )
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut outgoing = Vec::with_capacity(rows.len() + 8);
        for row in &rows {
            let (id, stream, key, payload): (i64, String, i64, Json) =
                (col(row, 0)?, col(row, 1)?, col(row, 2)?, col(row, 3)?);
            let malformed = |reason: String| PushError::Malformed { id, reason };
            match stream.as_str() {
                HIGH_VALUE_USERS => {
                    let codec = match self.codec.take() {
                        Some(codec) => codec,
                        None => {
                            HighValueCodec::register(&self.registry, &self.high_value_topic).await?
                        }
                    };
                    let codec = &*self.codec.insert(codec);
                    let key_bytes = codec.key(key).map_err(|e| malformed(e.to_string()))?;
                    let value = codec.value(&payload).map_err(malformed)?;
                    let delete = payload["op"] == "d";
                    outgoing.push(Outgoing {
                        id,
                        topic: self.high_value_topic.clone(),
                        key: key_bytes.clone(),
                        payload: Some(value),
                    });
                    if delete {
                        // Debezium follows a delete with a tombstone so
                        // compaction can drop the key.
                        outgoing.push(Outgoing {
                            id,
                            topic: self.high_value_topic.clone(),
                            key: key_bytes,
                            payload: None,
                        });
                    }
                }
                ABANDONED_CARTS => outgoing.push(Outgoing {
                    id,
                    topic: self.abandoned_topic.clone(),
                    key: key.to_string().into_bytes(),
                    payload: Some(payload.to_string().into_bytes()),
                }),
                other => return Err(malformed(format!("unknown stream {other:?}"))),
            }
        }
        self.send_all(&outgoing).await?;
        let ids = rows
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<Vec<i64>, _>>()?;
        tx.execute("DELETE FROM push_outbox WHERE id = ANY($1)", &[&ids])
            .await?;
        tx.commit().await?;
        for o in &outgoing {
            metrics::counter!("analytics_push_records_total", "topic" => o.topic.clone())
                .increment(1);
        }
        Ok(rows.len() as u64)
    }

    async fn send_all(&self, outgoing: &[Outgoing]) -> Result<(), PushError> {
        let sends = outgoing.iter().map(|o| {
            let id = o.id.to_string();
            let headers = OwnedHeaders::new().insert(Header {
                key: "outbox.id",
                value: Some(&id),
            });
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&o.topic)
                .key(o.key.as_slice())
                .headers(headers);
            if let Some(p) = &o.payload {
                record = record.payload(p.as_slice());
            }
            let producer = &self.producer;
            async move {
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|source| PushError::Produce {
                        id: o.id,
                        topic: o.topic.clone(),
                        source: Box::new(source),
                    })
            }
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        Ok(())
    }
}

/// Sweeps and publishes every `--push-interval-ms` until `shutdown` is set.
/// Failures (Postgres, Kafka, registry) are logged, counted and retried with
/// backoff; they never stop the consumer.
/// The name under which a failing sweep or publish shows on /healthz (as a
/// dependency, so the consumer's own "healthy" does not hide it).
pub const HEALTH_NAME: &str = "pushes";

/// Sweeps and publishes until `shutdown`; failures are retried with backoff
/// and shown on /healthz (as [`HEALTH_NAME`]) until a round succeeds.
pub async fn run(
    config: Config,
    registry: RegistryClient,
    shutdown: Arc<AtomicBool>,
    health: pipeline::telemetry::Health,
) {
    let interval = Duration::from_millis(config.push_interval_ms.max(10));
    let mut backoff = Backoff::default();
    let mut publisher = match Publisher::new(&config, registry) {
        Ok(p) => p,
        Err(error) => {
            tracing::error!(%error, "pushes disabled: bad Kafka settings");
            return;
        }
    };
    let mut topics_ready = false;
    let mut client: Option<Client> = None;
    // The first sweep after a start is full.
    let mut last_full: Option<tokio::time::Instant> = None;
    while !shutdown.load(Ordering::Relaxed) {
        let result = async {
            if !topics_ready {
                publisher
                    .ensure_topics(&config.kafka, config.push_replication_factor)
                    .await?;
                topics_ready = true;
            }
            let c = match client.as_mut() {
                Some(c) if !c.is_closed() => c,
                _ => client.insert(store::connect(config.postgres_url.expose()).await?),
            };
            let full =
                last_full.is_none_or(|at: tokio::time::Instant| at.elapsed() >= FULL_SWEEP_EVERY);
            let swept = sweep(c, full).await?;
            if full {
                last_full = Some(tokio::time::Instant::now());
            }
            if swept != Swept::default() {
                tracing::debug!(?swept, "push sweep");
            }
            metrics::counter!("analytics_abandoned_carts_total")
                .increment(swept.abandoned_carts as u64);
            metrics::counter!("analytics_high_value_changes_total")
                .increment(swept.high_value_changes as u64);
            // Drain the outbox (several rounds when a sweep queued many).
            while publisher.publish(c).await? as i64 == PUBLISH_BATCH {}
            Ok::<(), PushError>(())
        }
        .await;
        let delay = match result {
            Ok(()) => {
                backoff = Backoff::default();
                health.recovered(HEALTH_NAME);
                interval
            }
            Err(error) => {
                metrics::counter!("analytics_push_failures_total").increment(1);
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "push sweep/publish failed; retrying");
                health.degraded(HEALTH_NAME, format!("push sweep/publish failing: {error}"));
                delay
            }
        };
        pipeline::shutdown::sleep_unless(&shutdown, delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> HighValueCodec {
        HighValueCodec {
            key_schema: Schema::parse_str(&high_value_key_schema().to_string()).unwrap(),
            value_schema: Schema::parse_str(&high_value_value_schema().to_string()).unwrap(),
            key_id: 7,
            value_id: 8,
        }
    }

    #[test]
    fn envelopes_round_trip_through_the_schema() {
        let codec = codec();
        let payload = json!({
            "op": "u",
            "before": {"id": 5, "email": "a@b", "purchases": 2, "lifetime_value_cents": "1000050"},
            "after": {"id": 5, "email": null, "purchases": 3, "lifetime_value_cents": "1200099"},
            "ts_ms": 1700000000000i64,
        });
        let bytes = codec.value(&payload).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 8]);
        #[allow(deprecated)]
        let decoded =
            apache_avro::from_avro_datum(&codec.value_schema, &mut &bytes[5..], None).unwrap();
        let Value::Record(fields) = decoded else {
            panic!("not a record")
        };
        assert_eq!(fields[2], ("op".into(), Value::String("u".into())));
        let Value::Union(1, after) = &fields[1].1 else {
            panic!("after is null")
        };
        let Value::Record(after) = after.as_ref() else {
            panic!("after is not a record")
        };
        let Value::Decimal(ltv) = &after[2].1 else {
            panic!("lifetime_value is not a decimal")
        };
        let unscaled: Vec<u8> = ltv.try_into().unwrap();
        assert_eq!(unscaled, minimal_twos_complement(1_200_099));
        assert_eq!(minimal_twos_complement(-200), vec![0xFF, 0x38]);
        assert_eq!(minimal_twos_complement(128), vec![0x00, 0x80]);
        assert_eq!(minimal_twos_complement(0), vec![0x00]);
        assert_eq!(after[1].1, Value::Union(0, Box::new(Value::Null)));
        let key = codec.key(5).unwrap();
        assert_eq!(&key[..5], &[0, 0, 0, 0, 7]);
    }

    #[test]
    fn a_delete_has_no_after() {
        let payload = json!({
            "op": "d",
            "before": {"id": 9, "email": "x", "purchases": 1, "lifetime_value_cents": "1"},
            "after": null,
        });
        let bytes = codec().value(&payload).unwrap();
        #[allow(deprecated)]
        let decoded =
            apache_avro::from_avro_datum(&codec().value_schema, &mut &bytes[5..], None).unwrap();
        let Value::Record(fields) = decoded else {
            panic!("not a record")
        };
        assert_eq!(fields[1].1, Value::Union(0, Box::new(Value::Null)));
        assert_eq!(fields[3].1, Value::Union(0, Box::new(Value::Null)));
    }
}
