//! No credential reaches cdc's output: the binary is run with a known password
//! in every credential it takes (database password by flag, env and connector
//! file; Kafka SASL password; registry basic auth; registry URL userinfo) and
//! everything it prints is searched for them. Needs no stack: the source is
//! an address where nothing listens, so the run stops at the first connection
//! after logging its effective configuration.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cdc");

const PASSWORDS: [&str; 6] = [
    "db-flag-pw-1f3a",
    "db-file-pw-2b4c",
    "sasl-pw-3c5d",
    "reg-auth-pw-4d6e",
    "reg-url-pw-5e7f",
    "file-reg-auth-pw-6f80",
];

fn assert_clean(what: &str, out: &Output) {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for password in PASSWORDS {
        assert!(
            !text.contains(password),
            "{what} printed {password}:\n{text}"
        );
    }
}

/// A connector file with its own secrets (the file's registry settings apply
/// when no flag or env sets them).
fn connector_file(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("connector.json");
    std::fs::write(
        &file,
        r#"{"name": "shop", "config": {
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
            "database.hostname": "127.0.0.1", "database.port": "1",
            "database.user": "cdc", "database.password": "db-file-pw-2b4c",
            "topic.prefix": "mysql", "offset.storage": "file",
            "offset.storage.file.filename": "/nonexistent/offsets.json",
            "value.converter.schema.registry.url": "http://u:reg-url-pw-5e7f@127.0.0.1:1",
            "value.converter.basic.auth.user.info": "u:file-reg-auth-pw-6f80"}}"#,
    )
    .unwrap();
    file
}

fn cdc(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .args(["--metrics-addr", ""])
        .env("RUST_LOG", "debug")
        .env_remove("SCHEMA_REGISTRY_URL")
        .env_remove("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO")
        .env_remove("DATABASE_PASSWORD");
    command
}

#[test]
fn check_config_and_the_effective_configuration_log_mask_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = connector_file(dir.path());
    let file = file.to_str().unwrap();
    let flags = [
        "--config-file",
        file,
        "--database.password",
        "db-flag-pw-1f3a",
        "--kafka-bootstrap-servers",
        "127.0.0.1:1",
        "--kafka-security-protocol",
        "sasl_plaintext",
        "--kafka-sasl-mechanism",
        "PLAIN",
        "--kafka-sasl-username",
        "u",
        "--kafka-sasl-password",
        "sasl-pw-3c5d",
        "--schema-registry-url",
        "http://u:reg-url-pw-5e7f@127.0.0.1:1",
        "--schema-registry-basic-auth-user-info",
        "u:reg-auth-pw-4d6e",
    ];

    let check = cdc(&flags).arg("--check-config").output().unwrap();
    assert!(check.status.success(), "{check:?}");
    assert_clean("--check-config", &check);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("database.password = ***"), "{stdout}");
    assert!(
        stdout.contains("schema-registry=http://u:***@127.0.0.1:1"),
        "{stdout}"
    );
    assert!(stdout.contains("password=***"), "{stdout}");

    // A real start: logs the effective configuration, then fails to reach
    // the source (nothing listens on port 1) and exits with the error.
    for format in ["text", "json"] {
        let run = cdc(&flags).args(["--log-format", format]).output().unwrap();
        assert!(!run.status.success(), "{run:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("effective configuration"), "{stderr}");
        assert_clean(&format!("a start ({format} logs)"), &run);
    }

    // The same secrets from the environment and the connector file only.
    let run = cdc(&["--config-file", file])
        .env("DATABASE_PASSWORD", "db-flag-pw-1f3a")
        .env("KAFKA_SASL_PASSWORD", "sasl-pw-3c5d")
        .env("KAFKA_SASL_MECHANISM", "PLAIN")
        .env("KAFKA_SASL_USERNAME", "u")
        .output()
        .unwrap();
    assert!(!run.status.success(), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("schema-registry=http://u:***@127.0.0.1:1"),
        "the file's registry URL is used and masked: {stderr}"
    );
    assert_clean("a start configured by env and file", &run);

    // --help shows no env values of secrets either.
    let help = cdc(&["--help"])
        .env("KAFKA_SASL_PASSWORD", "sasl-pw-3c5d")
        .env("SCHEMA_REGISTRY_URL", "http://u:reg-url-pw-5e7f@h:1")
        .env("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "u:reg-auth-pw-4d6e")
        .env("DATABASE_PASSWORD", "db-flag-pw-1f3a")
        .output()
        .unwrap();
    assert_clean("--help", &help);
}
