//! The streaming position logic ([`cdc::position::Position`]) on recorded
//! MySQL 8 / MariaDB binlogs (../shared/fixtures/mysql-binlogs): GTIDs (also
//! tagged), compressed transaction payloads, and MariaDB's first-rotate
//! checksum quirk. Skipped, with the reason printed, when the folder is absent.

use std::path::PathBuf;

use cdc::offsets::SourceOffset;
use cdc::position::{Position, Step};
use cdc::preflight::Flavor;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{
    Event, EventData, FormatDescriptionEvent, TransactionPayloadEvent,
};

fn fixture(name: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/mysql-binlogs")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!("skipping: fixture {} unavailable: {e}", path.display());
            None
        }
    }
}

/// Events of a binlog file in stream order, with the inner events of
/// transaction payloads after their payload event (as `BinlogStream` yields them).
fn events(bytes: &[u8]) -> Vec<Event> {
    assert_eq!(&bytes[..4], b"\xfebin", "binlog magic");
    let mut input = &bytes[4..];
    let mut fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let mut out = Vec::new();
    while !input.is_empty() {
        let event = Event::read(&fde, &mut input).expect("event parses");
        let kind = event.header().event_type_raw();
        if kind == EventType::FORMAT_DESCRIPTION_EVENT as u8 {
            if let Ok(Some(EventData::FormatDescriptionEvent(f))) = event.read_data() {
                fde = f.into_owned();
            }
        }
        let inner = if kind == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            let payload = event
                .read_event::<TransactionPayloadEvent<'_>>()
                .expect("payload parses");
            Some(payload.danger_decompress())
        } else {
            None
        };
        out.push(event);
        if let Some(data) = inner {
            let mut footer = fde.footer();
            footer.set_checksum_enabled(false);
            let inner_fde = fde.clone().with_footer(footer);
            let mut rest = &data[..];
            while !rest.is_empty() {
                out.push(Event::read(&inner_fde, &mut rest).expect("inner event parses"));
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Seen {
    Mark(SourceOffset),
    TableMap(String),
    Rows {
        index: u64,
        txn_start: u64,
        gtid: Option<String>,
        rows: usize,
    },
}

fn drive(flavor: Flavor, file: &str, bytes: &[u8], resume_pos: u64) -> Vec<Seen> {
    let resume = SourceOffset {
        file: file.into(),
        pos: resume_pos,
        ..Default::default()
    };
    let mut position = Position::new(flavor, 1, &resume);
    let mut tables = std::collections::HashMap::new();
    let mut seen = Vec::new();
    for event in events(bytes) {
        match position.observe(&event).expect("event understood") {
            Step::Nothing => {}
            Step::Ddl(None) | Step::Truncate(None) => {}
            Step::Ddl(Some(mut o)) | Step::Truncate(Some(mut o)) | Step::Mark(mut o) => {
                o.ts_sec = 0;
                seen.push(Seen::Mark(o));
            }
            Step::TableMap(tme) => {
                seen.push(Seen::TableMap(format!(
                    "{}.{}",
                    tme.database_name(),
                    tme.table_name()
                )));
                tables.insert(tme.table_id(), tme);
            }
            Step::Rows(step) => {
                let tme = &tables[&step.data.table_id()];
                let rows = step.data.rows(tme).filter(|r| r.is_ok()).count();
                assert!(step.data.rows(tme).all(|r| r.is_ok()), "rows parse");
                seen.push(Seen::Rows {
                    index: step.index,
                    txn_start: step.txn_start,
                    gtid: step.gtid.clone(),
                    rows,
                });
            }
        }
    }
    seen
}

fn mark(file: &str, pos: u64, gtids: Option<&str>) -> Seen {
    Seen::Mark(SourceOffset {
        file: file.into(),
        pos,
        gtids: gtids.map(str::to_owned),
        server_id: 1,
        ..Default::default()
    })
}

#[test]
fn mysql_gtids_accumulate_at_each_commit() {
    let name = "binlog_transaction_with_GTID.000001";
    let Some(bytes) = fixture(name) else { return };
    let uuid = "006c2cf2-b1ea-11e4-9057-8c705a3d3e78";
    let seen = drive(Flavor::MySql, name, &bytes, 4);
    // Three DDL transactions (GTID + statement, no BEGIN): each is its own
    // commit; the GTID set grows only at the commit, never at the GTID event.
    assert_eq!(
        seen,
        vec![
            mark(name, 297, Some(&format!("{uuid}:1"))),
            mark(name, 603, Some(&format!("{uuid}:1-2"))),
            mark(name, 766, Some(&format!("{uuid}:1-3"))),
        ]
    );
}

#[test]
fn tagged_gtid_starts_the_transaction_and_is_recorded() {
    let name = "binlog_transaction_with_GTID_TAG.000001";
    let Some(bytes) = fixture(name) else { return };
    let gtid = "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3";
    let seen = drive(Flavor::MySql, name, &bytes, 4);
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(matches!(&seen[0], Seen::TableMap(_)));
    // source.pos is the tagged GTID event's own position (328 - 83).
    assert_eq!(
        seen[1],
        Seen::Rows {
            index: 0,
            txn_start: 245,
            gtid: Some(gtid.into()),
            rows: 1
        }
    );
    assert_eq!(seen[2], mark(name, 541, Some(gtid)));
    // The closing ROTATE moves to the next file, at a transaction boundary.
    assert_eq!(seen[3], mark("binlog.000005", 4, Some(gtid)));
}

#[test]
fn compressed_transaction_payload_is_iterated_and_committed_after_it() {
    let name = "transaction_compression.000001";
    let Some(bytes) = fixture(name) else { return };
    let seen = drive(Flavor::MySql, name, &bytes, 4);
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(matches!(&seen[0], Seen::TableMap(_)));
    // The inner events have no positions: the transaction starts at the
    // (anonymous) GTID event and its commit point is the end of the payload.
    assert_eq!(
        seen[1],
        Seen::Rows {
            index: 0,
            txn_start: 197,
            gtid: None,
            rows: 1
        }
    );
    assert_eq!(seen[2], mark(name, 431, None));
    assert_eq!(seen[3], mark("binlog.000043", 4, None));
}

#[test]
fn mariadb_gtid_events_are_decoded_by_hand() {
    let name = "mariadb-bin.000001";
    let Some(bytes) = fixture(name) else { return };
    let seen = drive(Flavor::MariaDb, name, &bytes, 4);
    assert_eq!(seen.len(), 6, "{seen:#?}");
    assert_eq!(
        seen[1],
        Seen::Rows {
            index: 0,
            txn_start: 330,
            gtid: Some("0-1-1".into()),
            rows: 1
        }
    );
    assert_eq!(seen[2], mark(name, 702, Some("0-1-1")));
    assert_eq!(
        seen[4],
        Seen::Rows {
            index: 0,
            txn_start: 702,
            gtid: Some("0-1-2".into()),
            rows: 1
        }
    );
    assert_eq!(seen[5], mark(name, 1074, Some("0-1-2")));
}

#[test]
fn resuming_mid_transaction_skips_delivered_rows_events() {
    let name = "mariadb-bin.000001";
    let Some(bytes) = fixture(name) else { return };
    // Stored: transaction at 330, its first rows event fully delivered.
    let resume = SourceOffset {
        file: name.into(),
        pos: 330,
        event: 1,
        row: 0,
        ..Default::default()
    };
    let mut position = Position::new(Flavor::MariaDb, 1, &resume);
    let mut skips = Vec::new();
    for event in events(&bytes).iter().skip_while(|e| {
        let h = e.header();
        u64::from(h.log_pos()) - u64::from(h.event_size()) < 330
    }) {
        if let Step::Rows(step) = position.observe(event).unwrap() {
            skips.push((step.txn_start, step.index, step.skip_rows));
        }
    }
    // First transaction: already delivered (skip all); second: nothing skipped.
    assert_eq!(skips, vec![(330, 0, None), (702, 0, Some(0))]);
}

/// Commits seen while reading `bytes`: each with its source commit time (µs).
fn commits(flavor: Flavor, file: &str, bytes: &[u8]) -> Vec<Option<u64>> {
    let resume = SourceOffset {
        file: file.into(),
        pos: 4,
        ..Default::default()
    };
    let mut position = Position::new(flavor, 1, &resume);
    let mut out = Vec::new();
    for event in events(bytes) {
        let step = position.observe(&event).expect("event understood");
        let is_mark = matches!(
            step,
            Step::Mark(_) | Step::Ddl(Some(_)) | Step::Truncate(Some(_))
        );
        let commit = position.take_commit();
        // A commit comes with the position it produces (a rotation is a
        // position without a commit).
        assert!(
            is_mark || commit.is_none(),
            "{file}: commit without its position"
        );
        out.extend(commit);
    }
    out
}

#[test]
fn mysql8_gtid_events_give_the_commit_time_in_microseconds() {
    let name = "binlog_transaction_with_GTID_TAG.000001";
    let Some(bytes) = fixture(name) else { return };
    let seen = commits(Flavor::MySql, name, &bytes);
    assert!(!seen.is_empty());
    // 2020-01-01 .. 2100-01-01 in µs: a microsecond wall-clock time.
    for us in &seen {
        let us = us.expect("MySQL 8.4 GTID events carry immediate_commit_timestamp");
        assert!(
            (1_577_836_800_000_000..4_102_444_800_000_000).contains(&us),
            "{us}"
        );
    }
}

#[test]
fn mariadb_commits_have_no_microsecond_commit_time() {
    let name = "mariadb-bin.000001";
    let Some(bytes) = fixture(name) else { return };
    let seen = commits(Flavor::MariaDb, name, &bytes);
    assert!(!seen.is_empty());
    assert!(seen.iter().all(Option::is_none), "{seen:?}");
}

#[test]
fn skip_counts_belong_to_the_transaction_the_offset_names() {
    // Resuming by GTID, a promoted replica may stream a transaction of its
    // own before the one in flight: the skip must wait for the named one.
    let name = "mariadb-bin.000001";
    let Some(bytes) = fixture(name) else { return };
    let resume = SourceOffset {
        file: name.into(),
        pos: 4,
        event: 1,
        row: 0,
        in_flight_gtid: Some("0-1-2".into()),
        ..Default::default()
    };
    let mut position = Position::new(Flavor::MariaDb, 1, &resume);
    let mut skips = Vec::new();
    let mut marks = Vec::new();
    for event in events(&bytes) {
        match position.observe(&event).unwrap() {
            Step::Rows(step) => {
                let offset = position.offset(step.txn_start, step.index, 1);
                skips.push((step.gtid.clone(), step.skip_rows, offset.in_flight_gtid));
            }
            Step::Mark(offset) => marks.push(offset.in_flight_gtid),
            _ => {}
        }
    }
    // 0-1-1 is delivered in full; 0-1-2's first rows event was delivered.
    assert_eq!(
        skips,
        vec![
            (Some("0-1-1".into()), Some(0), Some("0-1-1".into())),
            (Some("0-1-2".into()), None, Some("0-1-2".into())),
        ]
    );
    // Boundaries name no transaction.
    assert!(marks.iter().all(Option::is_none), "{marks:?}");
}

/// A DDL statement's `source.thread` is null, as in Debezium (whose thread
/// is the open BEGIN's, reset at COMMIT; DDL comes outside BEGIN..COMMIT),
/// while MySQL's row events carry their transaction's thread. MariaDB opens
/// a transaction with its GTID event, not a BEGIN query, so its rows have
/// no thread to carry.
#[test]
fn ddl_statements_have_no_thread() {
    let mut ddls = 0;
    for (flavor, name) in [
        (Flavor::MySql, "binlog_transaction_with_GTID.000001"),
        (Flavor::MySql, "binlog_transaction_with_GTID_TAG.000001"),
        (Flavor::MySql, "mysql-enum-string-set.000001"),
        (Flavor::MariaDb, "mariadb-bin.000001"),
    ] {
        let Some(bytes) = fixture(name) else { return };
        let resume = SourceOffset {
            file: name.into(),
            pos: 4,
            ..Default::default()
        };
        let mut position = Position::new(flavor, 1, &resume);
        for event in events(&bytes) {
            let step = position.observe(&event).expect("event understood");
            if let Step::Rows(rows) = &step {
                assert_eq!(
                    rows.thread.is_some(),
                    flavor == Flavor::MySql,
                    "{name}: rows' thread {:?}",
                    rows.thread
                );
            }
            if let Some(ddl) = position.take_ddl() {
                assert_eq!(ddl.source.thread, None, "{name}: {}", ddl.statement);
                ddls += 1;
            }
        }
    }
    assert!(ddls > 0, "no DDL in the fixtures");
}
