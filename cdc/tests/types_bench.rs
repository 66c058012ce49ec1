//! Throughput of the data half (decode a binlog row image + encode key and
//! envelope) on the demo's `purchases` table. Prints figures, asserts nothing
//! about speed. Run: `cargo test -p cdc --release --test types_bench -- --ignored --nocapture`
#![allow(clippy::print_stdout)]

mod types_support;

use std::sync::Arc;
use std::time::Instant;

use cdc::rows::row_from_binlog;
use debezium_avro::{Op, SnapshotMarker, TableCodec};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_async::Value;
use mysql_common::packets::Column;
use types_support::*;

#[test]
#[ignore = "benchmark: run explicitly in release mode"]
fn purchases_events_per_second() {
    let purchases = demo_tables().remove(2);
    let codec = TableCodec::new(&purchases, &demo_cfg()).unwrap();
    let columns: Arc<[Column]> = (0..purchases.columns.len())
        .map(|_| Column::new(ColumnType::MYSQL_TYPE_LONGLONG))
        .collect::<Vec<_>>()
        .into();
    let values = |i: i64| {
        vec![
            Value::UInt(i as u64),
            Value::UInt(3290),
            Value::UInt(257),
            Value::Int(1),
            Value::Int(2),
            Value::Bytes(b"1234.50".to_vec()),
            Value::Int(0),
            Value::Bytes(b"1673397250".to_vec()),
            Value::Date(2023, 1, 11, 0, 34, 10, 0),
        ]
    };
    let n = 300_000;
    let src = source(SnapshotMarker::False);
    let mut key = Vec::with_capacity(64);
    let mut value = Vec::with_capacity(512);
    let mut bytes = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let row = BinlogRow::new(
            values(i)
                .into_iter()
                .map(|v| Some(BinlogValue::Value(v)))
                .collect(),
            columns.clone(),
        );
        let cells = row_from_binlog(row, &purchases).unwrap();
        key.clear();
        value.clear();
        assert!(codec
            .encode_key(&cells, &mut key)
            .unwrap()
            .replaced
            .is_empty());
        let encoded = codec
            .encode_envelope(None, Some(&cells), &src, Op::Create, 1, &mut value)
            .unwrap();
        assert!(encoded.replaced.is_empty(), "{:?}", encoded.replaced);
        bytes += key.len() + value.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "decode+encode: {n} events in {secs:.3} s = {:.0} events/s ({} bytes/event)",
        n as f64 / secs,
        bytes / n as usize
    );
    assert!(bytes > 0);
}
