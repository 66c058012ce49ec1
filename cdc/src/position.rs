//! The streaming position: binlog events in, "what this event means for the
//! records and the stored offset" out ([`Position::observe`] -> [`Step`]).
//! Free of I/O, so recorded binlog files drive it in tests
//! (`tests/binlog_fixtures.rs`); [`crate::streamer`] does the I/O around it.
//!
//! Invariants:
//! - Every record carries `source.pos` = the position of the first event of its
//!   transaction (GTID, or BEGIN when there is no GTID) and `source.row` = its
//!   row index inside its rows event; the offset attached to the LAST record of
//!   each row is `{file, pos: transaction start, event: k, row: i+1}` (k = rows
//!   events of the transaction before this one). A commit (XID, COMMIT, or the
//!   end of a standalone DDL) yields the boundary `{file, pos: end of commit}`.
//!   Together with the ordered committer in [`crate::kafka`] this makes every
//!   stored offset a transaction boundary plus skip counts (see
//!   [`crate::offsets`]).
//! - Resuming always starts at a transaction start and skips exactly the rows
//!   events / rows already handed to Kafka ([`RowsStep::skip_rows`]); rows
//!   events of filtered tables are counted too, so the counts mean the same on
//!   replay. Resumed by GTID set, the skip waits for the transaction the offset
//!   names, since a promoted replica may stream its own transactions first.
//! - Event kinds that would hide rows (MariaDB compressed events) are an
//!   error naming the setting to change, never skipped.
//! - TRUNCATE commits implicitly: its step carries the position after it.

use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};

use debezium_avro::{SnapshotMarker, SourceInfo};

use crate::gtid::GtidSet;
use crate::offsets::{IncrementalOffset, SourceOffset};
use crate::preflight::Flavor;

const HEARTBEAT_EVENT: u8 = 27;
const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB QUERY_COMPRESSED_EVENT .. DELETE_ROWS_COMPRESSED_EVENT_V1.
const MARIADB_COMPRESSED: std::ops::RangeInclusive<u8> = 165..=171;
const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
/// MariaDB GTID flag: the event group has no BEGIN/COMMIT (DDL).
const MARIADB_FL_STANDALONE: u8 = 1;

/// Why an event cannot be positioned. Both are definite: the same event fails
/// the same way again.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event's bytes do not parse.
    #[error("unreadable binlog event at {file}:{pos}: {reason}")]
    Unreadable {
        file: String,
        pos: u64,
        reason: String,
    },
    /// The event is of a kind that would hide rows (see the module docs).
    #[error("{0}")]
    Unsupported(String),
}

fn uuid_text(sid: [u8; 16]) -> String {
    let h: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// MariaDB GTID event body: seq_no u64, domain_id u32, flags u8 (little-endian).
pub fn parse_mariadb_gtid(body: &[u8], server_id: u32) -> Option<(String, bool)> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    Some((
        format!("{domain}-{server_id}-{seq}"),
        flags & MARIADB_FL_STANDALONE != 0,
    ))
}

fn ends_with_dot_digits(name: &[u8]) -> bool {
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) => dot + 1 < name.len() && name[dot + 1..].iter().all(u8::is_ascii_digit),
        None => false,
    }
}

/// mysql_async issue #189: MariaDB's first (fake) ROTATE carries its CRC32 in
/// the name because the checksum setting is not known yet. Binlog names end in
/// `.<digits>`; four trailing bytes that break that shape are the checksum.
pub fn rotate_file_name(raw: &[u8]) -> String {
    let name = if raw.len() > 4
        && !ends_with_dot_digits(raw)
        && ends_with_dot_digits(&raw[..raw.len() - 4])
    {
        &raw[..raw.len() - 4]
    } else {
        raw
    };
    String::from_utf8_lossy(name).into_owned()
}

/// The first word of a statement, upper-cased (comments skipped).
fn statement_kind(query: &str) -> String {
    let mut q = query.trim_start();
    while let Some(rest) = q.strip_prefix("/*") {
        q = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
    }
    q.split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[derive(Debug, Clone)]
struct Txn {
    start: u64,
    gtid: Option<String>,
    /// A BEGIN (or a non-standalone MariaDB GTID) opened it: a commit event ends it.
    began: bool,
    rows_events: u64,
    thread: Option<i64>,
    /// MySQL 8 GTID events carry the commit time in µs (0: unknown).
    commit_us: Option<u64>,
}

/// What one event means for the records (see [`Position::observe`]).
#[derive(Debug)]
pub enum Step<'e> {
    /// No record and no new position.
    Nothing,
    /// A position reached without a record (commit, rotation).
    Mark(SourceOffset),
    /// A table's current shape (cache it by table id).
    TableMap(TableMapEvent<'static>),
    /// A schema change; with the position after it when it was its own transaction.
    Ddl(Option<SourceOffset>),
    /// A TRUNCATE statement (see [`Position::take_truncate`]); with the
    /// position after it when it was its own transaction (always, on MySQL
    /// and MariaDB: TRUNCATE commits implicitly).
    Truncate(Option<SourceOffset>),
    /// Rows to turn into records.
    Rows(RowsStep<'e>),
}

/// A rows event placed in its transaction.
#[derive(Debug)]
pub struct RowsStep<'e> {
    /// Rows events of this transaction before this one.
    pub index: u64,
    /// Rows already delivered before a restart (skip them); `None`: skip all.
    pub skip_rows: Option<u64>,
    /// Position of the transaction's first event (`source.pos`).
    pub txn_start: u64,
    pub gtid: Option<String>,
    pub thread: Option<i64>,
    pub server_id: u32,
    pub ts_ms: i64,
    /// `source.query` (`include.query`): the statement of the last
    /// Rows_query event of the transaction.
    pub query: Option<String>,
    pub data: RowsEventData<'e>,
}

/// A schema-changing statement read from the binlog, for the schema-change
/// topic (see [`crate::ddl`]).
#[derive(Debug, Clone)]
pub struct DdlEvent {
    pub statement: String,
    /// The statement's current database (`USE`), possibly empty.
    pub schema: String,
    pub source: SourceInfo,
}

/// A transaction that opened (BEGIN, or a MariaDB GTID that is not
/// standalone): what Debezium's transaction metadata calls its BEGIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnBegin {
    /// Debezium's transaction id: the GTID, else `file=<file>,pos=<pos of BEGIN>`
    /// (`BinlogOffsetContext.NON_GTID_TRANSACTION_ID_FORMAT`).
    pub id: String,
    /// The opening event's time (binlog header, ms).
    pub ts_ms: i64,
}

/// Transaction and position tracking, free of I/O so it can be driven by
/// recorded binlog files in unit tests.
#[derive(Debug, Clone)]
pub struct Position {
    flavor: Flavor,
    source_server_id: u32,
    /// Current binlog file.
    pub file: String,
    /// End of the last positioned event: where the next one starts.
    pub next_pos: u64,
    txn: Option<Txn>,
    skip: Option<(u64, u64)>,
    /// The transaction `skip` belongs to, when the offset named it: others
    /// streamed before it (by GTID) are not skipped into.
    skip_gtid: Option<String>,
    gtids: GtidSet,
    /// Set by each transaction commit: its source commit time in µs, if known.
    committed: Option<Option<u64>>,
    /// Set by each CREATE/ALTER/DROP/RENAME statement (not TRUNCATE).
    ddl: Option<DdlEvent>,
    /// Set by each TRUNCATE statement.
    truncate: Option<DdlEvent>,
    /// Set by each event that opens a transaction.
    opened: Option<TxnBegin>,
    /// Binlog header time (ms) of the last positioned event.
    pub event_ts_ms: i64,
    /// The incremental snapshot state every offset carries (set by
    /// [`crate::incremental`] through the streamer; starts as the resumed one).
    pub incremental: IncrementalOffset,
    /// `include.query`: keep the statements of Rows_query events.
    include_query: bool,
    /// The statement of the last Rows_query event, until the transaction
    /// commits (Debezium's `BinlogOffsetContext.setQuery`, cleared by
    /// `commitTransaction`): a rows event without a Rows_query of its own (a
    /// session that turned `binlog_rows_query_log_events` off) keeps it.
    query: Option<String>,
}

impl Position {
    /// At `resume` (a transaction boundary + skip counts).
    pub fn new(flavor: Flavor, source_server_id: u32, resume: &SourceOffset) -> Self {
        Self {
            flavor,
            source_server_id,
            file: resume.file.clone(),
            next_pos: resume.pos,
            txn: None,
            skip: (resume.event > 0 || resume.row > 0).then_some((resume.event, resume.row)),
            skip_gtid: resume.in_flight_gtid.clone(),
            gtids: resume
                .gtids
                .as_deref()
                .map(|g| GtidSet::parse(g, flavor))
                .unwrap_or_default(),
            committed: None,
            ddl: None,
            truncate: None,
            opened: None,
            event_ts_ms: 0,
            incremental: resume.incremental.clone(),
            include_query: false,
            query: None,
        }
    }

    /// The transaction opened by the last [`Position::observe`] (consumed).
    pub fn take_begin(&mut self) -> Option<TxnBegin> {
        self.opened.take()
    }

    /// The TRUNCATE statement seen by the last [`Position::observe`] (consumed).
    pub fn take_truncate(&mut self) -> Option<DdlEvent> {
        self.truncate.take()
    }

    /// The schema-changing statement seen by the last [`Position::observe`]
    /// (consumed).
    pub fn take_ddl(&mut self) -> Option<DdlEvent> {
        self.ddl.take()
    }

    /// The committed GTID set, as stored in offsets.
    /// The committed GTIDs so far.
    pub fn gtid_set(&self) -> &GtidSet {
        &self.gtids
    }

    pub fn gtids(&self) -> Option<String> {
        self.gtids.to_text()
    }

    pub fn offset(&self, pos: u64, event: u64, row: u64) -> SourceOffset {
        SourceOffset {
            file: self.file.clone(),
            pos,
            gtids: self.gtids.to_text(),
            event,
            row,
            in_flight_gtid: self.txn.as_ref().and_then(|t| t.gtid.clone()),
            snapshot: None,
            server_id: self.source_server_id,
            ts_sec: crate::clock::now_ms() as u64 / 1000,
            incremental: self.incremental.clone(),
        }
    }

    fn begin(&mut self, start: u64, gtid: Option<String>, began: bool) {
        self.txn = Some(Txn {
            start,
            gtid,
            began,
            rows_events: 0,
            thread: None,
            commit_us: None,
        });
    }

    /// The transaction commit seen by the last [`Position::observe`], with
    /// its source commit time in µs when the binlog records one (consumed).
    pub fn take_commit(&mut self) -> Option<Option<u64>> {
        self.committed.take()
    }

    /// Whether the skip counts apply to the open transaction.
    fn skips_here(&self) -> bool {
        match (&self.skip_gtid, &self.txn) {
            (None, _) => true,
            (Some(target), Some(txn)) => txn.gtid.as_ref() == Some(target),
            (Some(_), None) => false,
        }
    }

    /// `include.query`: record each Rows_query event's statement for the
    /// rows events that follow it.
    pub fn including_query(mut self, include: bool) -> Self {
        self.include_query = include;
        self
    }

    fn commit(&mut self) -> Step<'static> {
        self.committed = Some(None);
        self.query = None;
        if self.skips_here() {
            self.skip = None;
            self.skip_gtid = None;
        }
        if let Some(txn) = self.txn.take() {
            if let Some(gtid) = &txn.gtid {
                self.gtids.add(gtid, self.flavor);
            }
            self.committed = Some(txn.commit_us);
        }
        Step::Mark(self.offset(self.next_pos, 0, 0))
    }

    /// Advances over one event and says what it means.
    pub fn observe<'e>(&mut self, event: &'e Event) -> Result<Step<'e>, EventError> {
        let header = event.header();
        let kind = header.event_type_raw();
        if kind == HEARTBEAT_EVENT {
            return Ok(Step::Nothing);
        }
        let artificial = header.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0;
        self.event_ts_ms = i64::from(header.timestamp()) * 1000;
        let end = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        // Events inside a transaction payload carry no position of their own.
        let start = if end >= size && end > 0 {
            end - size
        } else {
            self.next_pos
        };
        if end > 0 && !artificial {
            self.next_pos = end;
        }
        if kind == MARIADB_GTID_EVENT {
            let (gtid, standalone) = parse_mariadb_gtid(event.data(), header.server_id())
                .ok_or_else(|| EventError::Unreadable {
                    file: self.file.clone(),
                    pos: start,
                    reason: "short MariaDB GTID event".into(),
                })?;
            if !standalone {
                self.opened = Some(TxnBegin {
                    id: gtid.clone(),
                    ts_ms: self.event_ts_ms,
                });
            }
            self.begin(start, Some(gtid), !standalone);
            return Ok(Step::Nothing);
        }
        if MARIADB_COMPRESSED.contains(&kind) {
            return Err(EventError::Unsupported(format!(
                "MariaDB compressed binlog event (type {kind}) at {}:{start}; set log_bin_compress=OFF on the server",
                self.file
            )));
        }
        let data = event.read_data().map_err(|e| EventError::Unreadable {
            file: self.file.clone(),
            pos: start,
            reason: e.to_string(),
        })?;
        let Some(data) = data else {
            // Unknown to mysql_common (MariaDB 160+ kinds): carries no rows.
            return Ok(Step::Nothing);
        };
        Ok(match data {
            EventData::RotateEvent(rotate) => {
                let raw = rotate.name_raw();
                // The fake ROTATE that opens a stream names the file we asked
                // for; trust our own copy over a name with trailing checksum bytes.
                if !(artificial && !self.file.is_empty() && raw.starts_with(self.file.as_bytes())) {
                    self.file = rotate_file_name(raw);
                }
                self.next_pos = rotate.position();
                if !artificial && self.txn.is_none() && self.skip.is_none() {
                    Step::Mark(self.offset(self.next_pos, 0, 0))
                } else {
                    Step::Nothing
                }
            }
            EventData::GtidEvent(g) => {
                let uuid = uuid_text(g.sid());
                let gtid = match g.tag() {
                    Some(tag) => format!("{uuid}:{}:{}", tag.as_str(), g.gno()),
                    None => format!("{uuid}:{}", g.gno()),
                };
                self.begin(start, Some(gtid), false);
                if let Some(txn) = &mut self.txn {
                    txn.commit_us = Some(g.immediate_commit_timestamp()).filter(|&us| us > 0);
                }
                Step::Nothing
            }
            EventData::AnonymousGtidEvent(_) => {
                self.begin(start, None, false);
                Step::Nothing
            }
            EventData::QueryEvent(q) => {
                let query = q.query();
                match statement_kind(&query).as_str() {
                    "BEGIN" => {
                        match &mut self.txn {
                            Some(txn) => txn.began = true,
                            None => self.begin(start, None, true),
                        }
                        if let Some(txn) = &mut self.txn {
                            txn.thread = Some(i64::from(q.thread_id()));
                            self.opened = Some(TxnBegin {
                                id: txn
                                    .gtid
                                    .clone()
                                    .unwrap_or_else(|| format!("file={},pos={start}", self.file)),
                                ts_ms: self.event_ts_ms,
                            });
                        }
                        Step::Nothing
                    }
                    // ROLLBACK: only non-transactional changes were logged before it.
                    "COMMIT" | "ROLLBACK" => self.commit(),
                    other => {
                        let ddl = matches!(other, "ALTER" | "CREATE" | "DROP" | "RENAME");
                        let truncate = other == "TRUNCATE";
                        if ddl || truncate {
                            tracing::info!(schema = %q.schema(), statement = %query.chars().take(200).collect::<String>(), "DDL in the binlog; rows that follow are decoded with their table map's shape");
                            let (pos, gtid) = self
                                .txn
                                .as_ref()
                                .map_or((start, None), |t| (t.start, t.gtid.clone()));
                            let event = DdlEvent {
                                statement: query.clone().into_owned(),
                                schema: q.schema().into_owned(),
                                source: SourceInfo {
                                    server_id: header.server_id(),
                                    file: self.file.clone(),
                                    pos,
                                    row: 0,
                                    gtid,
                                    ts_ms: i64::from(header.timestamp()) * 1000,
                                    snapshot: SnapshotMarker::False,
                                    // Debezium's source.thread is the
                                    // thread of the open BEGIN (reset at
                                    // COMMIT); a DDL has none of its own.
                                    thread: self
                                        .txn
                                        .as_ref()
                                        .filter(|t| t.began)
                                        .and_then(|t| t.thread),
                                    query: None,
                                },
                            };
                            match truncate {
                                true => self.truncate = Some(event),
                                false => self.ddl = Some(event),
                            }
                        }
                        // A statement outside BEGIN..COMMIT is its own transaction.
                        let commit = match self.txn.as_ref().is_none_or(|t| !t.began) {
                            true => match self.commit() {
                                Step::Mark(offset) => Some(offset),
                                _ => None,
                            },
                            false => None,
                        };
                        match (ddl, truncate, commit) {
                            (true, _, commit) => Step::Ddl(commit),
                            (_, true, commit) => Step::Truncate(commit),
                            (false, false, Some(offset)) => Step::Mark(offset),
                            (false, false, None) => Step::Nothing,
                        }
                    }
                }
            }
            EventData::XidEvent(_) => self.commit(),
            EventData::RowsQueryEvent(q) => {
                if self.include_query {
                    self.query = Some(q.query().into_owned());
                }
                Step::Nothing
            }
            EventData::TableMapEvent(tme) => Step::TableMap(tme.into_owned()),
            EventData::RowsEvent(data) => {
                if self.txn.is_none() {
                    // Rows outside an explicit transaction (non-transactional engine).
                    self.begin(start, None, false);
                }
                let skip = self.skip.filter(|_| self.skips_here());
                let Some(txn) = self.txn.as_mut() else {
                    return Ok(Step::Nothing);
                };
                let index = txn.rows_events;
                txn.rows_events += 1;
                let skip_rows = match skip {
                    Some((events, _)) if index < events => None,
                    Some((events, rows)) if index == events => Some(rows),
                    _ => Some(0),
                };
                Step::Rows(RowsStep {
                    index,
                    skip_rows,
                    txn_start: txn.start,
                    gtid: txn.gtid.clone(),
                    thread: txn.thread,
                    server_id: header.server_id(),
                    ts_ms: i64::from(header.timestamp()) * 1000,
                    query: self.query.clone(),
                    data,
                })
            }
            _ => Step::Nothing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gtid_body() {
        let mut body = Vec::new();
        body.extend_from_slice(&42u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(1);
        assert_eq!(
            parse_mariadb_gtid(&body, 7),
            Some(("3-7-42".to_owned(), true))
        );
        assert_eq!(parse_mariadb_gtid(&body[..5], 7), None);
    }

    #[test]
    fn rotate_name_checksum_is_stripped() {
        assert_eq!(rotate_file_name(b"mysql-bin.000002"), "mysql-bin.000002");
        assert_eq!(
            rotate_file_name(b"mariadb-bin.000001\x8a\x11\xf0\x02"),
            "mariadb-bin.000001"
        );
    }

    #[test]
    fn statement_kinds() {
        assert_eq!(statement_kind("BEGIN"), "BEGIN");
        assert_eq!(statement_kind("/* x */ alter table t add c int"), "ALTER");
        assert_eq!(statement_kind("COMMIT"), "COMMIT");
    }
}
