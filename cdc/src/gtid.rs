//! GTID sets: what the offset's `gtids` field holds and what a MySQL server
//! is asked to skip when the connector resumes by GTID.
//!
//! A MySQL GTID is `source_uuid[:tag]:gno` (tags since MySQL 8.4); a set maps
//! each `(uuid, tag)` to sorted, disjoint, non-adjacent inclusive intervals of
//! `gno`. [`MySqlGtidSet`] keeps exactly that normal form after every
//! operation, so equal sets compare equal and print identically. It prints
//! in MySQL's own canonical text (`@@gtid_executed` without its newlines):
//! UUIDs in order, lower case, and under one UUID the untagged intervals
//! first, then each tag in order with its intervals
//! (`uuid:1-5:aa:1-3:tag_b:7`). The parser accepts that form, the one-entry-
//! per-tag form (`uuid:aa:1-3,uuid:1-5`), upper-case UUIDs and the newlines
//! MySQL puts after each comma.
//!
//! The operations are the ones resuming needs and nothing more: union (the
//! stored set merged with the server's purged set), difference (which
//! transactions an offset has that the server lacks, or which the server
//! purged that the offset lacks), subset, filtering by source UUID
//! (`gtid.source.includes/excludes`), and conversion to the `Sid` blocks of
//! `COM_BINLOG_DUMP_GTID`.
//!
//! MariaDB's GTIDs (`domain-server-seq`) are another scheme: sequence
//! numbers grow per replication domain, so what a server or a connector has
//! is one GTID per domain, its last ([`MariaDbPosition`], the text of
//! `@@gtid_binlog_pos` and of a replica's `@slave_connect_state`). The
//! offset records it in [`GtidSet::MariaDb`], and a MariaDB server is asked
//! for the stream by it (see [`crate::start`]).

use std::collections::BTreeMap;
use std::fmt;

use mysql_async::{GnoInterval, Sid};
use mysql_common::packets::Tag;

use crate::preflight::Flavor;

/// Why a GTID set's text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GTID set {text:?}: {reason}")]
pub struct GtidParseError {
    pub text: String,
    pub reason: String,
}

/// One source of transactions: a server UUID and an optional tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GtidSource {
    /// Lower-case, hyphenated (`3e11fa47-71ca-11e1-9e33-c80aa9429562`).
    pub uuid: String,
    /// `None` sorts first: untagged intervals print before tagged ones.
    pub tag: Option<String>,
}

/// A MySQL GTID set in normal form (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MySqlGtidSet {
    sources: BTreeMap<GtidSource, Vec<(u64, u64)>>,
}

fn parse_uuid(text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    let groups: Vec<&str> = lower.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(lower)
}

fn uuid_bytes(uuid: &str) -> [u8; 16] {
    let hex: Vec<u8> = uuid.bytes().filter(|b| *b != b'-').collect();
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).take(16).enumerate() {
        let text = std::str::from_utf8(pair).unwrap_or("00");
        out[i] = u8::from_str_radix(text, 16).unwrap_or(0);
    }
    out
}

/// MySQL's tag rule: `[a-z_][a-z0-9_]{0,31}` (case-insensitive, stored lower).
fn parse_tag(text: &str) -> Option<String> {
    let tag = text.trim().to_ascii_lowercase();
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    (first_ok && rest_ok && tag.len() <= 32).then_some(tag)
}

fn parse_interval(text: &str) -> Option<(u64, u64)> {
    let text = text.trim();
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let n = text.parse().ok()?;
            (n, n)
        }
    };
    (a >= 1 && a <= b).then_some((a, b))
}

/// Sorts and merges overlapping or adjacent intervals.
fn normalize(v: &mut Vec<(u64, u64)>) {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for &(a, b) in v.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *v = out;
}

/// `a` minus `b`, both normalized.
fn subtract_intervals(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut start, end) in a {
        for &(bs, be) in b {
            if be < start || bs > end {
                continue;
            }
            if bs > start {
                out.push((start, bs - 1));
            }
            if be >= end {
                start = end.saturating_add(1);
                break;
            }
            start = be + 1;
        }
        if start <= end {
            out.push((start, end));
        }
    }
    out
}

impl MySqlGtidSet {
    /// Parses MySQL's text form (empty text: the empty set).
    pub fn parse(text: &str) -> Result<Self, GtidParseError> {
        let error = |reason: String| GtidParseError {
            text: text.to_owned(),
            reason,
        };
        let mut set = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut pieces = part.split(':');
            let uuid_text = pieces.next().unwrap_or_default();
            let uuid = parse_uuid(uuid_text)
                .ok_or_else(|| error(format!("{uuid_text:?} is not a server UUID")))?;
            let mut tag: Option<String> = None;
            let mut has_interval = false;
            for piece in pieces {
                if piece.trim().starts_with(|c: char| c.is_ascii_digit()) {
                    let (a, b) = parse_interval(piece)
                        .ok_or_else(|| error(format!("{piece:?} is not an interval")))?;
                    set.insert_interval(
                        GtidSource {
                            uuid: uuid.clone(),
                            tag: tag.clone(),
                        },
                        a,
                        b,
                    );
                    has_interval = true;
                } else {
                    tag = Some(
                        parse_tag(piece)
                            .ok_or_else(|| error(format!("{piece:?} is not a GTID tag")))?,
                    );
                    has_interval = false;
                }
            }
            if !has_interval {
                return Err(error(format!("{part:?} ends without an interval")));
            }
        }
        Ok(set)
    }

    fn insert_interval(&mut self, source: GtidSource, a: u64, b: u64) {
        let v = self.sources.entry(source).or_default();
        v.push((a, b));
        normalize(v);
    }

    /// Adds one GTID (`uuid[:tag]:gno`).
    pub fn add(&mut self, gtid: &str) -> Result<(), GtidParseError> {
        let one = Self::parse(gtid)?;
        *self = self.union(&one);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Every GTID of either set.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (source, intervals) in &other.sources {
            let v = out.sources.entry(source.clone()).or_default();
            v.extend_from_slice(intervals);
            normalize(v);
        }
        out
    }

    /// The GTIDs of `self` that are not in `other`.
    pub fn subtract(&self, other: &Self) -> Self {
        let mut out = Self::default();
        for (source, intervals) in &self.sources {
            let rest = match other.sources.get(source) {
                Some(theirs) => subtract_intervals(intervals, theirs),
                None => intervals.clone(),
            };
            if !rest.is_empty() {
                out.sources.insert(source.clone(), rest);
            }
        }
        out
    }

    /// Whether every GTID of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Self) -> bool {
        self.subtract(other).is_empty()
    }

    /// Only the transactions whose source UUID `keep` accepts (tags do not
    /// matter, as in Debezium's `gtid.source.*` filters).
    pub fn retain_sources(&self, keep: impl Fn(&str) -> bool) -> Self {
        Self {
            sources: self
                .sources
                .iter()
                .filter(|(source, _)| keep(&source.uuid))
                .map(|(s, v)| (s.clone(), v.clone()))
                .collect(),
        }
    }

    /// Whether the set holds GTID `uuid[:tag]:gno`.
    pub fn contains(&self, source: &GtidSource, gno: u64) -> bool {
        self.sources
            .get(source)
            .is_some_and(|v| v.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    /// The `Sid` blocks of `COM_BINLOG_DUMP_GTID` (intervals end-exclusive
    /// on the wire). A tagged source makes mysql_common send the tagged
    /// format, which only MySQL 8.4+ reads; such a set only exists there.
    pub fn to_sids(&self) -> Vec<Sid<'static>> {
        self.sources
            .iter()
            .map(|(source, intervals)| {
                let mut sid = Sid::new(uuid_bytes(&source.uuid)).with_intervals(
                    intervals
                        .iter()
                        .map(|&(a, b)| GnoInterval::new(a, b.saturating_add(1)))
                        .collect(),
                );
                if let Some(tag) = source.tag.as_ref().and_then(|t| Tag::new(t.clone()).ok()) {
                    sid = sid.with_tag(tag);
                }
                sid
            })
            .collect()
    }
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last_uuid: Option<&str> = None;
        for (source, intervals) in &self.sources {
            if last_uuid != Some(source.uuid.as_str()) {
                if last_uuid.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(&source.uuid)?;
                last_uuid = Some(&source.uuid);
            }
            if let Some(tag) = &source.tag {
                write!(f, ":{tag}")?;
            }
            for &(a, b) in intervals {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

/// A MariaDB GTID position: per replication domain, the last GTID
/// `(server_id, seq)`. Displays as MariaDB writes it (`0-1-41,1-2-7`,
/// domains in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaDbPosition(pub BTreeMap<u32, (u32, u64)>);

impl MariaDbPosition {
    /// Strict: every part must be `domain-server-seq` (`GtidSet::parse`
    /// skips what it cannot read; a position sent to a server must not).
    pub fn parse(text: &str) -> Result<Self, GtidParseError> {
        let err = |reason: String| GtidParseError {
            text: text.to_owned(),
            reason,
        };
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let numbers: Vec<&str> = part.split('-').collect();
            let [domain, server, seq] = numbers[..] else {
                return Err(err(format!("{part:?} is not domain-server-seq")));
            };
            let (Ok(domain), Ok(server), Ok(seq)) = (domain.parse(), server.parse(), seq.parse())
            else {
                return Err(err(format!("{part:?} is not domain-server-seq")));
            };
            if map.insert(domain, (server, seq)).is_some() {
                return Err(err(format!("domain {domain} appears twice")));
            }
        }
        Ok(Self(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The domains where `self` is ahead of `server` (or that `server` lacks
    /// entirely): transactions the connector read that the server has not.
    pub fn ahead_of(&self, server: &Self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(domain, (_, seq))| server.0.get(domain).is_none_or(|(_, have)| have < seq))
            .map(|(domain, (id, seq))| format!("{domain}-{id}-{seq}"))
            .collect()
    }

    /// The transactions up to `purged` (the position before the server's
    /// oldest binlog file) that `self` has not read: per domain, the range
    /// of sequence numbers lost.
    pub fn unread_in(&self, purged: &Self) -> Vec<String> {
        purged
            .0
            .iter()
            .filter_map(|(domain, (id, last))| {
                let read = self.0.get(domain).map_or(0, |(_, seq)| *seq);
                (read < *last).then(|| {
                    if read + 1 == *last {
                        format!("{domain}-{id}-{last}")
                    } else {
                        format!("domain {domain} seq {}..={last}", read + 1)
                    }
                })
            })
            .collect()
    }
}

impl fmt::Display for MariaDbPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (domain, (server, seq))) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{domain}-{server}-{seq}")?;
        }
        Ok(())
    }
}

/// Committed GTIDs as the offset's `gtids` field records them, per flavour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GtidSet {
    #[default]
    Empty,
    /// domain -> (server_id, seq): MariaDB's `gtid_binlog_pos` form.
    MariaDb(BTreeMap<u32, (u32, u64)>),
    MySql(MySqlGtidSet),
}

impl GtidSet {
    /// Reads a stored set; unreadable MySQL text counts as no set, which
    /// makes the connector resume by file and position as before.
    pub fn parse(text: &str, flavor: Flavor) -> Self {
        let text = text.trim();
        if text.is_empty() {
            return Self::Empty;
        }
        match flavor {
            Flavor::MariaDb => {
                let mut map = BTreeMap::new();
                for part in text.split(',') {
                    let mut it = part.trim().split('-').map(|n| n.parse::<u64>());
                    if let (Some(Ok(d)), Some(Ok(s)), Some(Ok(n))) =
                        (it.next(), it.next(), it.next())
                    {
                        map.insert(d as u32, (s as u32, n));
                    }
                }
                Self::MariaDb(map)
            }
            Flavor::MySql => match MySqlGtidSet::parse(text) {
                Ok(set) => Self::MySql(set),
                Err(error) => {
                    tracing::warn!(%error, "ignoring an unreadable GTID set");
                    Self::Empty
                }
            },
        }
    }

    /// Records one committed GTID (`d-s-n` or `uuid[:tag]:gno`).
    pub fn add(&mut self, gtid: &str, flavor: Flavor) {
        match flavor {
            Flavor::MariaDb => {
                if let Self::MariaDb(one) = Self::parse(gtid, Flavor::MariaDb) {
                    match self {
                        Self::MariaDb(mine) => mine.extend(one),
                        _ => *self = Self::MariaDb(one),
                    }
                }
            }
            Flavor::MySql => {
                if !matches!(self, Self::MySql(_)) {
                    *self = Self::MySql(MySqlGtidSet::default());
                }
                if let Self::MySql(set) = self {
                    if let Err(error) = set.add(gtid) {
                        tracing::warn!(%error, "GTID event with an unreadable GTID");
                    }
                }
            }
        }
    }

    pub fn to_text(&self) -> Option<String> {
        match self {
            Self::Empty => None,
            Self::MariaDb(m) => Some(
                m.iter()
                    .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Self::MySql(set) if set.is_empty() => None,
            Self::MySql(set) => Some(set.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "83574839-ec64-11f1-9ef5-02fc00000001";

    fn set(text: &str) -> MySqlGtidSet {
        MySqlGtidSet::parse(text).unwrap()
    }

    #[test]
    fn mariadb_positions_parse_strictly_and_compare_per_domain() {
        let p = |t: &str| MariaDbPosition::parse(t).unwrap();
        assert_eq!(p(" 1-2-7,0-1-41 ").to_string(), "0-1-41,1-2-7");
        assert!(p("").is_empty());
        for bad in ["0-1", "0-1-x", "0-1-2-3", "0-1-5,0-2-6", "x-1-1"] {
            assert!(MariaDbPosition::parse(bad).is_err(), "{bad}");
        }
        let stored = p("0-1-41,1-2-7");
        // Behind in domain 1, lacking domain 1 altogether, or up to date.
        assert_eq!(stored.ahead_of(&p("0-1-50,1-2-6")), vec!["1-2-7"]);
        assert_eq!(stored.ahead_of(&p("0-3-41")), vec!["1-2-7"]);
        assert!(stored.ahead_of(&p("0-3-90,1-2-7,2-5-1")).is_empty());
        // Purged up to 0-1-45: 42..=45 unread; domain 2 never read: 1..=3.
        assert_eq!(
            stored.unread_in(&p("0-1-45,1-2-7,2-5-3")),
            vec!["domain 0 seq 42..=45", "domain 2 seq 1..=3"]
        );
        assert_eq!(stored.unread_in(&p("0-1-42")), vec!["0-1-42"]);
        assert!(stored.unread_in(&p("0-1-41,1-2-3")).is_empty());
    }

    #[test]
    fn canonical_text_round_trips() {
        // As MySQL 9.7 prints @@gtid_executed (newline after each comma).
        let text = format!("{U1}:1-5:7:aa:1-3:tag_b:1,\n{U2}:1-100");
        let s = set(&text);
        assert_eq!(s.to_string(), text.replace('\n', ""));
        assert_eq!(set(&s.to_string()), s);
    }

    #[test]
    fn parse_normalizes() {
        // Upper case, one entry per tag, unsorted and overlapping intervals.
        let s = set(&format!(
            "{},{U1}:AA:3,{U1}:9:1-4:5",
            format!("{U1}:aa:1-2").to_uppercase()
        ));
        assert_eq!(s.to_string(), format!("{U1}:1-5:9:aa:1-3"));
        assert_eq!(set(""), MySqlGtidSet::default());
        assert_eq!(set(" \n"), MySqlGtidSet::default());
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "nonsense",
            U1,
            &format!("{U1}:0"),
            &format!("{U1}:5-3"),
            &format!("{U1}:1-x"),
            &format!("{U1}:Bad-Tag:1"),
            &format!("{U1}:1:tag"),
            "3e11fa47-71ca-11e1-9e33:1",
        ] {
            assert!(MySqlGtidSet::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn add_union_subtract_subset() {
        let mut s = set(&format!("{U1}:1-5:7"));
        s.add(&format!("{U1}:6")).unwrap();
        s.add(&format!("{U1}:9")).unwrap();
        s.add(&format!("{U1}:tag:1")).unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-7:9:tag:1"));
        assert!(s.add("not a gtid").is_err());

        let a = set(&format!("{U1}:1-10,{U2}:1-3"));
        let b = set(&format!("{U1}:4-6:20,{U2}:4"));
        assert_eq!(a.union(&b).to_string(), format!("{U1}:1-10:20,{U2}:1-4"));
        assert_eq!(
            a.subtract(&b).to_string(),
            format!("{U1}:1-3:7-10,{U2}:1-3")
        );
        assert_eq!(b.subtract(&a).to_string(), format!("{U1}:20,{U2}:4"));
        assert_eq!(
            set(&format!("{U1}:1-100")).subtract(&set(&format!("{U1}:1-3:10-20:50-100"))),
            set(&format!("{U1}:4-9:21-49"))
        );
        assert!(set(&format!("{U1}:2-3")).is_subset_of(&a));
        assert!(!b.is_subset_of(&a));
        assert!(MySqlGtidSet::default().is_subset_of(&MySqlGtidSet::default()));
        // A tag is a source of its own.
        assert!(!set(&format!("{U1}:t:1")).is_subset_of(&set(&format!("{U1}:1"))));
        assert!(a.contains(
            &GtidSource {
                uuid: U2.into(),
                tag: None
            },
            3
        ));
    }

    #[test]
    fn filter_by_source_uuid() {
        let s = set(&format!("{U1}:1-5:t:1,{U2}:1-3"));
        assert_eq!(
            s.retain_sources(|u| u == U1).to_string(),
            format!("{U1}:1-5:t:1")
        );
        assert!(s.retain_sources(|_| false).is_empty());
    }

    #[test]
    fn sids_for_the_dump_request() {
        let s = set(&format!("{U1}:1-5:7:aa:2"));
        let sids = s.to_sids();
        // mysql_common prints a Sid in MySQL's form, end-exclusive intervals
        // converted back to inclusive ones.
        let printed: Vec<String> = sids.iter().map(ToString::to_string).collect();
        assert_eq!(printed, [format!("{U1}:1-5:7"), format!("{U1}:aa:2")]);
        assert_eq!(sids[0].intervals()[0].end(), 6);
        assert_eq!(sids[0].uuid()[0], 0x3e);
        assert_eq!(sids[0].uuid()[15], 0x62);
    }

    #[test]
    fn offset_sets_per_flavour() {
        let mut s = GtidSet::parse("0-1-5,1-2-9", Flavor::MariaDb);
        s.add("0-1-6", Flavor::MariaDb);
        assert_eq!(s.to_text().as_deref(), Some("0-1-6,1-2-9"));

        let mut s = GtidSet::parse("", Flavor::MySql);
        assert_eq!(s.to_text(), None);
        s.add(&format!("{U1}:tag:1"), Flavor::MySql);
        s.add(&format!("{U1}:1"), Flavor::MySql);
        assert_eq!(s.to_text().unwrap(), format!("{U1}:1:tag:1"));
        assert_eq!(GtidSet::parse("garbage", Flavor::MySql), GtidSet::Empty);
    }
}
