//! The binary's surface without any service: --dry-run output and bad flags.

use std::collections::HashSet;
use std::process::Command;

use pipeline::pageview::{Pageview, CHANNELS};

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        // Nothing listens on port 1: a dry run must not try to connect.
        .env("MYSQL_URL", "mysql://root@127.0.0.1:1")
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("METRICS_ADDR", "")
        .output()
        .expect("loadgen runs")
}

fn dry_run(seed: &str) -> Vec<String> {
    let out = loadgen(&["--dry-run", "--seed", seed]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn dry_run_prints_sample_rows_and_events_without_connecting() {
    let lines = dry_run("42");
    assert!(
        lines[0].starts_with("loadgen: mysql=root@127.0.0.1:1/shop"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("dry run"), "{}", lines[0]);
    let of = |kind: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')))
            .collect()
    };
    let items = of("item");
    assert_eq!(items.len(), 5);
    for (i, item) in items.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(item).unwrap();
        assert_eq!(v["id"], i as u64 + 1);
        assert!(["widgets", "gadgets", "doodads", "clearance"]
            .contains(&v["category"].as_str().unwrap()));
        let price: f64 = v["price"].as_str().unwrap().parse().unwrap();
        assert!((5.0..=500.0).contains(&price));
        assert!((1000..=5000).contains(&v["inventory"].as_u64().unwrap()));
        assert_eq!(v["name"].as_str().unwrap().split(' ').count(), 2);
    }
    assert_eq!(of("user").len(), 5);
    let purchases = of("purchase");
    assert_eq!(purchases.len(), 5);
    for p in &purchases {
        let v: serde_json::Value = serde_json::from_str(p).unwrap();
        assert!((1..=1000).contains(&v["item_id"].as_u64().unwrap()));
        assert!((1..=10_000).contains(&v["user_id"].as_u64().unwrap()));
        assert!((1..=5).contains(&v["quantity"].as_u64().unwrap()));
    }
    // Pageviews: `key=<user id>` then the exact JSON sent to Kafka.
    let pageviews = of("pageview");
    assert_eq!(pageviews.len(), 10);
    for pv in &pageviews {
        let (key, json) = pv.strip_prefix("key=").unwrap().split_once(' ').unwrap();
        let parsed: Pageview = serde_json::from_str(json).unwrap();
        assert_eq!(key, parsed.user_id.to_string());
        assert!(CHANNELS.contains(&parsed.channel.as_str()));
        assert_eq!(
            json,
            format!(
                r#"{{"user_id":{},"url":"{}","channel":"{}","received_at":{}}}"#,
                parsed.user_id, parsed.url, parsed.channel, parsed.received_at
            )
        );
    }
    // Every kind of change is shown with its statement.
    let kinds: HashSet<String> = of("change")
        .iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(c).unwrap();
            v["change"]["change"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
}

#[test]
fn the_seed_makes_a_dry_run_reproducible() {
    // received_at reads the clock; everything else must repeat.
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| match l.find("\"received_at\":") {
                Some(i) => l[..i].to_owned(),
                None => l,
            })
            .collect()
    };
    assert_eq!(strip(dry_run("7")), strip(dry_run("7")));
    assert_ne!(strip(dry_run("7")), strip(dry_run("8")));
}

#[test]
fn no_mutations_shows_no_changes() {
    let out = loadgen(&["--dry-run", "--no-mutations"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("change ")), "{text}");
}

#[test]
fn bad_flags_give_one_actionable_line() {
    for (args, hint) in [
        (&["--items", "0"][..], "--items"),
        (&["--pageviews-per-sec", "lots"][..], "events per second"),
        (&["--duration", "soon"][..], "60s"),
    ] {
        let out = loadgen(args);
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(hint), "{args:?}: {err}");
    }
    let out = loadgen(&["--items", "0"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
