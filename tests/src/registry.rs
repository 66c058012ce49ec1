//! An in-memory Confluent Schema Registry **test fixture**.
//!
//! This is not a schema registry for production: all state lives in one process's memory and is
//! lost when it exits, there is no authentication, no persistence, no clustering, and only Avro
//! schemas without references are accepted. It exists so that tests and the local stack can run
//! without a JVM or Docker; docker-compose uses a real registry (Redpanda's).
//!
//! It implements the subset of the Confluent REST API that our services and
//! `schema_registry_converter` use:
//!
//! - `POST /subjects/{s}/versions` register, `POST /subjects/{s}` look up by schema,
//! - `GET /schemas/ids/{id}`, `GET /schemas/ids/{id}/versions`, `GET /schemas/types`,
//! - `GET /subjects`, `GET /subjects/{s}/versions`, `GET /subjects/{s}/versions/{v|latest|-1}`,
//!   `GET /subjects/{s}/versions/{v}/schema`, `DELETE /subjects/{s}`,
//!   `DELETE /subjects/{s}/versions/{v}`,
//! - `GET|PUT /config`, `GET|PUT /config/{s}` (`?defaultToGlobal=true`),
//! - `POST /compatibility/subjects/{s}/versions[/{v}]` (`?verbose=true` adds `messages`).
//!
//! Invariants this module enforces:
//!
//! - Schema ids are global and stable: two registrations of the same schema, under any subjects,
//!   get the same id. "The same" means equal after parsing and re-serialising with apache-avro,
//!   so whitespace and key order do not matter but defaults, docs and custom properties (such as
//!   Debezium's `connect.*`) do; the Avro *parsing canonical form* strips defaults, which would
//!   let schemas that resolve differently share an id, so it is deliberately not used.
//! - Registering a schema that a subject already has (at any live version) returns its id and
//!   creates no version. A new version is only added after it passes the subject's
//!   compatibility level (default `BACKWARD`) against the previous version (or all previous
//!   versions for the `*_TRANSITIVE` levels), judged with Avro schema-resolution rules; a
//!   resolution that may fail at run time (apache-avro's `Partial`, e.g. a narrowed union) counts
//!   as incompatible, as it does in Confluent's checker.
//! - Version numbers in a subject only grow, even across deletes.
//! - Deletes are soft and simplified: `DELETE /subjects/{s}` hides all its versions (the subject
//!   then answers 40401 and is not listed), but schema ids stay resolvable through
//!   `/schemas/ids/{id}` forever, as they do after a soft delete in Confluent. There is no
//!   `?deleted=true` listing and no `?permanent=true`; those query parameters are ignored. The
//!   subject's own compatibility level survives the delete.
//! - Every response, errors included, has content type `application/vnd.schemaregistry.v1+json`
//!   and errors have Confluent's body `{"error_code": 40401, "message": "..."}`. Request bodies
//!   are parsed as JSON whatever their declared content type.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    str::FromStr,
    sync::Arc,
};

use apache_avro::{
    schema_compatibility::{Compatibility, SchemaCompatibility},
    Schema,
};
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderValue, StatusCode},
    middleware::map_response,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::{net::TcpListener, sync::RwLock};

/// The content type of every response, as Confluent's registry sends it.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Serves the registry on `listener` with fresh, empty state until the server fails.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(SchemaRegistry::default())).await
}

/// The HTTP API over `registry`; clone the registry first to keep a handle on its state.
pub fn router(registry: SchemaRegistry) -> Router {
    Router::new()
        .route("/", get(|| async { Json(json!({})) }))
        .route("/schemas/types", get(|| async { Json(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config).put(put_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .fallback(|| async { RegistryError::NoSuchEndpoint })
        .method_not_allowed_fallback(|| async { RegistryError::MethodNotAllowed })
        .layer(map_response(set_content_type))
        .with_state(registry)
}

/// Why a request failed; each variant maps to one Confluent HTTP status and `error_code`.
///
/// All are definite: the caller must change its request (or the registry's state) before a
/// retry can succeed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 404 / 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 404 / 40402.
    #[error("Version {0} not found.")]
    VersionNotFound(u32),
    /// 404 / 40403.
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// 404 / 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    /// 404 / 404: the URL matches none of the implemented endpoints.
    #[error("HTTP 404 Not Found (this test fixture implements only a subset of the Confluent Schema Registry API)")]
    NoSuchEndpoint,
    /// 405 / 405.
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// 409 / 409.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{details}]")]
    Incompatible { subject: String, details: String },
    /// 422 / 42201.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 422 / 42202.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// 422 / 42203.
    #[error("Invalid compatibility level '{0}'. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel(String),
    /// 400 / 400: the body is not the JSON object the endpoint expects.
    #[error("Unrecognizable request body: {0}")]
    MalformedBody(String),
}

impl RegistryError {
    fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            Self::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            Self::VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            Self::SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            Self::SubjectConfigNotFound(_) => (StatusCode::NOT_FOUND, 40408),
            Self::NoSuchEndpoint => (StatusCode::NOT_FOUND, 404),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            Self::Incompatible { .. } => (StatusCode::CONFLICT, 409),
            Self::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            Self::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            Self::InvalidCompatibilityLevel(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            Self::MalformedBody(_) => (StatusCode::BAD_REQUEST, 400),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        tracing::debug!(status = status.as_u16(), error_code = code, "{self}");
        let body = json!({ "error_code": code, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// A subject's or the global compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompatibilityLevel {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    /// Whether readers of the new schema must read data written with older ones.
    fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether readers of older schemas must read data written with the new one.
    fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Confluent accepts the level in any case.
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel(s.to_owned())),
        })
    }
}

/// A handle on one registry's state; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SchemaRegistry {
    state: Arc<RwLock<RegistryState>>,
}

impl SchemaRegistry {
    /// The text first registered with schema id `id`, verbatim (what
    /// `GET /schemas/ids/{id}` answers), for a caller in the same process.
    pub async fn schema_text(&self, id: u32) -> Option<String> {
        self.state.read().await.schema(id).map(|s| s.text.clone())
    }
}

#[derive(Debug, Default)]
struct RegistryState {
    /// Schema id `n` is at index `n - 1`; ids are never reused or removed.
    schemas: Vec<StoredSchema>,
    /// Identity key (see the module docs) to schema id.
    ids_by_identity: HashMap<String, u32>,
    subjects: BTreeMap<String, Subject>,
    global_level: CompatibilityLevel,
    subject_levels: HashMap<String, CompatibilityLevel>,
}

#[derive(Debug)]
struct StoredSchema {
    /// The text first registered, returned verbatim so clients see what they sent.
    text: String,
    parsed: Schema,
}

#[derive(Debug, Default)]
struct Subject {
    /// Live versions in increasing version order; empty once the subject is deleted.
    versions: Vec<SubjectVersion>,
    /// The number the next version gets; survives deletes so numbers are never reused.
    next_version: u32,
}

#[derive(Debug, Clone, Copy)]
struct SubjectVersion {
    version: u32,
    id: u32,
}

/// A schema from a request body, parsed and keyed for identity.
struct CandidateSchema {
    text: String,
    parsed: Schema,
    identity: String,
}

/// Which version a URL names.
#[derive(Debug, Clone, Copy)]
enum VersionSelector {
    Latest,
    Number(u32),
}

impl VersionSelector {
    fn parse(raw: &str) -> Result<Self, RegistryError> {
        if raw == "latest" || raw == "-1" {
            return Ok(Self::Latest);
        }
        match raw.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(Self::Number(n)),
            _ => Err(RegistryError::InvalidVersion(raw.to_owned())),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flags {
    default_to_global: Option<String>,
    verbose: Option<String>,
}

impl Flags {
    fn is_set(flag: &Option<String>) -> bool {
        flag.as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

#[derive(Serialize)]
struct VersionBody<'a> {
    subject: &'a str,
    version: u32,
    id: u32,
    schema: &'a str,
}

impl RegistryState {
    fn schema(&self, id: u32) -> Option<&StoredSchema> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.schemas.get(index)
    }

    fn live_subject(&self, name: &str) -> Result<&Subject, RegistryError> {
        self.subjects
            .get(name)
            .filter(|s| !s.versions.is_empty())
            .ok_or_else(|| RegistryError::SubjectNotFound(name.to_owned()))
    }

    fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
    ) -> Result<SubjectVersion, RegistryError> {
        let live = self.live_subject(subject)?;
        let found = match selector {
            VersionSelector::Latest => live.versions.last(),
            VersionSelector::Number(n) => live.versions.iter().find(|v| v.version == n),
        };
        match (found, selector) {
            (Some(v), _) => Ok(*v),
            (None, VersionSelector::Number(n)) => Err(RegistryError::VersionNotFound(n)),
            // A live subject always has a latest version.
            (None, VersionSelector::Latest) => {
                Err(RegistryError::SubjectNotFound(subject.to_owned()))
            }
        }
    }

    fn version_body<'a>(&'a self, subject: &'a str, v: SubjectVersion) -> VersionBody<'a> {
        VersionBody {
            subject,
            version: v.version,
            id: v.id,
            schema: self.schema(v.id).map_or("", |s| s.text.as_str()),
        }
    }

    fn level(&self, subject: &str) -> CompatibilityLevel {
        self.subject_levels
            .get(subject)
            .copied()
            .unwrap_or(self.global_level)
    }

    /// Why `candidate` may not follow `existing` under `level`; empty when it may.
    fn incompatibilities(
        &self,
        candidate: &Schema,
        existing: &[SubjectVersion],
        level: CompatibilityLevel,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for previous in existing {
            let Some(old) = self.schema(previous.id) else {
                continue;
            };
            if level.backward() {
                if let Some(why) = cannot_read(&old.parsed, candidate) {
                    problems.push(format!(
                        "new schema cannot read data written with version {} ({}): {why}",
                        previous.version, level
                    ));
                }
            }
            if level.forward() {
                if let Some(why) = cannot_read(candidate, &old.parsed) {
                    problems.push(format!(
                        "version {} cannot read data written with the new schema ({}): {why}",
                        previous.version, level
                    ));
                }
            }
        }
        problems
    }

    /// The versions a new schema is checked against under `level`.
    fn versions_to_check(subject: &Subject, level: CompatibilityLevel) -> &[SubjectVersion] {
        if level.transitive() {
            &subject.versions
        } else {
            let n = subject.versions.len();
            &subject.versions[n.saturating_sub(1)..]
        }
    }
}

/// Why a reader with `reader` cannot always read data written with `writer`, if it cannot.
fn cannot_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => {
            Some("resolution may fail for some values (e.g. a narrowed union or enum)".to_owned())
        }
        Err(e) => Some(e.to_string()),
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(body).map_err(|e| RegistryError::MalformedBody(e.to_string()))
}

fn parse_schema(body: &Bytes) -> Result<CandidateSchema, RegistryError> {
    let request: SchemaRequest = parse_body(body)?;
    if let Some(kind) = request.schema_type.as_deref() {
        if !kind.eq_ignore_ascii_case("AVRO") {
            return Err(RegistryError::InvalidSchema(format!(
                "schemaType {kind} is not supported by this test fixture (AVRO only)"
            )));
        }
    }
    if !request.references.is_empty() {
        return Err(RegistryError::InvalidSchema(
            "schema references are not supported by this test fixture".to_owned(),
        ));
    }
    let parsed = Schema::parse_str(&request.schema)
        .map_err(|e| RegistryError::InvalidSchema(format!("{e}: {}", request.schema)))?;
    let identity = serde_json::to_string(&parsed)
        .map_err(|e| RegistryError::InvalidSchema(format!("cannot serialise schema: {e}")))?;
    Ok(CandidateSchema {
        text: request.schema,
        parsed,
        identity,
    })
}

fn parse_id(raw: &str) -> Result<u32, RegistryError> {
    raw.parse()
        .map_err(|_| RegistryError::SchemaNotFound(raw.to_owned()))
}

async fn set_content_type(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

async fn register(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, RegistryError> {
    let candidate = parse_schema(&body)?;
    let mut state = registry.state.write().await;
    let known_id = state.ids_by_identity.get(&candidate.identity).copied();
    let level = state.level(&subject);
    if let Some(existing) = state.subjects.get(&subject) {
        if let Some(v) = known_id.and_then(|id| existing.versions.iter().find(|v| v.id == id)) {
            return Ok(Json(json!({ "id": v.id })));
        }
        let to_check = RegistryState::versions_to_check(existing, level);
        let problems = state.incompatibilities(&candidate.parsed, to_check, level);
        if !problems.is_empty() {
            tracing::info!(%subject, %level, "rejected an incompatible schema");
            return Err(RegistryError::Incompatible {
                subject,
                details: problems.join("; "),
            });
        }
    }
    let id = match known_id {
        Some(id) => id,
        None => {
            state.schemas.push(StoredSchema {
                text: candidate.text,
                parsed: candidate.parsed,
            });
            let id = u32::try_from(state.schemas.len()).unwrap_or(u32::MAX);
            state.ids_by_identity.insert(candidate.identity, id);
            id
        }
    };
    let entry = state.subjects.entry(subject.clone()).or_default();
    let version = entry.next_version.max(1);
    entry.next_version = version + 1;
    entry.versions.push(SubjectVersion { version, id });
    tracing::info!(%subject, version, id, "registered a schema version");
    Ok(Json(json!({ "id": id })))
}

async fn lookup(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, RegistryError> {
    let candidate = parse_schema(&body)?;
    let state = registry.state.read().await;
    let live = state.live_subject(&subject)?;
    let found = state
        .ids_by_identity
        .get(&candidate.identity)
        .and_then(|id| live.versions.iter().find(|v| v.id == *id))
        .ok_or_else(|| {
            RegistryError::SchemaNotFound(format!("not found under subject '{subject}'"))
        })?;
    Ok(Json(json!(state.version_body(&subject, *found))))
}

async fn schema_by_id(
    State(registry): State<SchemaRegistry>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.state.read().await;
    let schema = state
        .schema(id)
        .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))?;
    Ok(Json(json!({ "schema": schema.text })))
}

async fn versions_of_id(
    State(registry): State<SchemaRegistry>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.state.read().await;
    if state.schema(id).is_none() {
        return Err(RegistryError::SchemaNotFound(id.to_string()));
    }
    let uses: Vec<Value> = state
        .subjects
        .iter()
        .flat_map(|(name, s)| {
            s.versions
                .iter()
                .filter(|v| v.id == id)
                .map(move |v| json!({ "subject": name, "version": v.version }))
        })
        .collect();
    Ok(Json(json!(uses)))
}

async fn list_subjects(State(registry): State<SchemaRegistry>) -> Json<Vec<String>> {
    let state = registry.state.read().await;
    Json(
        state
            .subjects
            .iter()
            .filter(|(_, s)| !s.versions.is_empty())
            .map(|(name, _)| name.clone())
            .collect(),
    )
}

async fn list_versions(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
) -> Result<Json<Vec<u32>>, RegistryError> {
    let state = registry.state.read().await;
    let live = state.live_subject(&subject)?;
    Ok(Json(live.versions.iter().map(|v| v.version).collect()))
}

async fn get_version(
    State(registry): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Json<Value>, RegistryError> {
    let selector = VersionSelector::parse(&version)?;
    let state = registry.state.read().await;
    let v = state.version(&subject, selector)?;
    Ok(Json(json!(state.version_body(&subject, v))))
}

async fn get_version_schema(
    State(registry): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let selector = VersionSelector::parse(&version)?;
    let state = registry.state.read().await;
    let v = state.version(&subject, selector)?;
    let text = state.version_body(&subject, v).schema.to_owned();
    Ok(text.into_response())
}

async fn delete_subject(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
) -> Result<Json<Vec<u32>>, RegistryError> {
    let mut state = registry.state.write().await;
    state.live_subject(&subject)?;
    let entry = state.subjects.entry(subject.clone()).or_default();
    let deleted: Vec<u32> = entry.versions.drain(..).map(|v| v.version).collect();
    tracing::info!(%subject, ?deleted, "deleted a subject");
    Ok(Json(deleted))
}

async fn delete_version(
    State(registry): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Json<u32>, RegistryError> {
    let selector = VersionSelector::parse(&version)?;
    let mut state = registry.state.write().await;
    let target = state.version(&subject, selector)?;
    let entry = state.subjects.entry(subject.clone()).or_default();
    entry.versions.retain(|v| v.version != target.version);
    tracing::info!(%subject, version = target.version, "deleted a subject version");
    Ok(Json(target.version))
}

async fn get_global_config(State(registry): State<SchemaRegistry>) -> Json<Value> {
    let state = registry.state.read().await;
    Json(json!({ "compatibilityLevel": state.global_level.as_str() }))
}

async fn put_global_config(
    State(registry): State<SchemaRegistry>,
    body: Bytes,
) -> Result<Json<Value>, RegistryError> {
    let request: ConfigRequest = parse_body(&body)?;
    let level: CompatibilityLevel = request.compatibility.parse()?;
    registry.state.write().await.global_level = level;
    tracing::info!(%level, "set the global compatibility level");
    Ok(Json(json!({ "compatibility": level.as_str() })))
}

async fn get_subject_config(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Json<Value>, RegistryError> {
    let state = registry.state.read().await;
    let level = match state.subject_levels.get(&subject) {
        Some(level) => *level,
        None if Flags::is_set(&flags.default_to_global) => state.global_level,
        None => return Err(RegistryError::SubjectConfigNotFound(subject)),
    };
    Ok(Json(json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_subject_config(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, RegistryError> {
    let request: ConfigRequest = parse_body(&body)?;
    let level: CompatibilityLevel = request.compatibility.parse()?;
    tracing::info!(%subject, %level, "set a subject's compatibility level");
    registry
        .state
        .write()
        .await
        .subject_levels
        .insert(subject, level);
    Ok(Json(json!({ "compatibility": level.as_str() })))
}

fn compatibility_body(problems: Vec<String>, flags: &Flags) -> Json<Value> {
    let mut body = json!({ "is_compatible": problems.is_empty() });
    if Flags::is_set(&flags.verbose) {
        body["messages"] = json!(problems);
    }
    Json(body)
}

async fn check_against_version(
    State(registry): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Result<Json<Value>, RegistryError> {
    let selector = VersionSelector::parse(&version)?;
    let candidate = parse_schema(&body)?;
    let state = registry.state.read().await;
    let target = state.version(&subject, selector)?;
    // One named version is checked in the level's direction(s); transitivity needs several.
    let problems = state.incompatibilities(&candidate.parsed, &[target], state.level(&subject));
    Ok(compatibility_body(problems, &flags))
}

async fn check_against_all(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Result<Json<Value>, RegistryError> {
    let candidate = parse_schema(&body)?;
    let state = registry.state.read().await;
    let level = state.level(&subject);
    // Like Confluent, anything is compatible with a subject that has no versions yet.
    let problems = match state.live_subject(&subject) {
        Ok(live) => state.incompatibilities(
            &candidate.parsed,
            RegistryState::versions_to_check(live, level),
            level,
        ),
        Err(_) => Vec::new(),
    };
    Ok(compatibility_body(problems, &flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        Schema::parse_str(json).expect("test schema parses")
    }

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string","default":""}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string"}]}"#;

    #[test]
    fn added_field_with_default_is_backward_but_not_forward_checked_the_other_way() {
        let (v1, v2) = (schema(V1), schema(V2_DEFAULT));
        assert!(cannot_read(&v1, &v2).is_none(), "v2 reads v1 data");
        assert!(cannot_read(&v2, &v1).is_none(), "v1 ignores the new field");
        let v2_bad = schema(V2_NO_DEFAULT);
        assert!(cannot_read(&v1, &v2_bad).is_some(), "no default for b");
    }

    #[test]
    fn levels_parse_in_any_case_and_reject_unknown_ones() {
        assert_eq!(
            "full_transitive".parse::<CompatibilityLevel>().ok(),
            Some(CompatibilityLevel::FullTransitive)
        );
        assert!(matches!(
            "SIDEWAYS".parse::<CompatibilityLevel>(),
            Err(RegistryError::InvalidCompatibilityLevel(_))
        ));
    }

    #[test]
    fn identity_ignores_layout_but_not_defaults() {
        let key = |s: &str| serde_json::to_string(&schema(s)).expect("serialises");
        let spaced =
            r#"{ "name": "R", "type": "record", "fields": [ {"type": "long", "name": "a"} ] }"#;
        assert_eq!(key(V1), key(spaced));
        let other_default = V2_DEFAULT.replace(r#""default":"""#, r#""default":"x""#);
        assert_ne!(key(V2_DEFAULT), key(&other_default));
    }

    #[test]
    fn versions_parse_like_confluent() {
        assert!(matches!(
            VersionSelector::parse("latest"),
            Ok(VersionSelector::Latest)
        ));
        assert!(matches!(
            VersionSelector::parse("-1"),
            Ok(VersionSelector::Latest)
        ));
        assert!(matches!(
            VersionSelector::parse("3"),
            Ok(VersionSelector::Number(3))
        ));
        for bad in ["0", "-2", "x", "2147483648"] {
            assert!(VersionSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
