//! Turning Kafka records into typed changes.
//!
//! CDC records are Debezium envelopes in the Confluent wire format (magic byte 0,
//! 4-byte big-endian schema id, Avro datum). Each is decoded with its *writer*
//! schema fetched from the registry (cached per id), and row values are read by
//! field NAME from `after`, generically over the Avro shapes a real connector
//! produces (`["null", T]` or `[T, "null"]` unions, int vs long, decimals as bytes
//! with the scale of the writer schema, ZonedTimestamp strings or
//! timestamp-millis longs). Columns added upstream are therefore ignored rather
//! than breaking decoding, and every schema version of a topic decodes.
//!
//! Semantics follow Materialize's `ENVELOPE DEBEZIUM`: the key names the row,
//! `after` upserts it, a null `after` or a tombstone (null value) deletes it.
//! A truncate event (`op` "t", null key, before/after null: Debezium emits it
//! when `skipped.operations` leaves `t` out) is [`Change::Truncate`]: every
//! row of the table is gone ([`crate::store`] clears what the table fed).
//!
//! Invariant: a record either decodes into a [`Record`], or is [`Rejected`] with a
//! one-line reason (it goes to the dead-letter topic), or decoding fails with a
//! [`DecodeError::Registry`] that must be retried: an unreachable registry (or
//! one refusing our credentials) never sends good records to the dead-letter
//! topic. Only a 404 for the record's schema id rejects the record.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, Utc};
use pipeline::pageview::{Pageview, PageviewTarget, CHANNELS};
use pipeline::registry::{RegistryClient, RegistryError};

/// Money as integer cents: the shop's decimals are DECIMAL(7,2) and (12,2).
pub type Cents = i64;
const CENTS_SCALE: u32 = 2;

/// Which input a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Cdc(Table),
    Pageviews,
}

/// The mirrored MySQL tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Users,
    Items,
    Purchases,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub email: Option<String>,
    pub is_vip: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub id: i64,
    pub name: Option<String>,
    pub category: Option<String>,
    pub price: Option<Cents>,
    pub inventory: Option<i64>,
    pub inventory_updated_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub item_id: Option<i64>,
    pub status: Option<i32>,
    pub quantity: Option<i64>,
    pub purchase_price: Option<Cents>,
    pub deleted: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A change to one mirrored row: the new row, or its deletion by key; or
/// to the whole table: a TRUNCATE removed every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<R> {
    Upsert(R),
    Delete(i64),
    Truncate,
}

/// One pageview, validated: the URL parsed, ids in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageviewEvent {
    pub user_id: i64,
    /// `Some(item)` for `/products/<item>`, `None` for `/profiles/<user>`.
    pub product: Option<i64>,
    /// `Some(user)` for `/profiles/<user>` (the page viewed, kept for
    /// `pageview_log`), `None` for a product page.
    pub profile: Option<i64>,
    /// One of [`CHANNELS`] without an allocation per pageview (a batch holds
    /// ~100,000 of them), any other channel owned.
    pub channel: Cow<'static, str>,
    pub received_at: DateTime<Utc>,
}

/// A decoded input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    User(Change<UserRow>, Option<DateTime<Utc>>),
    Item(Change<ItemRow>, Option<DateTime<Utc>>),
    Purchase(Change<PurchaseRow>, Option<DateTime<Utc>>),
    Pageview(PageviewEvent),
}

impl Record {
    /// The source event time used for freshness: MySQL commit time
    /// (`source.ts_ms`) or the pageview's `received_at`. Tombstones have none.
    pub fn event_time(&self) -> Option<DateTime<Utc>> {
        match self {
            Record::User(_, t) | Record::Item(_, t) | Record::Purchase(_, t) => *t,
            Record::Pageview(p) => Some(p.received_at),
        }
    }
}

/// Why a record was refused: goes to the dead-letter topic with `kind` and
/// `message` in its headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Rejected {
    /// Short machine-friendly class (also the metrics label).
    pub kind: &'static str,
    pub message: String,
}

impl Rejected {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Retry the batch later; the record is fine as far as we know. The
    /// source says whether the registry is down (transient) or refuses us
    /// (definite: e.g. HTTP 401, fix the credentials); either way the record
    /// is not a dead letter.
    #[error("cannot fetch writer schema {id}: {source}")]
    Registry { id: u32, source: RegistryError },
    /// Definite: the record is bad and goes to the dead-letter topic.
    #[error(transparent)]
    Rejected(#[from] Rejected),
}

/// A writer schema and what decoding needs to know about it.
#[derive(Debug)]
struct WriterSchema {
    schema: Schema,
    /// Scale of every decimal field of the row record, by field name.
    decimal_scales: HashMap<String, u32>,
}

/// Writer schemas by id, parsed, over the shared registry client (which
/// caches the schema texts and only successes; ids are immutable, so neither
/// cache needs invalidation).
#[derive(Debug)]
pub struct Registry {
    client: RegistryClient,
    cache: Mutex<HashMap<u32, Arc<WriterSchema>>>,
}

impl Registry {
    pub fn new(client: RegistryClient) -> Self {
        Self {
            client,
            cache: Mutex::default(),
        }
    }

    /// The registry client (shared with the pushes' schema registration).
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Puts a writer schema in the cache, as if fetched (tests, warm starts).
    pub fn preload(&self, id: u32, schema_json: &str) -> Result<(), Rejected> {
        let schema = Schema::parse_str(schema_json)
            .map_err(|e| Rejected::new("bad-schema", format!("schema id {id}: {e}")))?;
        let mut decimal_scales = HashMap::new();
        collect_decimal_scales(&schema, &mut decimal_scales);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            Arc::new(WriterSchema {
                schema,
                decimal_scales,
            }),
        );
        Ok(())
    }

    async fn schema(&self, id: u32) -> Result<Arc<WriterSchema>, DecodeError> {
        if let Some(found) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(found.clone());
        }
        let text = match self.client.schema(id).await {
            Ok(text) => text,
            Err(e) if e.status() == Some(404) => {
                return Err(Rejected::new(
                    "unknown-schema-id",
                    format!("schema id {id} is not in the registry: {e}"),
                )
                .into())
            }
            Err(source) => return Err(DecodeError::Registry { id, source }),
        };
        let schema = Schema::parse_str(&text).map_err(|e| {
            Rejected::new(
                "bad-schema",
                format!("schema id {id} does not parse as Avro: {e}"),
            )
        })?;
        let mut decimal_scales = HashMap::new();
        collect_decimal_scales(&schema, &mut decimal_scales);
        let entry = Arc::new(WriterSchema {
            schema,
            decimal_scales,
        });
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry.clone());
        Ok(entry)
    }

    /// Decodes one Confluent-framed Avro datum with its writer schema.
    async fn decode_framed(&self, bytes: &[u8]) -> Result<(Value, Arc<WriterSchema>), DecodeError> {
        let (id, mut datum) = split_frame(bytes)?;
        let writer = self.schema(id).await?;
        // The brief pins apache-avro 0.22's datum API (what schema_registry_converter 6 uses).
        #[allow(deprecated)]
        let value =
            apache_avro::from_avro_datum(&writer.schema, &mut datum, None).map_err(|e| {
                Rejected::new(
                    "bad-avro",
                    format!("datum does not decode with writer schema {id}: {e}"),
                )
            })?;
        Ok((value, writer))
    }

    /// Decodes a record of one of the CDC topics.
    pub async fn decode_cdc(
        &self,
        table: Table,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Record, DecodeError> {
        let Some(key) = key else {
            // Only a truncate event has no key (Debezium sends it with a
            // null key); anything else keyless is a table without primary key.
            return self.decode_keyless(table, value).await;
        };
        let (key_value, _) = self.decode_framed(key).await?;
        let id = key_id(&key_value)?;
        let Some(value) = value else {
            // Tombstone: delete by key.
            return Ok(delete_record(table, id, None));
        };
        let (envelope, writer) = self.decode_framed(value).await?;
        let fields = as_record(&envelope)
            .ok_or_else(|| Rejected::new("not-an-envelope", "value is not an Avro record"))?;
        let source_ts = source_ts(fields);
        let op = field(fields, "op").and_then(as_str);
        if op == Some("t") {
            // Debezium's truncate carries a null key; a keyed one is not
            // Debezium's, but it means the same.
            return Ok(truncate_record(table, source_ts));
        }
        let after = match field(fields, "after") {
            Some(v) => unwrap_union(v),
            None => {
                return Err(Rejected::new("not-an-envelope", "value has no `after` field").into())
            }
        };
        match after {
            Value::Null => Ok(delete_record(table, id, source_ts)),
            Value::Record(row) => {
                let row = RowReader {
                    fields: row,
                    scales: &writer.decimal_scales,
                };
                Ok(match table {
                    Table::Users => Record::User(Change::Upsert(row.user(id)?), source_ts),
                    Table::Items => Record::Item(Change::Upsert(row.item(id)?), source_ts),
                    Table::Purchases => {
                        Record::Purchase(Change::Upsert(row.purchase(id)?), source_ts)
                    }
                })
            }
            _ => Err(Rejected::new("not-an-envelope", "`after` is not a record").into()),
        }
    }
}

impl Registry {
    /// A record without a key: a truncate event, or refused.
    async fn decode_keyless(
        &self,
        table: Table,
        value: Option<&[u8]>,
    ) -> Result<Record, DecodeError> {
        let missing_key = || {
            Rejected::new(
                "missing-key",
                "CDC record has no key and is not a truncate event (a table without primary key?)",
            )
        };
        let Some(value) = value else {
            return Err(missing_key().into());
        };
        let (envelope, _) = self.decode_framed(value).await?;
        let fields = as_record(&envelope)
            .ok_or_else(|| Rejected::new("not-an-envelope", "value is not an Avro record"))?;
        match field(fields, "op").and_then(as_str) {
            Some("t") => Ok(truncate_record(table, source_ts(fields))),
            _ => Err(missing_key().into()),
        }
    }
}

/// `source.ts_ms` of an envelope, if any.
fn source_ts(envelope: &[(String, Value)]) -> Option<DateTime<Utc>> {
    field(envelope, "source")
        .and_then(as_record)
        .and_then(|s| field(s, "ts_ms"))
        .and_then(as_i64)
        .and_then(DateTime::from_timestamp_millis)
}

fn truncate_record(table: Table, ts: Option<DateTime<Utc>>) -> Record {
    match table {
        Table::Users => Record::User(Change::Truncate, ts),
        Table::Items => Record::Item(Change::Truncate, ts),
        Table::Purchases => Record::Purchase(Change::Truncate, ts),
    }
}

fn delete_record(table: Table, id: i64, ts: Option<DateTime<Utc>>) -> Record {
    match table {
        Table::Users => Record::User(Change::Delete(id), ts),
        Table::Items => Record::Item(Change::Delete(id), ts),
        Table::Purchases => Record::Purchase(Change::Delete(id), ts),
    }
}

/// Parses a pageview: JSON per `pipeline::pageview`, URL `/products/<id>` or
/// `/profiles/<id>`.
pub fn decode_pageview(value: Option<&[u8]>) -> Result<Record, Rejected> {
    let bytes =
        value.ok_or_else(|| Rejected::new("empty-pageview", "pageview record has no value"))?;
    let pv: Pageview = serde_json::from_slice(bytes).map_err(|e| {
        Rejected::new(
            "bad-json",
            format!("pageview is not valid JSON of the expected shape: {e}"),
        )
    })?;
    let target = pv
        .target()
        .map_err(|e| Rejected::new("unknown-url", e.to_string()))?;
    let out_of_range =
        |what: &str, v: u64| Rejected::new("bad-id", format!("{what} {v} does not fit a BIGINT"));
    let user_id = i64::try_from(pv.user_id).map_err(|_| out_of_range("user_id", pv.user_id))?;
    let (product, profile) = match target {
        PageviewTarget::Product(item) => (
            Some(i64::try_from(item).map_err(|_| out_of_range("item id", item))?),
            None,
        ),
        PageviewTarget::Profile(user) => (
            None,
            Some(i64::try_from(user).map_err(|_| out_of_range("profile id", user))?),
        ),
    };
    let received_at = DateTime::from_timestamp(pv.received_at, 0).ok_or_else(|| {
        Rejected::new(
            "bad-timestamp",
            format!("received_at {} is out of range", pv.received_at),
        )
    })?;
    Ok(Record::Pageview(PageviewEvent {
        user_id,
        product,
        profile,
        channel: match CHANNELS.iter().find(|c| **c == pv.channel) {
            Some(known) => Cow::Borrowed(*known),
            None => Cow::Owned(pv.channel),
        },
        received_at,
    }))
}

/// Splits the Confluent framing: magic byte 0, schema id (u32 BE), datum.
fn split_frame(bytes: &[u8]) -> Result<(u32, &[u8]), Rejected> {
    match bytes {
        [0, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => Err(Rejected::new(
            "not-avro",
            format!(
                "{} bytes without the Confluent framing (magic byte 0 + schema id)",
                bytes.len()
            ),
        )),
    }
}

fn collect_decimal_scales(schema: &Schema, out: &mut HashMap<String, u32>) {
    match schema {
        Schema::Record(record) => {
            for f in &record.fields {
                if let Some(scale) = decimal_scale(&f.schema) {
                    out.insert(f.name.clone(), scale);
                }
                collect_decimal_scales(&f.schema, out);
            }
        }
        Schema::Union(union) => {
            for v in union.variants() {
                collect_decimal_scales(v, out);
            }
        }
        _ => {}
    }
}

fn decimal_scale(schema: &Schema) -> Option<u32> {
    match schema {
        Schema::Decimal(d) => u32::try_from(d.scale).ok(),
        Schema::Union(u) => u.variants().iter().find_map(decimal_scale),
        _ => None,
    }
}

fn key_id(key: &Value) -> Result<i64, Rejected> {
    let fields =
        as_record(key).ok_or_else(|| Rejected::new("bad-key", "key is not an Avro record"))?;
    let id = match field(fields, "id") {
        Some(v) => Some(v),
        None if fields.len() == 1 => Some(&fields[0].1),
        None => None,
    };
    id.and_then(as_i64)
        .ok_or_else(|| Rejected::new("bad-key", "key has no integer `id` field"))
}

fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn as_record(v: &Value) -> Option<&[(String, Value)]> {
    match unwrap_union(v) {
        Value::Record(fields) => Some(fields),
        _ => None,
    }
}

fn field<'a>(fields: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn as_i64(v: &Value) -> Option<i64> {
    match unwrap_union(v) {
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Some(i64::from(*i)),
        Value::Long(l)
        | Value::TimestampMillis(l)
        | Value::TimestampMicros(l)
        | Value::TimeMicros(l)
        | Value::LocalTimestampMillis(l) => Some(*l),
        _ => None,
    }
}

fn as_str(v: &Value) -> Option<&str> {
    match unwrap_union(v) {
        Value::String(s) | Value::Enum(_, s) => Some(s),
        _ => None,
    }
}

/// Reads row fields by name. A missing field reads as NULL (a column dropped
/// upstream); a present field of an unusable type is a rejection.
struct RowReader<'a> {
    fields: &'a [(String, Value)],
    scales: &'a HashMap<String, u32>,
}

impl RowReader<'_> {
    fn bad(&self, name: &str, what: &str, v: &Value) -> Rejected {
        Rejected::new(
            "bad-field",
            format!("field `{name}` should be {what}, got {v:?}"),
        )
    }

    fn get(&self, name: &str) -> Option<&Value> {
        match field(self.fields, name).map(unwrap_union) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn i64(&self, name: &str) -> Result<Option<i64>, Rejected> {
        self.get(name)
            .map(|v| as_i64(v).ok_or_else(|| self.bad(name, "an integer", v)))
            .transpose()
    }

    fn i32(&self, name: &str) -> Result<Option<i32>, Rejected> {
        self.i64(name)?
            .map(|v| {
                i32::try_from(v).map_err(|_| self.bad(name, "a 32-bit integer", &Value::Long(v)))
            })
            .transpose()
    }

    fn string(&self, name: &str) -> Result<Option<String>, Rejected> {
        self.get(name)
            .map(|v| {
                as_str(v)
                    .map(str::to_owned)
                    .ok_or_else(|| self.bad(name, "a string", v))
            })
            .transpose()
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, Rejected> {
        self.get(name)
            .map(|v| match v {
                Value::Boolean(b) => Ok(*b),
                other => as_i64(other)
                    .map(|i| i != 0)
                    .ok_or_else(|| self.bad(name, "a boolean or integer", v)),
            })
            .transpose()
    }

    /// ZonedTimestamp strings (TIMESTAMP) or epoch milliseconds (DATETIME in
    /// connect mode, read as UTC like Debezium does).
    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, Rejected> {
        self.get(name)
            .map(|v| match v {
                Value::String(s) => DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| self.bad(name, "an ISO-8601 timestamp", v)),
                Value::TimestampMicros(us) => DateTime::from_timestamp_micros(*us)
                    .ok_or_else(|| self.bad(name, "a timestamp", v)),
                other => as_i64(other)
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or_else(|| self.bad(name, "a timestamp", v)),
            })
            .transpose()
    }

    /// Decimals in cents; exact rescaling from the writer schema's scale, and a
    /// rejection when cents cannot hold the value exactly.
    fn cents(&self, name: &str) -> Result<Option<Cents>, Rejected> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let (unscaled, scale) = match v {
            Value::Decimal(d) => {
                let bytes: Vec<u8> = d.try_into().map_err(|_| self.bad(name, "a decimal", v))?;
                let scale = self.scales.get(name).copied().unwrap_or(CENTS_SCALE);
                (
                    twos_complement(&bytes)
                        .ok_or_else(|| self.bad(name, "a decimal of at most 38 digits", v))?,
                    scale,
                )
            }
            Value::Bytes(bytes) => {
                let scale = self
                    .scales
                    .get(name)
                    .copied()
                    .ok_or_else(|| self.bad(name, "a decimal with a scale in its schema", v))?;
                (
                    twos_complement(bytes)
                        .ok_or_else(|| self.bad(name, "a decimal of at most 38 digits", v))?,
                    scale,
                )
            }
            Value::Double(f) => ((f * 100.0).round() as i128, CENTS_SCALE),
            Value::String(s) => (
                parse_decimal_text(s).ok_or_else(|| self.bad(name, "a decimal", v))?,
                CENTS_SCALE,
            ),
            other => (
                i128::from(as_i64(other).ok_or_else(|| self.bad(name, "a decimal", v))?),
                0,
            ),
        };
        to_cents(unscaled, scale)
            .map(Some)
            .ok_or_else(|| self.bad(name, "a decimal exact in cents", v))
    }

    fn user(&self, id: i64) -> Result<UserRow, Rejected> {
        Ok(UserRow {
            id,
            email: self.string("email")?,
            is_vip: self.bool("is_vip")?,
            created_at: self.time("created_at")?,
            updated_at: self.time("updated_at")?,
        })
    }

    fn item(&self, id: i64) -> Result<ItemRow, Rejected> {
        Ok(ItemRow {
            id,
            name: self.string("name")?,
            category: self.string("category")?,
            price: self.cents("price")?,
            inventory: self.i64("inventory")?,
            inventory_updated_at: self.time("inventory_updated_at")?,
            created_at: self.time("created_at")?,
            updated_at: self.time("updated_at")?,
        })
    }

    fn purchase(&self, id: i64) -> Result<PurchaseRow, Rejected> {
        Ok(PurchaseRow {
            id,
            user_id: self.i64("user_id")?,
            item_id: self.i64("item_id")?,
            status: self.i32("status")?,
            quantity: self.i64("quantity")?,
            purchase_price: self.cents("purchase_price")?,
            deleted: self.bool("deleted")?,
            created_at: self.time("created_at")?,
            updated_at: self.time("updated_at")?,
        })
    }
}

/// Big-endian two's complement, as Avro decimals are encoded.
fn twos_complement(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() {
        return Some(0);
    }
    if bytes.len() > 16 {
        return None;
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xFF } else { 0 };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf))
}

/// "12.34" -> 1234 (scale 2); None when not exact in cents.
fn parse_decimal_text(s: &str) -> Option<i128> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 || int.is_empty() && frac.is_empty() {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_val: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    let v = int.checked_mul(100)?.checked_add(frac_val)?;
    Some(if neg { -v } else { v })
}

fn to_cents(unscaled: i128, scale: u32) -> Option<Cents> {
    let cents = if scale <= CENTS_SCALE {
        unscaled.checked_mul(10i128.checked_pow(CENTS_SCALE - scale)?)?
    } else {
        let div = 10i128.checked_pow(scale - CENTS_SCALE)?;
        if unscaled % div != 0 {
            return None;
        }
        unscaled / div
    };
    i64::try_from(cents).ok()
}

/// Formats cents as SQL numeric text, e.g. -5 -> "-0.05".
pub fn cents_text(c: Cents) -> String {
    let sign = if c < 0 { "-" } else { "" };
    let abs = c.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_text_keeps_the_sign_of_small_values() {
        assert_eq!(cents_text(-5), "-0.05");
        assert_eq!(cents_text(123_456), "1234.56");
        assert_eq!(cents_text(0), "0.00");
    }

    #[test]
    fn decimals_rescale_exactly_or_not_at_all() {
        assert_eq!(to_cents(1234, 2), Some(1234));
        assert_eq!(to_cents(123_400, 4), Some(1234));
        assert_eq!(to_cents(123_401, 4), None);
        assert_eq!(to_cents(12, 0), Some(1200));
        assert_eq!(twos_complement(&[0xFF, 0x38]), Some(-200));
        assert_eq!(twos_complement(&[0x01, 0x00]), Some(256));
        assert_eq!(parse_decimal_text("-1.5"), Some(-150));
        assert_eq!(parse_decimal_text("1.505"), None);
    }

    #[test]
    fn frames_without_magic_byte_are_rejected() {
        assert_eq!(split_frame(&[0, 0, 0, 0, 7, 1]).unwrap(), (7, &[1u8][..]));
        assert_eq!(split_frame(b"{\"a\":1}").unwrap_err().kind, "not-avro");
        assert_eq!(split_frame(&[0, 1]).unwrap_err().kind, "not-avro");
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[tokio::test]
    async fn debezium_envelopes_decode_by_field_name_across_schema_versions() {
        use crate::fixtures::{purchase_cells, text, CdcEncoder, TableSchema};
        let v1 = TableSchema::purchases("mysql.shop.purchases");
        let v2 = v1.clone().with_text_column("coupon");
        let unreachable = pipeline::registry::RegistryArgs {
            retries: 0,
            ..pipeline::registry::RegistryArgs::new("http://127.0.0.1:1")
        };
        let registry = Registry::new(RegistryClient::new(&unreachable).unwrap());
        registry.preload(1, &v1.key_schema_json()).unwrap();
        registry.preload(2, &v1.value_schema_json()).unwrap();
        registry.preload(3, &v2.value_schema_json()).unwrap();
        let enc1 = CdcEncoder::with_ids(v1, 1, 2).unwrap();
        let enc2 = CdcEncoder::with_ids(v2, 1, 3).unwrap();
        let row = PurchaseRow {
            id: 42,
            user_id: Some(7),
            item_id: Some(9),
            status: Some(0),
            quantity: Some(3),
            purchase_price: Some(-12_345),
            deleted: Some(true),
            created_at: Some(t(1_700_000_000)),
            updated_at: Some(t(1_700_000_060)),
        };
        let mut cells = purchase_cells(&row);
        let decoded = registry
            .decode_cdc(
                Table::Purchases,
                Some(&enc1.key(42)),
                Some(&enc1.upsert("c", &cells, t(5))),
            )
            .await
            .unwrap();
        assert_eq!(
            decoded,
            Record::Purchase(Change::Upsert(row.clone()), Some(t(5)))
        );
        cells.push(text("SPRING"));
        let decoded = registry
            .decode_cdc(
                Table::Purchases,
                Some(&enc2.key(42)),
                Some(&enc2.upsert("u", &cells, t(6))),
            )
            .await
            .unwrap();
        assert_eq!(decoded, Record::Purchase(Change::Upsert(row), Some(t(6))));
        let deleted = registry
            .decode_cdc(
                Table::Purchases,
                Some(&enc2.key(42)),
                Some(&enc2.delete(&cells, t(7))),
            )
            .await
            .unwrap();
        assert_eq!(deleted, Record::Purchase(Change::Delete(42), Some(t(7))));
        let tombstone = registry
            .decode_cdc(Table::Purchases, Some(&enc2.key(42)), None)
            .await
            .unwrap();
        assert_eq!(tombstone, Record::Purchase(Change::Delete(42), None));
        let err = registry
            .decode_cdc(Table::Purchases, Some(&enc2.key(42)), Some(b"plain text"))
            .await
            .unwrap_err();
        assert!(matches!(err, DecodeError::Rejected(r) if r.kind == "not-avro"));
        // An id the registry does not have, with the registry unreachable, is
        // an outage (retry), never a dead letter.
        let err = registry
            .decode_cdc(
                Table::Purchases,
                Some(&enc2.key(42)),
                Some(&[0, 0, 0, 0, 99, 1]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DecodeError::Registry { id: 99, source } if source.is_transient()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_truncate_event_empties_the_table_and_other_keyless_records_are_refused() {
        use crate::fixtures::{purchase_cells, CdcEncoder, TableSchema};
        let table = TableSchema::purchases("mysql.shop.purchases");
        let registry = Registry::new(
            RegistryClient::new(&pipeline::registry::RegistryArgs::new("http://127.0.0.1:1"))
                .unwrap(),
        );
        registry.preload(1, &table.key_schema_json()).unwrap();
        registry.preload(2, &table.value_schema_json()).unwrap();
        let enc = CdcEncoder::with_ids(table, 1, 2).unwrap();
        // Debezium's: a null key.
        let truncate = registry
            .decode_cdc(Table::Purchases, None, Some(&enc.truncate(t(9))))
            .await
            .unwrap();
        assert_eq!(truncate, Record::Purchase(Change::Truncate, Some(t(9))));
        // With a key it means the same.
        let keyed = registry
            .decode_cdc(Table::Items, Some(&enc.key(1)), Some(&enc.truncate(t(9))))
            .await
            .unwrap();
        assert_eq!(keyed, Record::Item(Change::Truncate, Some(t(9))));
        // A keyless row change (a table without primary key) is refused.
        let row = PurchaseRow {
            id: 1,
            user_id: None,
            item_id: None,
            status: None,
            quantity: None,
            purchase_price: None,
            deleted: None,
            created_at: None,
            updated_at: None,
        };
        let keyless = registry
            .decode_cdc(
                Table::Purchases,
                None,
                Some(&enc.upsert("c", &purchase_cells(&row), t(9))),
            )
            .await
            .unwrap_err();
        assert!(matches!(keyless, DecodeError::Rejected(r) if r.kind == "missing-key"));
        let nothing = registry
            .decode_cdc(Table::Users, None, None)
            .await
            .unwrap_err();
        assert!(matches!(nothing, DecodeError::Rejected(r) if r.kind == "missing-key"));
    }

    #[test]
    fn known_channels_are_not_allocated_per_pageview() {
        let channel = |name: &str| {
            let json = format!(
                r#"{{"user_id": 3, "url": "/products/7", "channel": "{name}", "received_at": 60}}"#
            );
            match decode_pageview(Some(json.as_bytes())).unwrap() {
                Record::Pageview(pv) => pv.channel,
                other => panic!("not a pageview: {other:?}"),
            }
        };
        for known in CHANNELS {
            assert!(matches!(channel(known), Cow::Borrowed(c) if c == known));
        }
        assert!(matches!(channel("newsletter"), Cow::Owned(c) if c == "newsletter"));
    }

    #[test]
    fn pageviews_parse_or_are_rejected_with_a_reason() {
        let ok = decode_pageview(Some(
            br#"{"user_id": 3, "url": "/products/7", "channel": "social", "received_at": 60}"#,
        ))
        .unwrap();
        assert_eq!(
            ok,
            Record::Pageview(PageviewEvent {
                user_id: 3,
                product: Some(7),
                profile: None,
                channel: "social".into(),
                received_at: DateTime::from_timestamp(60, 0).unwrap(),
            })
        );
        let bad_url =
            br#"{"user_id": 3, "url": "/cart/7", "channel": "social", "received_at": 60}"#;
        assert_eq!(
            decode_pageview(Some(bad_url)).unwrap_err().kind,
            "unknown-url"
        );
        assert_eq!(
            decode_pageview(Some(b"not json")).unwrap_err().kind,
            "bad-json"
        );
    }
}
