//! Kafka client settings shared by every service, and idempotent topic creation.
//!
//! Topics are created by the services that write them (the demo's original setup
//! failed with `UNKNOWN_TOPIC_OR_PARTITION` until someone created them by hand, and
//! the local broker has no auto-create), so [`ensure_topic`] treats "already exists"
//! as success.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

/// How to reach the Kafka cluster. Flatten into a service's clap config.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Comma-separated host:port list of brokers.
    #[arg(
        long = "kafka-bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL",
        default_value = "plaintext"
    )]
    pub security_protocol: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with sasl_* protocols).
    #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    #[arg(
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,
    /// CA bundle for TLS; the system store is used when unset.
    #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<PathBuf>,
    /// librdkafka debug contexts to log (its `debug` property, e.g.
    /// `cgrp,fetch`), at debug level under target `librdkafka`: set
    /// RUST_LOG=librdkafka=debug as well.
    #[arg(long = "kafka-debug", env = "KAFKA_DEBUG")]
    pub debug: Option<String>,
}

impl KafkaArgs {
    /// Plain-text settings for a given bootstrap list (tests, tools).
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            debug: None,
        }
    }

    /// A client configuration with connection and security settings filled in;
    /// callers add what is specific to a producer or consumer.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", &self.security_protocol);
        // Empty values count as unset: compose and .env files pass `KEY=` for "not used".
        let set = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        if let Some(mechanism) = set(&self.sasl_mechanism) {
            config.set("sasl.mechanism", mechanism);
        }
        if let Some(user) = set(&self.sasl_username) {
            config.set("sasl.username", user);
        }
        if let Some(password) = set(&self.sasl_password) {
            config.set("sasl.password", password);
        }
        if let Some(ca) = &self.ssl_ca_location {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(debug) = set(&self.debug) {
            config.set("debug", debug);
        }
        config
    }

    /// One line describing where the client connects, with secrets masked.
    pub fn describe(&self) -> String {
        let auth = match (&self.sasl_mechanism, &self.sasl_username) {
            (Some(m), Some(u)) if !m.is_empty() => format!(" sasl={m} user={u} password=***"),
            _ => String::new(),
        };
        format!(
            "kafka={} security={}{auth}",
            self.bootstrap_servers, self.security_protocol
        )
    }
}

/// Settings of a topic a service creates for itself.
#[derive(Debug, Clone)]
pub struct TopicSpec<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication: i32,
    /// Topic-level configs, e.g. `("cleanup.policy", "compact")`.
    pub configs: &'a [(&'a str, &'a str)],
}

/// Why a topic could not be created. Every variant is worth retrying except a
/// definite refusal from the broker (bad settings or missing permissions).
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("could not reach Kafka to create topic {topic}: {source}")]
    Unreachable { topic: String, source: KafkaError },
    #[error("Kafka refused to create topic {topic}: {code}; check the partition/replication settings and the principal's CREATE permission")]
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates the topic unless it exists. Idempotent: "already exists" is success.
pub async fn ensure_topic(kafka: &KafkaArgs, spec: &TopicSpec<'_>) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        kafka
            .client_config()
            .create()
            .map_err(|source| TopicError::Unreachable {
                topic: spec.name.to_owned(),
                source,
            })?;
    let mut topic = NewTopic::new(
        spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication),
    );
    for (k, v) in spec.configs {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|source| TopicError::Unreachable {
            topic: spec.name.to_owned(),
            source,
        })?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Refused { topic, code }),
        }
    }
    Ok(())
}
