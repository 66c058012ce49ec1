//! Schema registration and the Confluent wire format.
//!
//! Subjects follow Kafka's TopicNameStrategy: `<topic>-key` and `<topic>-value`.
//! Invariant: a record is framed only with an id the registry returned for the
//! exact schema text its datum was written with ([`crate::envelope::TableCodec`]
//! builds both together); ids are cached per (subject, schema text) so a schema
//! is registered once per process, and a new table shape after DDL simply gets
//! a new id (the registry deduplicates identical schemas).

use std::collections::HashMap;
use std::sync::Mutex;

use pipeline::registry::RegistryArgs;

/// Why a schema could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Transient: network trouble or a 5xx; retry.
    #[error("schema registry {url} unreachable or failing: {reason}")]
    Unavailable { url: String, reason: String },
    /// Definite: the registry refused the schema (incompatible, invalid, auth).
    #[error("schema registry refused subject {subject}: HTTP {status}: {body}; check the subject's compatibility level and the credentials")]
    Refused {
        subject: String,
        status: u16,
        body: String,
    },
}

impl RegistryError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A registry client with an id cache.
#[derive(Debug)]
pub struct Registry {
    args: RegistryArgs,
    http: reqwest::Client,
    ids: Mutex<HashMap<(String, String), u32>>,
}

#[derive(serde::Deserialize)]
struct IdResponse {
    id: u32,
}

impl Registry {
    pub fn new(args: RegistryArgs) -> Self {
        Self {
            args,
            http: reqwest::Client::new(),
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// Registers (or finds) `schema` under `subject`; returns its global id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let cache_key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = self.lock().get(&cache_key) {
            return Ok(*id);
        }
        let url = format!(
            "{}/subjects/{subject}/versions",
            self.args.url.trim_end_matches('/')
        );
        let mut request = self
            .http
            .post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": schema }));
        if let Some((user, password)) = self.args.basic_auth() {
            request = request.basic_auth(user, password);
        }
        let unavailable = |reason: String| RegistryError::Unavailable {
            url: self.args.url.clone(),
            reason,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if status.is_server_error() {
            return Err(unavailable(format!("HTTP {status}: {body}")));
        }
        if !status.is_success() {
            return Err(RegistryError::Refused {
                subject: subject.to_owned(),
                status: status.as_u16(),
                body,
            });
        }
        let id = serde_json::from_str::<IdResponse>(&body)
            .map_err(|e| unavailable(format!("unexpected answer {body:?}: {e}")))?
            .id;
        self.lock().insert(cache_key, id);
        Ok(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u32>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts a Confluent-framed payload: magic byte 0, then the id big-endian.
/// The caller appends the Avro datum to the same buffer (no copy).
pub fn start_frame(schema_id: u32, out: &mut Vec<u8>) {
    out.clear();
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// The schema id of a framed payload, if it is one.
pub fn frame_schema_id(payload: &[u8]) -> Option<u32> {
    match payload {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout() {
        let mut buf = vec![9, 9];
        start_frame(0x0102_0304, &mut buf);
        buf.push(42);
        assert_eq!(buf, vec![0, 1, 2, 3, 4, 42]);
        assert_eq!(frame_schema_id(&buf), Some(0x0102_0304));
        assert_eq!(frame_schema_id(&[1, 0, 0, 0, 1]), None);
    }
}
