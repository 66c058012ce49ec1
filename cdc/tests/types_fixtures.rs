//! Recorded MySQL 8 binlogs (../shared/fixtures/mysql-binlogs, see its README):
//! every rows event is decoded with a schema built from its TABLE_MAP event
//! (`TableSchema::from_table_map`), encoded, and the datum decoded by apache-avro.
//! Skips with a printed reason when the folder is absent.
#![allow(clippy::print_stdout)]

mod types_support;

use std::path::PathBuf;

use apache_avro::types::Value;
use cdc::rows::row_from_binlog;
use debezium_avro::Cell;
use debezium_avro::TableSchema;
use debezium_avro::{
    BigintUnsigned, DecimalHandling, Op, SnapshotMarker, TableCodec, TimePrecision,
};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::EventData;
use mysql_common::binlog::BinlogFile;
use types_support::*;

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("MYSQL_BINLOG_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/mysql-binlogs")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: {} is absent", dir.display());
        None
    }
}

struct Decoded {
    table: TableSchema,
    rows: Vec<Vec<Cell>>,
    afters: Vec<Value>,
}

/// Decodes every row image of `file`; panics on any decode/encode error.
fn decode_file(name: &str) -> Option<Vec<Decoded>> {
    let path = fixtures()?.join(name);
    let file = std::io::BufReader::new(std::fs::File::open(&path).expect("open fixture"));
    let mut binlog = BinlogFile::new(BinlogVersion::Version4, file).expect("binlog header");
    let cfg = cfg(
        TimePrecision::AdaptiveTimeMicroseconds,
        DecimalHandling::Precise,
        BigintUnsigned::Long,
    );
    let mut out: Vec<Decoded> = Vec::new();
    while let Some(ev) = binlog.next() {
        let ev = ev.expect("event");
        let Ok(Some(EventData::RowsEvent(rows_event))) = ev.read_data() else {
            continue;
        };
        let tme = binlog
            .reader()
            .get_tme(rows_event.table_id())
            .expect("table map");
        let table = match cdc::schema::from_table_map(tme, None) {
            Ok(t) => t,
            Err(cdc::schema::SchemaError::NoFullMetadata { .. }) => {
                // MINIMAL metadata: name columns by position.
                let names = table(
                    "",
                    "",
                    (0..tme.columns_count())
                        .map(|i| col(&format!("c{i}"), ""))
                        .collect(),
                    vec![],
                );
                cdc::schema::from_table_map(tme, Some(&names)).expect("schema from TABLE_MAP")
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let codec = TableCodec::new(&table, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut decoded = Decoded {
            table: table.clone(),
            rows: Vec::new(),
            afters: Vec::new(),
        };
        // Streaming decodes with `decode_rows` (its own parse of the common
        // case): it must agree with mysql_common's row parser on every row.
        match cdc::rows::decode_rows(&rows_event, tme, &table, 0) {
            Ok(fast) => {
                let slow: Vec<_> = rows_event
                    .rows(tme)
                    .map(|pair| {
                        let (b, a) = pair.expect("row");
                        let image = |r: Option<_>| {
                            r.map(|r| row_from_binlog(r, &table).expect("both paths decode"))
                        };
                        (image(b), image(a))
                    })
                    .collect();
                assert_eq!(fast, slow, "{name}: decode_rows differs from mysql_common");
                // Streaming keeps each table map's layout: the same cells.
                let layout = cdc::rows::ColumnLayout::of(tme).expect("layout of a decodable map");
                let kept = cdc::rows::decode_rows_in(&rows_event, tme, Some(&layout), &table, 0)
                    .expect("decode with the kept layout");
                assert_eq!(kept, fast, "{name}: a kept layout decodes differently");
            }
            Err(e) => println!("{name}: decode_rows rejected: {e}"),
        }
        for (row_idx, pair) in rows_event.rows(tme).enumerate() {
            let (before, after) = pair.expect("row");
            // Partial JSON updates and partial row images (this file also records
            // binlog_row_image=MINIMAL) must be rejected clearly, never mis-decoded.
            let decode_image = |r: Option<_>| match r.map(|r| row_from_binlog(r, &table)) {
                None => Ok(None),
                Some(Ok(cells)) => Ok(Some(cells)),
                Some(Err(
                    e @ (cdc::rows::DecodeError::JsonDiff { .. }
                    | cdc::rows::DecodeError::ColumnCount { .. }),
                )) => Err(e),
                Some(Err(e)) => panic!("{name}: {e}"),
            };
            let (before, after) = match (decode_image(before), decode_image(after)) {
                (Ok(b), Ok(a)) => (b, a),
                (Err(e), _) | (_, Err(e)) => {
                    println!("{name}: rejected: {e}");
                    continue;
                }
            };
            let op = match (&before, &after) {
                (None, Some(_)) => Op::Create,
                (Some(_), Some(_)) => Op::Update,
                _ => Op::Delete,
            };
            let mut datum = Vec::new();
            let mut src = source(SnapshotMarker::False);
            src.row = row_idx as i32;
            let encoded = codec
                .encode_envelope(before.as_deref(), after.as_deref(), &src, op, 0, &mut datum)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(encoded.replaced.is_empty(), "{:?}", encoded.replaced);
            let env = decode(&codec.value_schema_json, &datum);
            if let Some(cells) = after.or(before) {
                let image = if op == Op::Delete { "before" } else { "after" };
                decoded.afters.push(un(field(&env, image)).clone());
                decoded.rows.push(cells);
            }
        }
        out.push(decoded);
    }
    Some(out)
}

fn all_cells(d: &[Decoded]) -> Vec<&Cell> {
    d.iter().flat_map(|x| x.rows.iter().flatten()).collect()
}

#[test]
fn json_binlog_decodes_to_valid_json_text() {
    let Some(d) = decode_file("json.binlog.000001") else {
        return;
    };
    let jsons: Vec<&String> = all_cells(&d)
        .into_iter()
        .filter_map(|c| if let Cell::Json(j) = c { Some(j) } else { None })
        .collect();
    assert!(!jsons.is_empty(), "no JSON values decoded");
    for j in jsons {
        serde_json::from_str::<serde_json::Value>(j).unwrap_or_else(|e| panic!("{e}: {j}"));
    }
}

#[test]
fn enum_and_set_binlog_decodes_to_labels() {
    let Some(d) = decode_file("mysql-enum-string-set.000001") else {
        return;
    };
    let mut checked = 0;
    for dec in &d {
        for (cells, after) in dec.rows.iter().zip(&dec.afters) {
            for (col, cell) in dec.table.columns.iter().zip(cells) {
                let got = un(field(after, &col.name));
                match cell {
                    Cell::EnumIndex(i) => {
                        let want = if *i == 0 {
                            String::new()
                        } else {
                            col.enum_values[*i as usize - 1].clone()
                        };
                        assert_eq!(got, &Value::String(want));
                        checked += 1;
                    }
                    Cell::SetBits(bits) => {
                        let want: Vec<&str> = col
                            .enum_values
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| bits & (1 << i) != 0)
                            .map(|(_, l)| l.as_str())
                            .collect();
                        assert_eq!(got, &Value::String(want.join(",")));
                        checked += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(checked > 0, "no ENUM/SET values in the fixture");
}

#[test]
fn bit_binlog_decodes_little_endian() {
    let Some(d) = decode_file("mysql_type_bit.000001") else {
        return;
    };
    let mut checked = 0;
    for dec in &d {
        for (cells, after) in dec.rows.iter().zip(&dec.afters) {
            for (col, cell) in dec.table.columns.iter().zip(cells) {
                if let Cell::Bits(be) = cell {
                    let got = un(field(after, &col.name));
                    if col.numeric_precision == Some(1) {
                        assert_eq!(got, &Value::Boolean(be.iter().any(|b| *b != 0)));
                    } else {
                        let le: Vec<u8> = be.iter().rev().copied().collect();
                        assert_eq!(got, &Value::Bytes(le));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0, "no BIT values in the fixture");
}

#[test]
fn time_binlog_keeps_hours_past_a_day() {
    let Some(d) = decode_file("time_issue.000001") else {
        return;
    };
    let times: Vec<&Cell> = all_cells(&d)
        .into_iter()
        .filter(|c| matches!(c, Cell::Time { .. }))
        .collect();
    assert!(!times.is_empty(), "no TIME values in the fixture");
    assert!(
        times
            .iter()
            .any(|t| matches!(t, Cell::Time { hours, .. } if *hours > 24)),
        "{times:?}"
    );
}

#[test]
fn invisible_columns_binlog_decodes() {
    let Some(d) = decode_file("binlog-invisible-columns.000001") else {
        return;
    };
    assert!(
        d.iter().map(|x| x.rows.len()).sum::<usize>() > 0,
        "no rows decoded"
    );
    for dec in &d {
        assert!(dec.table.columns.iter().all(|c| !c.name.is_empty()));
    }
}
