//! The schema registry test fixture, driven in-process (no stack needed) through the same client
//! our services use (`schema_registry_converter`) and through raw HTTP for the wire details.

use apache_avro::{types::Value as Avro, writer::datum::GenericDatumWriter, Schema};
use e2e::registry::{serve, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use schema_registry_converter::{
    async_impl::{
        easy_avro::{EasyAvroDecoder, EasyAvroEncoder},
        schema_registry::SrSettings,
    },
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};
use serde_json::{json, Value};

const V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}"#;
/// V1 plus a field with a default: BACKWARD and FORWARD compatible with V1.
const V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"qty","type":"int","default":1}]}"#;
/// V1 plus a field without a default: a V3 reader cannot read V1 data.
const V3_NO_DEFAULT: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"price","type":"double"}]}"#;
/// V1 without `item`: a V1 reader cannot read its data, but it can read V1 data.
const V1_MINUS_ITEM: &str =
    r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;

/// A fixture on an ephemeral port that lives as long as the test's runtime.
struct Fixture {
    url: String,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(serve(listener));
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client");
        Fixture { url, http }
    }

    fn sr_settings(&self) -> SrSettings {
        SrSettings::new_builder(self.url.clone())
            .no_proxy()
            .build()
            .expect("sr settings")
    }

    /// Sends a request with the registry's own content type and checks that the response
    /// carries it too, whatever the outcome.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("content-type", CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request.send().await.expect("request reaches the fixture");
        let status = response.status();
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(CONTENT_TYPE),
            "content type of {path}"
        );
        let body = response.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn register(&self, subject: &str, schema: &str) -> (StatusCode, Value) {
        let path = format!("/subjects/{subject}/versions");
        self.call(Method::POST, &path, Some(json!({ "schema": schema })))
            .await
    }

    async fn register_ok(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, StatusCode::OK, "register under {subject}: {body}");
        body["id"].as_u64().expect("id in register response")
    }
}

fn assert_error(actual: (StatusCode, Value), status: StatusCode, code: u64) -> String {
    assert_eq!(actual.0, status, "{}", actual.1);
    assert_eq!(actual.1["error_code"], json!(code), "{}", actual.1);
    actual.1["message"]
        .as_str()
        .expect("error message")
        .to_owned()
}

fn supplied(schema: &str) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned())
}

#[tokio::test]
async fn encoder_registers_with_confluent_framing_and_decoder_reads_back() {
    let fx = Fixture::start().await;
    let encoder = EasyAvroEncoder::new(fx.sr_settings());
    let strategy =
        SubjectNameStrategy::TopicNameStrategyWithSchema("orders".into(), false, supplied(V1));
    let bytes = encoder
        .encode(
            vec![("id", Avro::Long(7)), ("item", Avro::String("tea".into()))],
            strategy,
        )
        .await
        .expect("encode registers the schema");

    let (status, latest) = fx.get("/subjects/orders-value/versions/latest").await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    assert_eq!(latest["subject"], "orders-value");
    assert_eq!(latest["version"], 1);
    assert_eq!(latest["schema"], V1);
    let id = latest["id"].as_u64().expect("id");

    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let framed_id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 id bytes"));
    assert_eq!(u64::from(framed_id), id);
    let schema = Schema::parse_str(V1).expect("V1 parses");
    let expected_datum = GenericDatumWriter::builder(&schema)
        .build()
        .expect("datum writer")
        .write_value_to_vec(Avro::Record(vec![
            ("id".into(), Avro::Long(7)),
            ("item".into(), Avro::String("tea".into())),
        ]))
        .expect("datum");
    assert_eq!(&bytes[5..], expected_datum.as_slice());

    let decoded = EasyAvroDecoder::new(fx.sr_settings())
        .decode(Some(&bytes))
        .await
        .expect("decoder fetches the schema by id");
    assert_eq!(
        decoded.value,
        Avro::Record(vec![
            ("id".into(), Avro::Long(7)),
            ("item".into(), Avro::String("tea".into())),
        ])
    );
}

#[tokio::test]
async fn the_same_schema_gets_the_same_id_across_subjects_and_no_new_version() {
    let fx = Fixture::start().await;
    let a = fx.register_ok("a-value", V1).await;
    // Same schema, different layout and key order.
    let reformatted = serde_json::to_string_pretty(&json!({
        "namespace": "shop", "name": "Order", "type": "record",
        "fields": [{"type": "long", "name": "id"}, {"name": "item", "type": "string"}]
    }))
    .expect("json");
    let b = fx.register_ok("b-value", &reformatted).await;
    assert_eq!(a, b);
    assert_eq!(fx.register_ok("a-value", V1).await, a);
    assert_eq!(fx.get("/subjects/a-value/versions").await.1, json!([1]));

    let other = fx.register_ok("c-value", V1_MINUS_ITEM).await;
    assert_ne!(other, a, "a different schema gets a different id");
    assert_eq!(
        fx.get("/subjects").await.1,
        json!(["a-value", "b-value", "c-value"])
    );
    let (_, uses) = fx.get(&format!("/schemas/ids/{a}/versions")).await;
    assert_eq!(
        uses,
        json!([{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}])
    );
    let (status, by_id) = fx.get(&format!("/schemas/ids/{a}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id, json!({ "schema": V1 }));
}

#[tokio::test]
async fn a_compatible_new_version_gets_a_new_id_and_version_2() {
    let fx = Fixture::start().await;
    let v1 = fx.register_ok("orders-value", V1).await;
    let v2 = fx.register_ok("orders-value", V2).await;
    assert_ne!(v1, v2);
    assert_eq!(
        fx.get("/subjects/orders-value/versions").await.1,
        json!([1, 2])
    );
    for selector in ["latest", "-1", "2"] {
        let (_, body) = fx
            .get(&format!("/subjects/orders-value/versions/{selector}"))
            .await;
        assert_eq!(
            body,
            json!({"subject": "orders-value", "version": 2, "id": v2, "schema": V2}),
            "{selector}"
        );
    }
    let (_, first) = fx.get("/subjects/orders-value/versions/1").await;
    assert_eq!(first["id"], json!(v1));

    // Lookup by schema finds each version.
    let (status, found) = fx
        .call(
            Method::POST,
            "/subjects/orders-value",
            Some(json!({ "schema": V1 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        found,
        json!({"subject": "orders-value", "version": 1, "id": v1, "schema": V1})
    );

    // Data written with v1 is still readable by id after v2 arrived.
    let encoder = EasyAvroEncoder::new(fx.sr_settings());
    let strategy =
        SubjectNameStrategy::TopicNameStrategyWithSchema("orders".into(), false, supplied(V1));
    let bytes = encoder
        .encode(
            vec![("id", Avro::Long(1)), ("item", Avro::String("pen".into()))],
            strategy,
        )
        .await
        .expect("encode with v1");
    assert_eq!(
        u64::from(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]])),
        v1
    );
    assert_eq!(
        fx.get("/subjects/orders-value/versions").await.1,
        json!([1, 2]),
        "re-registering v1 adds no version"
    );
}

#[tokio::test]
async fn an_incompatible_version_is_rejected_until_compatibility_is_relaxed() {
    let fx = Fixture::start().await;
    fx.register_ok("orders-value", V1).await;
    let message = assert_error(
        fx.register("orders-value", V3_NO_DEFAULT).await,
        StatusCode::CONFLICT,
        409,
    );
    assert!(
        message.starts_with("Schema being registered is incompatible with an earlier schema"),
        "{message}"
    );
    assert_eq!(
        fx.get("/subjects/orders-value/versions").await.1,
        json!([1])
    );

    // The client library sees a definite (non-retriable) failure.
    let encoder = EasyAvroEncoder::new(fx.sr_settings());
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "orders".into(),
        false,
        supplied(V3_NO_DEFAULT),
    );
    let err = encoder
        .encode(vec![("id", Avro::Long(1))], strategy)
        .await
        .expect_err("incompatible schema is refused");
    assert!(!err.retriable, "{err}");
    assert!(err.to_string().contains("409"), "{err}");

    let (status, body) = fx
        .call(
            Method::PUT,
            "/config/orders-value",
            Some(json!({"compatibility": "NONE"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"compatibility": "NONE"}))
    );
    fx.register_ok("orders-value", V3_NO_DEFAULT).await;
    assert_eq!(
        fx.get("/subjects/orders-value/versions").await.1,
        json!([1, 2])
    );
}

#[tokio::test]
async fn forward_and_full_check_the_other_direction() {
    let fx = Fixture::start().await;
    fx.register_ok("fwd-value", V1).await;
    fx.call(
        Method::PUT,
        "/config/fwd-value",
        Some(json!({"compatibility": "FORWARD"})),
    )
    .await;
    // An old reader cannot read data lacking `item` (no default) ...
    assert_error(
        fx.register("fwd-value", V1_MINUS_ITEM).await,
        StatusCode::CONFLICT,
        409,
    );
    // ... but ignores an extra field, even one without a default.
    fx.register_ok("fwd-value", V3_NO_DEFAULT).await;

    fx.register_ok("full-value", V1).await;
    fx.call(
        Method::PUT,
        "/config/full-value",
        Some(json!({"compatibility": "full"})),
    )
    .await;
    assert_error(
        fx.register("full-value", V3_NO_DEFAULT).await,
        StatusCode::CONFLICT,
        409,
    );
    assert_error(
        fx.register("full-value", V1_MINUS_ITEM).await,
        StatusCode::CONFLICT,
        409,
    );
    fx.register_ok("full-value", V2).await;
}

#[tokio::test]
async fn config_defaults_to_backward_and_can_be_set_globally_and_per_subject() {
    let fx = Fixture::start().await;
    assert_eq!(
        fx.get("/config").await,
        (StatusCode::OK, json!({"compatibilityLevel": "BACKWARD"}))
    );
    let message = assert_error(
        fx.get("/config/orders-value").await,
        StatusCode::NOT_FOUND,
        40408,
    );
    assert!(message.contains("orders-value"), "{message}");
    assert_eq!(
        fx.get("/config/orders-value?defaultToGlobal=true").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );

    let put = fx
        .call(
            Method::PUT,
            "/config",
            Some(json!({"compatibility": "FULL"})),
        )
        .await;
    assert_eq!(put, (StatusCode::OK, json!({"compatibility": "FULL"})));
    assert_eq!(
        fx.get("/config").await.1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        fx.get("/config/orders-value?defaultToGlobal=true").await.1,
        json!({"compatibilityLevel": "FULL"})
    );

    fx.call(
        Method::PUT,
        "/config/orders-value",
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(
        fx.get("/config/orders-value").await.1,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_error(
        fx.call(
            Method::PUT,
            "/config",
            Some(json!({"compatibility": "SIDEWAYS"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42203,
    );
    assert_eq!(
        fx.get("/config").await.1,
        json!({"compatibilityLevel": "FULL"}),
        "a rejected level changes nothing"
    );
}

#[tokio::test]
async fn compatibility_endpoint_reports_without_registering() {
    let fx = Fixture::start().await;
    fx.register_ok("orders-value", V1).await;
    let check = |version: &'static str, schema: &'static str| {
        let fx = &fx;
        async move {
            fx.call(
                Method::POST,
                &format!("/compatibility/subjects/orders-value/versions/{version}"),
                Some(json!({ "schema": schema })),
            )
            .await
        }
    };
    assert_eq!(
        check("latest", V2).await,
        (StatusCode::OK, json!({"is_compatible": true}))
    );
    assert_eq!(
        check("1", V3_NO_DEFAULT).await,
        (StatusCode::OK, json!({"is_compatible": false}))
    );
    let (_, verbose) = fx
        .call(
            Method::POST,
            "/compatibility/subjects/orders-value/versions/latest?verbose=true",
            Some(json!({ "schema": V3_NO_DEFAULT })),
        )
        .await;
    assert_eq!(verbose["is_compatible"], false);
    assert!(
        verbose["messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("price")),
        "{verbose}"
    );
    assert_error(check("7", V2).await, StatusCode::NOT_FOUND, 40402);
    assert_eq!(
        fx.get("/subjects/orders-value/versions").await.1,
        json!([1])
    );
    let (_, unknown) = fx
        .call(
            Method::POST,
            "/compatibility/subjects/nobody-value/versions/latest",
            Some(json!({ "schema": V1 })),
        )
        .await;
    assert_eq!(unknown["error_code"], 40401);
}

#[tokio::test]
async fn deleting_a_subject_hides_it_but_keeps_ids_and_version_numbers() {
    let fx = Fixture::start().await;
    let v1 = fx.register_ok("orders-value", V1).await;
    fx.register_ok("orders-value", V2).await;
    let deleted = fx
        .call(Method::DELETE, "/subjects/orders-value", None)
        .await;
    assert_eq!(deleted, (StatusCode::OK, json!([1, 2])));

    assert_eq!(fx.get("/subjects").await.1, json!([]));
    assert_error(
        fx.get("/subjects/orders-value/versions").await,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        fx.call(Method::DELETE, "/subjects/orders-value", None)
            .await,
        StatusCode::NOT_FOUND,
        40401,
    );
    let (status, by_id) = fx.get(&format!("/schemas/ids/{v1}")).await;
    assert_eq!((status, by_id), (StatusCode::OK, json!({ "schema": V1 })));

    assert_eq!(fx.register_ok("orders-value", V1).await, v1);
    assert_eq!(
        fx.get("/subjects/orders-value/versions").await.1,
        json!([3]),
        "version numbers are never reused"
    );
}

#[tokio::test]
async fn errors_have_confluent_codes_messages_and_content_type() {
    let fx = Fixture::start().await;
    let message = assert_error(
        fx.get("/subjects/x/versions").await,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_eq!(message, "Subject 'x' not found.");
    assert_error(
        fx.get("/subjects/x/versions/latest").await,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        fx.get("/schemas/ids/999").await,
        StatusCode::NOT_FOUND,
        40403,
    );
    assert_error(
        fx.register("x", r#"{"type":"record","name":"Broken"}"#)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
    );
    assert_error(
        fx.call(
            Method::POST,
            "/subjects/x/versions",
            Some(json!({"schema": "{}", "schemaType": "PROTOBUF"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
    );

    fx.register_ok("x", V1).await;
    assert_error(
        fx.get("/subjects/x/versions/5").await,
        StatusCode::NOT_FOUND,
        40402,
    );
    assert_error(
        fx.get("/subjects/x/versions/zero").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42202,
    );
    assert_error(
        fx.call(Method::POST, "/subjects/x", Some(json!({ "schema": V2 })))
            .await,
        StatusCode::NOT_FOUND,
        40403,
    );
    assert_error(
        fx.call(Method::POST, "/subjects/y", Some(json!({ "schema": V1 })))
            .await,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        fx.get("/no/such/endpoint").await,
        StatusCode::NOT_FOUND,
        404,
    );
}

#[tokio::test]
async fn request_bodies_are_accepted_as_plain_json_or_without_content_type() {
    let fx = Fixture::start().await;
    let body = json!({ "schema": V1 }).to_string();
    let url = format!("{}/subjects/plain-value/versions", fx.url);
    let plain = fx
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(plain.status(), StatusCode::OK);
    let id: Value = plain.json().await.expect("json");
    let bare = fx.http.post(&url).body(body).send().await.expect("send");
    assert_eq!(bare.status(), StatusCode::OK);
    assert_eq!(bare.json::<Value>().await.expect("json"), id);
}
