//! No credential reaches analytics' output: the binary is run with a known
//! password in every credential it takes (Postgres URL userinfo or a libpq
//! key=value string, Kafka SASL password, registry basic auth, registry URL
//! userinfo) and everything it prints is searched for them. Needs no stack:
//! Postgres is an address where nothing listens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_analytics");

const PASSWORDS: [&str; 5] = [
    "pg-url-pw-1a2b",
    "pg-kv-pw-3c4d",
    "sasl-pw-5e6f",
    "reg-auth-pw-7a8b",
    "reg-url-pw-9c0d",
];

const URL_FORM: &str = "postgres://app:pg-url-pw-1a2b@127.0.0.1:1/analytics";
const KEY_VALUE_FORM: &str = "host=127.0.0.1 port=1 user=app password=pg-kv-pw-3c4d dbname=a";

fn assert_clean(what: &str, text: &str) {
    for password in PASSWORDS {
        assert!(
            !text.contains(password),
            "{what} printed {password}:\n{text}"
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn analytics(postgres_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["--postgres-url", postgres_url])
        .args(["--kafka-bootstrap-servers", "127.0.0.1:1"])
        .args(["--kafka-security-protocol", "sasl_plaintext"])
        .args(["--kafka-sasl-mechanism", "PLAIN"])
        .args(["--kafka-sasl-username", "u"])
        .args(["--kafka-sasl-password", "sasl-pw-5e6f"])
        .args([
            "--schema-registry-url",
            "http://u:reg-url-pw-9c0d@127.0.0.1:1",
        ])
        .args([
            "--schema-registry-basic-auth-user-info",
            "u:reg-auth-pw-7a8b",
        ])
        .args(["--metrics-addr", ""])
        .env("RUST_LOG", "debug");
    command
}

#[test]
fn check_config_masks_every_secret() {
    for url in [URL_FORM, KEY_VALUE_FORM] {
        let out = analytics(url).arg("--check-config").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let printed = text(&out);
        assert_clean("--check-config", &printed);
        assert!(printed.contains("password=***"), "{printed}");
        assert!(printed.contains("http://u:***@127.0.0.1:1"), "{printed}");
    }
}

#[test]
fn failing_migrations_name_no_password() {
    for url in [URL_FORM, KEY_VALUE_FORM] {
        let out = analytics(url)
            .args(["--migrate-retry-secs", "1", "migrate"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        let printed = text(&out);
        // Retried (Postgres may be starting), then given up with the cause.
        assert!(
            printed.contains("postgres migrations not applied yet"),
            "{printed}"
        );
        assert!(printed.contains("applying migrations"), "{printed}");
        assert_clean("migrate against an absent Postgres", &printed);
    }
}

/// A real start logs its settings, then retries Postgres until stopped: read
/// its log until the first retry, then stop it and search all of it.
#[test]
fn a_start_logs_settings_and_retries_without_any_password() {
    for (url, format) in [(URL_FORM, "text"), (KEY_VALUE_FORM, "json")] {
        let mut child = analytics(url)
            .args(["--log-format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines, received) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !log.contains("postgres migrations not applied yet") {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    log.push_str(&line);
                    log.push('\n');
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("no Postgres retry logged within 60 s:\n{log}");
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        log.extend(received.iter().map(|l| l + "\n"));
        reader.join().unwrap();
        assert!(log.contains("analytics starting"), "{log}");
        assert_clean(&format!("a start ({format} logs)"), &log);
    }
}
