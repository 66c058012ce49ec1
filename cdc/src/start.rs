//! Where a run starts: snapshot, or stream from the stored offset, and how
//! the binlog stream is requested (by GTID set or by file and position).
//!
//! [`decide`] is the whole policy as a pure function of the stored offset,
//! the server's state ([`ServerState`]: flavour, `gtid_mode`,
//! `gtid_executed`, `gtid_purged`, binlog files), `snapshot.mode` and the
//! `gtid.source.*` filter; [`server_state`] is the only I/O. The rules are
//! Debezium's (`BinlogConnectorConnection.isBinlogPositionAvailable`,
//! `MySqlConnection.filterGtidSet` and the streaming source's start):
//!
//! 1. **By GTID** when the server is MySQL with `gtid_mode=ON` and the offset
//!    carries a MySQL GTID set. The binlog file and position in the offset
//!    are then ignored: they name the server the offset was written against,
//!    and a promoted replica holds the same transactions under other file
//!    names and positions. The position is available when
//!    - the server has executed every stored GTID (`stored ⊆ gtid_executed`;
//!      otherwise it is behind, or another cluster), and
//!    - it has purged none of the transactions the connector still needs
//!      (`(gtid_executed − stored) ∩ gtid_purged = ∅`, i.e. `gtid_purged ⊆
//!      stored` on the sources that count).
//!
//!    The set sent with `COM_BINLOG_DUMP_GTID` is `stored ∪ gtid_purged`:
//!    the server refuses a replica that lacks anything it purged. By the
//!    second check that only adds the purged GTIDs of excluded sources (see
//!    4); a source that is neither stored nor purged (a channel only the new
//!    server has) is streamed from its first transaction, Debezium's default
//!    for new channels. The merged set becomes the offset's `gtids` from then
//!    on, as in Debezium.
//!
//!    On **MariaDB** (which always has GTIDs) the offset's `gtids` is one
//!    GTID per replication domain, the last the connector committed
//!    ([`MariaDbPosition`]); the stream is requested as a MariaDB replica
//!    asks for it, `@slave_connect_state` set to that position and a dump
//!    from no file (what Debezium's MariaDB connector, through
//!    binlog-connector-java, does). Sequence numbers grow per domain, so the
//!    position is available when
//!    - the server's binlog has reached it in every stored domain
//!      (`@@gtid_binlog_pos`; otherwise it is behind, or another cluster),
//!      and
//!    - the oldest binlog file starts at or before it in every domain the
//!      server has (`BINLOG_GTID_POS(<oldest file>, 4)`, the GTID_LIST that
//!      file opens with: what came before it is purged). A domain the
//!      offset lacks counts from 0: its purged transactions were never read.
//!
//!    `gtid.source.*` filters MySQL source UUIDs and does not apply here.
//! 2. **By file and position** otherwise (MySQL without GTIDs, an offset
//!    without GTIDs). The position is available when the server still has
//!    the file.
//! 3. Either way the offset's `event` / `row` skip counts apply to the first
//!    transaction streamed. By file and position that is the transaction at
//!    `pos`; by GTID it is the first transaction not in the set: the stored
//!    set holds only committed transactions, so that is the one in flight
//!    when the offset was written, provided the server logged it in the same
//!    order relative to the others (a replica applying in commit order:
//!    `replica_preserve_commit_order=ON`, MySQL's default). A replica re-logs
//!    rows with the same rows-event grouping (`binlog_row_event_max_size`),
//!    which is what makes the counts portable; Debezium relies on the same.
//! 4. An unavailable position is an error naming what is gone, except with
//!    `snapshot.mode=when_needed`, which snapshots again instead.
//!    `gtid.source.includes/excludes` drop the other sources' GTIDs from the
//!    stored set before these checks (and their row changes are skipped while
//!    streaming): an excluded channel the new server lacks does not block.
//! 5. A stored `snapshot: true` marks an interrupted snapshot: snapshot
//!    again, then stream from that earlier position when it is still
//!    available (see [`crate::snapshot`]), by the same rules.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::config::{GtidSourceFilter, SnapshotMode};
use crate::gtid::{GtidSet, MariaDbPosition, MySqlGtidSet};
use crate::offsets::SourceOffset;
use crate::preflight::{Flavor, ServerInfo};

/// What the start decision needs to know about the server.
#[derive(Debug, Clone)]
pub struct ServerState {
    pub flavor: Flavor,
    /// MySQL `gtid_mode=ON` (false for MariaDB: its GTIDs are not used to resume).
    pub gtid_mode: bool,
    pub gtid_executed: MySqlGtidSet,
    pub gtid_purged: MySqlGtidSet,
    /// `SHOW BINARY LOGS`.
    pub binlog_files: Vec<String>,
    /// MariaDB: `@@GLOBAL.gtid_binlog_pos`, the last GTID of each domain in
    /// the binlog (empty on MySQL).
    pub mariadb_binlog_pos: MariaDbPosition,
    /// MariaDB: the position the oldest binlog file starts at; everything
    /// up to it is purged (empty on MySQL).
    pub mariadb_purged: MariaDbPosition,
}

/// How the binlog stream is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeBy {
    /// `COM_BINLOG_DUMP` at `file` / `pos`.
    FilePos,
    /// By the offset's `gtids`: MySQL's `COM_BINLOG_DUMP_GTID` with the
    /// set, MariaDB's `COM_BINLOG_DUMP` from no file with
    /// `@slave_connect_state` set to the position.
    Gtid,
}

/// A position to stream from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub offset: SourceOffset,
    pub by: ResumeBy,
}

/// What the run does first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Stream(Resume),
    /// Snapshot; then stream from `then` (an interrupted snapshot's position)
    /// or, when `None`, from the new snapshot's own position.
    Snapshot {
        then: Option<Resume>,
    },
}

/// Why the stored position cannot be resumed from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("the stored position {offset} names binlog file {file}, which the server no longer has (purged); the changes since then are lost: set snapshot.mode=when_needed to re-snapshot, or delete the stored offsets")]
    PurgedFile { offset: String, file: String },
    #[error("the server has purged transactions the connector has not read yet ({lost}; stored GTID set {stored}); the changes they made are lost: set snapshot.mode=when_needed to re-snapshot, or delete the stored offsets")]
    PurgedGtids { stored: String, lost: String },
    #[error("the server lacks transactions the connector already read ({missing}; stored GTID set {stored}): it is behind, or not a server of the same replication topology; point the connector at an up-to-date server, set snapshot.mode=when_needed to re-snapshot, or delete the stored offsets")]
    MissingGtids { stored: String, missing: String },
    #[error("the stored offset resumes by GTID set ({stored}) but the server has gtid_mode OFF; enable GTIDs (gtid_mode=ON), set snapshot.mode=when_needed to re-snapshot, or delete the stored offsets")]
    NoGtids { stored: String },
}

/// The offset's MySQL GTID set, when it has a non-empty one.
fn mysql_gtids(offset: &SourceOffset) -> Option<MySqlGtidSet> {
    match GtidSet::parse(offset.gtids.as_deref()?, Flavor::MySql) {
        GtidSet::MySql(set) if !set.is_empty() => Some(set),
        _ => None,
    }
}

/// The offset's MariaDB position, when it has a non-empty, readable one.
fn mariadb_gtids(offset: &SourceOffset) -> Option<MariaDbPosition> {
    MariaDbPosition::parse(offset.gtids.as_deref()?)
        .ok()
        .filter(|p| !p.is_empty())
}

/// How to stream from `offset`, a position read on this very server (a
/// snapshot's): by GTID where the server and the offset have GTIDs.
pub fn resume_by(server: &ServerState, offset: &SourceOffset) -> ResumeBy {
    let gtids = match server.flavor {
        Flavor::MySql => server.gtid_mode && mysql_gtids(offset).is_some(),
        Flavor::MariaDb => mariadb_gtids(offset).is_some(),
    };
    if gtids {
        ResumeBy::Gtid
    } else {
        ResumeBy::FilePos
    }
}

/// MariaDB: whether the stored position is still available (module docs, 1).
fn locate_mariadb(
    offset: SourceOffset,
    stored: &MariaDbPosition,
    server: &ServerState,
) -> Result<Resume, StartError> {
    let missing = stored.ahead_of(&server.mariadb_binlog_pos);
    if !missing.is_empty() {
        return Err(StartError::MissingGtids {
            stored: stored.to_string(),
            missing: missing.join(", "),
        });
    }
    let lost = stored.unread_in(&server.mariadb_purged);
    if !lost.is_empty() {
        return Err(StartError::PurgedGtids {
            stored: stored.to_string(),
            lost: lost.join(", "),
        });
    }
    Ok(Resume {
        offset: SourceOffset {
            gtids: Some(stored.to_string()),
            ..offset
        },
        by: ResumeBy::Gtid,
    })
}

/// Whether `stored` is still available on the server, and how to resume from it.
pub fn locate(
    stored: &SourceOffset,
    server: &ServerState,
    filter: &GtidSourceFilter,
) -> Result<Resume, StartError> {
    let offset = SourceOffset {
        snapshot: None,
        ..stored.clone()
    };
    let gtids = match server.flavor {
        Flavor::MySql => mysql_gtids(&offset),
        Flavor::MariaDb => match mariadb_gtids(&offset) {
            Some(stored) => return locate_mariadb(offset, &stored, server),
            None => None,
        },
    };
    let Some(gtids) = gtids else {
        if server.binlog_files.contains(&offset.file) {
            return Ok(Resume {
                offset,
                by: ResumeBy::FilePos,
            });
        }
        return Err(StartError::PurgedFile {
            offset: offset.to_string(),
            file: offset.file.clone(),
        });
    };
    if !server.gtid_mode {
        return Err(StartError::NoGtids {
            stored: gtids.to_string(),
        });
    }
    let counts = |uuid: &str| filter.includes(uuid);
    let stored_set = gtids.retain_sources(counts);
    let missing = stored_set.subtract(&server.gtid_executed);
    if !missing.is_empty() {
        return Err(StartError::MissingGtids {
            stored: gtids.to_string(),
            missing: missing.to_string(),
        });
    }
    let unread = server
        .gtid_executed
        .retain_sources(counts)
        .subtract(&stored_set);
    let lost = unread.subtract(&unread.subtract(&server.gtid_purged));
    if !lost.is_empty() {
        return Err(StartError::PurgedGtids {
            stored: gtids.to_string(),
            lost: lost.to_string(),
        });
    }
    let merged = stored_set.union(&server.gtid_purged);
    Ok(Resume {
        offset: SourceOffset {
            gtids: Some(merged.to_string()),
            ..offset
        },
        by: ResumeBy::Gtid,
    })
}

/// The start policy (see the module docs).
pub fn decide(
    stored: Option<&SourceOffset>,
    server: &ServerState,
    mode: SnapshotMode,
    filter: &GtidSourceFilter,
) -> Result<Start, StartError> {
    let Some(stored) = stored else {
        return Ok(Start::Snapshot { then: None });
    };
    if stored.snapshot == Some(true) {
        return Ok(match locate(stored, server, filter) {
            Ok(resume) => {
                tracing::warn!(position = %resume.offset, "the previous snapshot was interrupted: snapshotting again, then streaming from its position so that changes made since (deletes too) reach Kafka");
                Start::Snapshot { then: Some(resume) }
            }
            Err(gone) => {
                tracing::warn!(reason = %gone, "the previous snapshot was interrupted and its position is no longer available: rows it emitted and that were deleted since stay in the topics until compacted by a later delete");
                Start::Snapshot { then: None }
            }
        });
    }
    if mode == SnapshotMode::Always {
        return Ok(Start::Snapshot { then: None });
    }
    match locate(stored, server, filter) {
        Ok(resume) => Ok(Start::Stream(resume)),
        Err(gone) if mode == SnapshotMode::WhenNeeded => {
            tracing::warn!(reason = %gone, "snapshot.mode=when_needed: taking a new snapshot");
            Ok(Start::Snapshot { then: None })
        }
        Err(gone) => Err(gone),
    }
}

/// Reads what [`decide`] needs from the server.
pub async fn server_state(
    conn: &mut Conn,
    info: &ServerInfo,
) -> Result<ServerState, mysql_async::Error> {
    let rows: Vec<Row> = conn.query("SHOW BINARY LOGS").await?;
    let binlog_files: Vec<String> = rows.iter().filter_map(|r| r.get::<String, _>(0)).collect();
    let gtid_mode = info.flavor == Flavor::MySql && info.gtid_mode;
    let (mut gtid_executed, mut gtid_purged) = Default::default();
    if gtid_mode {
        let (executed, purged): (String, String) = conn
            .query_first("SELECT @@GLOBAL.gtid_executed, @@GLOBAL.gtid_purged")
            .await?
            .unwrap_or_default();
        let read = |name: &str, text: &str| {
            MySqlGtidSet::parse(text).map_err(|e| {
                mysql_async::Error::Other(format!("unreadable @@GLOBAL.{name}: {e}").into())
            })
        };
        gtid_executed = read("gtid_executed", &executed)?;
        gtid_purged = read("gtid_purged", &purged)?;
    }
    let (mut mariadb_binlog_pos, mut mariadb_purged) = Default::default();
    if info.flavor == Flavor::MariaDb {
        let read = |name: &str, text: Option<String>| {
            MariaDbPosition::parse(&text.unwrap_or_default())
                .map_err(|e| mysql_async::Error::Other(format!("unreadable {name}: {e}").into()))
        };
        let pos: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await?;
        mariadb_binlog_pos = read("@@GLOBAL.gtid_binlog_pos", pos)?;
        if let Some(oldest) = binlog_files.first() {
            let start: Option<Option<String>> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (oldest,))
                .await?;
            mariadb_purged = read("BINLOG_GTID_POS of the oldest binlog", start.flatten())?;
        }
    }
    Ok(ServerState {
        flavor: info.flavor,
        gtid_mode,
        gtid_executed,
        gtid_purged,
        binlog_files,
        mariadb_binlog_pos,
        mariadb_purged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "83574839-ec64-11f1-9ef5-02fc00000001";
    const C: &str = "0a0b0c0d-0000-1111-2222-333344445555";

    fn set(text: &str) -> MySqlGtidSet {
        MySqlGtidSet::parse(text).unwrap()
    }

    fn mysql(executed: &str, purged: &str, files: &[&str]) -> ServerState {
        ServerState {
            flavor: Flavor::MySql,
            gtid_mode: true,
            gtid_executed: set(executed),
            gtid_purged: set(purged),
            binlog_files: files.iter().map(|f| f.to_string()).collect(),
            mariadb_binlog_pos: MariaDbPosition::default(),
            mariadb_purged: MariaDbPosition::default(),
        }
    }

    fn mariadb(binlog_pos: &str, purged: &str, files: &[&str]) -> ServerState {
        ServerState {
            flavor: Flavor::MariaDb,
            gtid_mode: false,
            mariadb_binlog_pos: MariaDbPosition::parse(binlog_pos).unwrap(),
            mariadb_purged: MariaDbPosition::parse(purged).unwrap(),
            ..mysql("", "", files)
        }
    }

    fn no_gtid_server(files: &[&str]) -> ServerState {
        ServerState {
            gtid_mode: false,
            ..mysql("", "", files)
        }
    }

    /// Mid-transaction: 2 rows events and 1 row of the next one delivered.
    fn offset(file: &str, gtids: Option<&str>) -> SourceOffset {
        SourceOffset {
            file: file.into(),
            pos: 1234,
            gtids: gtids.map(str::to_owned),
            event: 2,
            row: 1,
            server_id: 1,
            ..Default::default()
        }
    }

    fn none() -> GtidSourceFilter {
        GtidSourceFilter::default()
    }

    fn stream(start: Start) -> Resume {
        match start {
            Start::Stream(resume) => resume,
            other => panic!("expected streaming, got {other:?}"),
        }
    }

    #[test]
    fn nothing_stored_snapshots() {
        let server = mysql(&format!("{A}:1-9"), "", &["b.000001"]);
        for mode in [
            SnapshotMode::Initial,
            SnapshotMode::WhenNeeded,
            SnapshotMode::NoData,
        ] {
            assert_eq!(
                decide(None, &server, mode, &none()),
                Ok(Start::Snapshot { then: None })
            );
        }
    }

    #[test]
    fn without_gtids_by_file_and_position() {
        let stored = offset("a.000003", None);
        let resume = stream(
            decide(
                Some(&stored),
                &no_gtid_server(&["a.000002", "a.000003"]),
                SnapshotMode::Initial,
                &none(),
            )
            .unwrap(),
        );
        assert_eq!(resume.by, ResumeBy::FilePos);
        assert_eq!(resume.offset, stored);

        // A GTID server, but an offset without GTIDs: still by file.
        let server = mysql(&format!("{A}:1-9"), "", &["a.000003"]);
        let resume =
            stream(decide(Some(&stored), &server, SnapshotMode::Initial, &none()).unwrap());
        assert_eq!(resume.by, ResumeBy::FilePos);
    }

    #[test]
    fn purged_file_is_an_error_or_a_new_snapshot() {
        let stored = offset("a.000001", None);
        let server = no_gtid_server(&["a.000002"]);
        let err = decide(Some(&stored), &server, SnapshotMode::Initial, &none()).unwrap_err();
        assert_eq!(
            err,
            StartError::PurgedFile {
                offset: stored.to_string(),
                file: "a.000001".into()
            }
        );
        assert!(err.to_string().contains("snapshot.mode=when_needed"));
        assert_eq!(
            decide(Some(&stored), &server, SnapshotMode::WhenNeeded, &none()),
            Ok(Start::Snapshot { then: None })
        );
    }

    #[test]
    fn mariadb_resumes_by_its_gtid_position_on_any_server_that_has_it() {
        // Written against A (file m.000004); B has other files, more
        // transactions, a domain of its own, and purged nothing unread.
        let stored = offset("m.000004", Some("0-1-42"));
        let server = mariadb("0-2-60,1-2-5", "0-1-30", &["b.000002", "b.000003"]);
        let resume =
            stream(decide(Some(&stored), &server, SnapshotMode::Initial, &none()).unwrap());
        assert_eq!(resume.by, ResumeBy::Gtid);
        assert_eq!(resume.offset.gtids.as_deref(), Some("0-1-42"));
        assert_eq!((resume.offset.event, resume.offset.row), (2, 1));
        assert_eq!(resume_by(&server, &resume.offset), ResumeBy::Gtid);
        // Without GTIDs in the offset: by file, which must still be there.
        let by_file = offset("b.000003", None);
        let resume =
            stream(decide(Some(&by_file), &server, SnapshotMode::Initial, &none()).unwrap());
        assert_eq!(resume.by, ResumeBy::FilePos);
        assert_eq!(resume_by(&server, &by_file), ResumeBy::FilePos);
    }

    #[test]
    fn mariadb_positions_behind_or_purged_are_errors_or_a_new_snapshot() {
        let stored = offset("m.000004", Some("0-1-42,1-2-7"));
        // The server is behind in domain 1.
        let behind = mariadb("0-1-50,1-2-6", "", &["m.000004"]);
        let err = decide(Some(&stored), &behind, SnapshotMode::Initial, &none()).unwrap_err();
        assert_eq!(
            err,
            StartError::MissingGtids {
                stored: "0-1-42,1-2-7".into(),
                missing: "1-2-7".into()
            }
        );
        // Its oldest binlog starts after 0-1-45: 43..=45 are gone unread.
        let purged = mariadb("0-1-50,1-2-7", "0-1-45,1-2-7", &["m.000009"]);
        let err = decide(Some(&stored), &purged, SnapshotMode::Initial, &none()).unwrap_err();
        assert_eq!(
            err,
            StartError::PurgedGtids {
                stored: "0-1-42,1-2-7".into(),
                lost: "domain 0 seq 43..=45".into()
            }
        );
        assert!(err.to_string().contains("snapshot.mode=when_needed"));
        assert_eq!(
            decide(Some(&stored), &purged, SnapshotMode::WhenNeeded, &none()),
            Ok(Start::Snapshot { then: None })
        );
    }

    #[test]
    fn failover_resumes_by_gtid_whatever_the_files() {
        // Written against A's binlog; the promoted replica has other files,
        // has executed more, and purged only what the offset has.
        let stored = offset("a-bin.000007", Some(&format!("{A}:1-100")));
        let server = mysql(
            &format!("{A}:1-150,{B}:1-3"),
            &format!("{A}:1-40"),
            &["b-bin.000001"],
        );
        let resume =
            stream(decide(Some(&stored), &server, SnapshotMode::Initial, &none()).unwrap());
        assert_eq!(resume.by, ResumeBy::Gtid);
        // Skip counts carry over; only the set is rewritten.
        assert_eq!((resume.offset.event, resume.offset.row), (2, 1));
        assert_eq!(resume.offset.gtids, Some(format!("{A}:1-100")));
        assert_eq!(resume_by(&server, &resume.offset), ResumeBy::Gtid);
    }

    #[test]
    fn the_request_set_includes_what_the_server_purged() {
        // B's own transactions 1-5 are purged: the server demands them in the
        // request; 6-9 were never seen by the connector and are streamed.
        let stored = offset("a.000001", Some(&format!("{A}:1-100")));
        let server = mysql(
            &format!("{A}:1-120,{B}:1-9"),
            &format!("{A}:1-50,{B}:1-5"),
            &[],
        );
        let err = decide(Some(&stored), &server, SnapshotMode::Initial, &none()).unwrap_err();
        // B:1-5 were purged and never read: that is a loss, as in Debezium.
        assert_eq!(
            err,
            StartError::PurgedGtids {
                stored: format!("{A}:1-100"),
                lost: format!("{B}:1-5")
            }
        );
        // With B excluded, the same server is fine and B:1-5 go in the request.
        let filter = GtidSourceFilter::new(None, Some(B)).unwrap();
        let resume =
            stream(decide(Some(&stored), &server, SnapshotMode::Initial, &filter).unwrap());
        assert_eq!(resume.offset.gtids, Some(format!("{A}:1-100,{B}:1-5")));
    }

    #[test]
    fn purged_gtids_the_offset_lacks() {
        let stored = offset("a.000001", Some(&format!("{A}:1-100")));
        let server = mysql(&format!("{A}:1-150"), &format!("{A}:1-120"), &["a.000001"]);
        let err = decide(Some(&stored), &server, SnapshotMode::Initial, &none()).unwrap_err();
        assert_eq!(
            err,
            StartError::PurgedGtids {
                stored: format!("{A}:1-100"),
                lost: format!("{A}:101-120")
            }
        );
        assert!(err.to_string().contains("snapshot.mode=when_needed"));
        // The file is still there, but GTIDs decide: the data is gone.
        assert_eq!(
            decide(Some(&stored), &server, SnapshotMode::WhenNeeded, &none()),
            Ok(Start::Snapshot { then: None })
        );
    }

    #[test]
    fn server_lacking_read_transactions() {
        let stored = offset("a.000001", Some(&format!("{A}:1-100,{C}:1-2")));
        let server = mysql(&format!("{A}:1-90"), "", &["a.000001"]);
        let err = decide(Some(&stored), &server, SnapshotMode::Initial, &none()).unwrap_err();
        assert_eq!(
            err,
            StartError::MissingGtids {
                // Canonical order: by UUID.
                stored: format!("{C}:1-2,{A}:1-100"),
                missing: format!("{C}:1-2,{A}:91-100")
            }
        );
        assert_eq!(
            decide(Some(&stored), &server, SnapshotMode::WhenNeeded, &none()),
            Ok(Start::Snapshot { then: None })
        );
        // Including only A still finds A behind.
        let only_a = GtidSourceFilter::new(Some(A), None).unwrap();
        assert!(matches!(
            decide(Some(&stored), &server, SnapshotMode::Initial, &only_a),
            Err(StartError::MissingGtids { missing, .. }) if missing == format!("{A}:91-100")
        ));
        // A channel the new server never had does not block when excluded.
        let server = mysql(&format!("{A}:1-100"), "", &[]);
        let no_c = GtidSourceFilter::new(None, Some(C)).unwrap();
        let resume = stream(decide(Some(&stored), &server, SnapshotMode::Initial, &no_c).unwrap());
        assert_eq!(resume.offset.gtids, Some(format!("{A}:1-100")));
    }

    #[test]
    fn gtid_offset_on_a_server_without_gtids() {
        let stored = offset("a.000001", Some(&format!("{A}:1-100")));
        let server = no_gtid_server(&["a.000001"]);
        assert_eq!(
            decide(Some(&stored), &server, SnapshotMode::Initial, &none()),
            Err(StartError::NoGtids {
                stored: format!("{A}:1-100")
            })
        );
        assert_eq!(
            decide(Some(&stored), &server, SnapshotMode::WhenNeeded, &none()),
            Ok(Start::Snapshot { then: None })
        );
    }

    #[test]
    fn interrupted_snapshot_streams_from_its_position_when_available() {
        let mut stored = offset("a.000001", Some(&format!("{A}:1-100")));
        stored.snapshot = Some(true);
        let server = mysql(&format!("{A}:1-110"), "", &["b.000001"]);
        let Ok(Start::Snapshot { then: Some(resume) }) =
            decide(Some(&stored), &server, SnapshotMode::Initial, &none())
        else {
            panic!("expected a snapshot then streaming from the interrupted position");
        };
        assert_eq!(resume.by, ResumeBy::Gtid);
        assert_eq!(resume.offset.snapshot, None);

        let server = mysql(&format!("{A}:1-110"), &format!("{A}:1-105"), &[]);
        assert_eq!(
            decide(Some(&stored), &server, SnapshotMode::Initial, &none()),
            Ok(Start::Snapshot { then: None })
        );
    }

    #[test]
    fn always_snapshots_even_with_a_good_offset() {
        let stored = offset("a.000001", None);
        assert_eq!(
            decide(
                Some(&stored),
                &no_gtid_server(&["a.000001"]),
                SnapshotMode::Always,
                &none()
            ),
            Ok(Start::Snapshot { then: None })
        );
    }

    #[test]
    fn after_a_snapshot() {
        let server = mysql(&format!("{A}:1-3"), "", &["a.000001"]);
        assert_eq!(
            resume_by(&server, &offset("a.000001", Some(&format!("{A}:1-3")))),
            ResumeBy::Gtid
        );
        // A fresh server has executed nothing yet: the snapshot has no set.
        assert_eq!(
            resume_by(&server, &offset("a.000001", None)),
            ResumeBy::FilePos
        );
        assert_eq!(
            resume_by(
                &no_gtid_server(&["a.000001"]),
                &offset("a.000001", Some(&format!("{A}:1-3")))
            ),
            ResumeBy::FilePos
        );
    }
}
