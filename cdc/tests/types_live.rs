//! Live (needs the stack): a table covering the type matrix is filled, then read
//! twice: by a snapshot SELECT (`row_from_snapshot`, binary protocol, UTC session)
//! and from the binlog events of the inserts (`row_from_binlog`). Both must give
//! identical cells and identical encoded datums. Once per source server
//! (`mariadb::*`, `mysql::*`): MySQL logs JSON in its binary encoding,
//! MariaDB as the text of a LONGTEXT, and both must decode to the text the
//! snapshot reads.

mod stack_support;
mod types_support;

use std::time::Duration;

use cdc::rows::{decode_rows, row_from_binlog, row_from_snapshot};
use cdc::schema::load_table_schema;
use debezium_avro::Cell;
use debezium_avro::{
    BigintUnsigned, ConverterConfig, DecimalHandling, Op, SnapshotMarker, SourceInfo, TableCodec,
    TimePrecision,
};
use futures::StreamExt;
use mysql_async::binlog::events::EventData;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Row};
use pipeline::testing::Flavour;

per_flavour!(
    snapshot_and_binlog_give_identical_cells,
    shop_tables_from_information_schema_match_the_demo_schemas,
    spatial_and_vector_columns_read_alike_in_both_phases,
);

const DDL: &str = "CREATE TABLE m (
    id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
    f FLOAT, d DOUBLE, dc DECIMAL(30,3), c CHAR(5), vc VARCHAR(20) CHARACTER SET latin1, t TEXT,
    bn BINARY(4), vb VARBINARY(8), bl BLOB, js JSON, en ENUM('a','b','c'), st SET('x','y','z'),
    b1 BIT(1), b12 BIT(12), yr YEAR, dt DATE, tm TIME(6), dtm DATETIME(3), dtm6 DATETIME(6),
    ts TIMESTAMP(3) NULL, ts0 TIMESTAMP NULL, flag BOOLEAN DEFAULT FALSE)";

const INSERTS: &str = "INSERT INTO m VALUES
    (1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
     9223372036854775807, 18446744073709551615, 16777217, 1.0e300, 123456789012345678901234567.891,
     'héllo', 'café€', 'text ✓', x'01020000', x'ff00', x'000102', '{\"a\": [1, 2.5, null]}',
     'c', 'x,z', b'1', b'101010111100', 2155, '9999-12-31', '-12:34:56.789', '2024-02-29 23:59:59.123',
     '1000-01-01 00:00:00.000001', '2038-01-19 03:14:07.999', '1970-01-01 00:00:01', TRUE),
    (2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0,
     -9223372036854775808, 0, -1.5, -0.1, -0.001, '', '', '', x'00000000', '', '', '[]',
     'a', '', b'0', b'0', 1901, '1000-01-01', '838:59:59', '1000-01-01 00:00:00',
     '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01.000', '2000-01-01 00:00:00', FALSE),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c', x'', x'', x'', '{}', 'b', 'y', b'0', b'1',
     0, '0000-00-00', '00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00',
     '0000-00-00 00:00:00', '0000-00-00 00:00:00', NULL)";

fn cfg() -> ConverterConfig {
    ConverterConfig {
        topic_prefix: "mysql".into(),
        decimal_handling: DecimalHandling::Precise,
        time_precision: TimePrecision::AdaptiveTimeMicroseconds,
        bigint_unsigned: BigintUnsigned::Precise,
        binary_handling: Default::default(),
        connector_version: "3.6.3.Final".into(),
        excluded_columns: Default::default(),
        column_mappers: Default::default(),
        message_key_columns: Default::default(),
        boolean_converters: Default::default(),
    }
}

fn datum(codec: &TableCodec, row: &[Cell]) -> Vec<u8> {
    let source = SourceInfo {
        server_id: 1,
        file: "f".into(),
        pos: 4,
        row: 0,
        gtid: None,
        ts_ms: 0,
        snapshot: SnapshotMarker::False,
        thread: None,
        query: None,
    };
    let mut out = Vec::new();
    let encoded = codec
        .encode_envelope(None, Some(row), &source, Op::Create, 0, &mut out)
        .expect("encode");
    assert!(encoded.replaced.is_empty(), "{:?}", encoded.replaced);
    assert!(codec
        .encode_key(row, &mut out)
        .expect("key")
        .replaced
        .is_empty());
    out
}

async fn snapshot_and_binlog_give_identical_cells(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = stack.fresh_mysql_database().await;
    let url = stack.mysql_url(Some(&db));
    let mut conn = Conn::from_url(url.as_str()).await.expect("connect");
    conn.query_drop(DDL).await.expect("create table");
    let (file, pos) = stack_support::binlog_status(&mut conn, &stack).await;
    // Zero dates need a permissive sql_mode.
    conn.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    conn.query_drop(INSERTS).await.expect("insert");

    let table = load_table_schema(&mut conn, &db, "m")
        .await
        .expect("schema")
        .expect("table exists");
    // Snapshot as the connector's session reads it (utf8mb4 results: the latin1
    // column arrives converted and is turned back into latin1 bytes).
    let rows: Vec<Row> = conn
        .exec("SELECT * FROM m ORDER BY id", ())
        .await
        .expect("select");
    let snapshot: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|r| row_from_snapshot(r, &table).expect("snapshot row"))
        .collect();
    assert_eq!(snapshot.len(), 4);
    // The text protocol must agree with the binary one on everything but FLOAT
    // (MariaDB prints FLOAT with 6 digits).
    let text_rows: Vec<Row> = conn
        .query("SELECT * FROM m ORDER BY id")
        .await
        .expect("select");
    for (t, b) in text_rows.into_iter().zip(&snapshot) {
        let t = row_from_snapshot(t, &table).expect("text row");
        for (i, (x, y)) in t.iter().zip(b).enumerate() {
            if table.columns[i].data_type != "float" {
                assert_eq!(
                    x, y,
                    "text vs binary protocol, column {}",
                    table.columns[i].name
                );
            }
        }
    }
    conn.disconnect().await.ok();

    let server_id = 100_000 + (std::process::id() % 100_000);
    let bconn = Conn::from_url(url.as_str()).await.expect("connect");
    let mut stream = bconn
        .get_binlog_stream(
            BinlogStreamRequest::new(server_id)
                .with_filename(file.as_bytes())
                .with_pos(pos),
        )
        .await
        .expect("binlog stream");
    let mut binlog: Vec<Vec<Cell>> = Vec::new();
    let read = async {
        while let Some(event) = stream.next().await {
            let event = event.expect("binlog event");
            match event.read_data() {
                Ok(Some(EventData::RowsEvent(rows))) => {
                    let tme = stream.get_tme(rows.table_id()).expect("table map");
                    if tme.database_name() != db.as_str() {
                        continue;
                    }
                    assert!(
                        cdc::schema::matches_table_map(&table, tme),
                        "binlog schema differs"
                    );
                    // Streaming's own parse (`decode_rows`) must give the same cells.
                    let fast = decode_rows(&rows, tme, &table, 0).expect("decode_rows");
                    let mut slow = Vec::new();
                    for pair in rows.rows(tme) {
                        let (_, after) = pair.expect("row");
                        slow.push(
                            row_from_binlog(after.expect("after image"), &table)
                                .expect("binlog row"),
                        );
                    }
                    let fast: Vec<_> = fast.into_iter().map(|(_, after)| after).collect();
                    let expected: Vec<_> = slow.iter().cloned().map(Some).collect();
                    assert_eq!(fast, expected, "decode_rows differs from mysql_common");
                    binlog.extend(slow);
                }
                Ok(Some(EventData::XidEvent(_))) if !binlog.is_empty() => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the inserts' binlog events did not arrive within 60 s");
    binlog.sort_by_key(|r| match r[0] {
        Cell::Int(i) => i,
        _ => 0,
    });

    let codec = TableCodec::new(&table, &cfg()).expect("codec");
    assert_eq!(binlog.len(), snapshot.len());
    // Where the phases differ as Debezium's do. A snapshot TIMESTAMP is
    // printed with its fraction as needed, a streamed one with the column's
    // fsp digits (the same instant), and an unsigned TINYINT is the other
    // integer variant (`rows::as_streamed` says both); the zero YEAR is 2000
    // in the snapshot (Debezium's two-digit-year adjuster) and 1900 streamed
    // (binlog byte + 1900).
    let snapshot_ts = snapshot[0][30].clone();
    let snapshot: Vec<Vec<Cell>> = snapshot
        .iter()
        .map(|row| cdc::rows::as_streamed(row, &table))
        .collect();
    for (b, s) in binlog.iter_mut().zip(&snapshot) {
        let yr = table.columns.iter().position(|c| c.name == "yr").unwrap();
        if s[yr] == Cell::Int(2000) {
            assert_eq!(b[yr], Cell::Int(1900), "binlog zero YEAR");
            b[yr] = s[yr].clone();
        }
        // JSON: the snapshot has the server's text, a streamed value (MySQL's
        // binary JSON) Debezium's compact printing; the same document.
        for (i, (x, y)) in b.clone().iter().zip(s).enumerate() {
            if let (Cell::Json(streamed), Cell::Json(read)) = (x, y) {
                let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
                assert_eq!(parse(streamed), parse(read), "JSON document of column {i}");
                b[i] = y.clone();
            }
        }
        for (i, (x, y)) in b.iter().zip(s).enumerate() {
            assert_eq!(x, y, "binlog vs snapshot, column {}", table.columns[i].name);
        }
        assert_eq!(datum(&codec, b), datum(&codec, s));
    }
    assert_eq!(snapshot[3][25], Cell::Int(2000), "the zero YEAR's row");
    // Spot checks that the values are the ones inserted.
    assert_eq!(snapshot[0][10], Cell::UInt(u64::MAX));
    assert_eq!(
        snapshot[0][13],
        Cell::Decimal("123456789012345678901234567.891".into())
    );
    assert_eq!(snapshot[0][21], Cell::EnumIndex(3));
    assert_eq!(snapshot[0][22], Cell::SetBits(0b101));
    assert_eq!(snapshot[0][24], Cell::Bits(vec![0x0a, 0xbc]));
    assert_eq!(
        snapshot_ts,
        Cell::SnapshotTimestamp {
            secs: 2_147_483_647,
            micros: 999_000
        }
    );
    // JSON: MySQL stores and logs it binary (decoded to MySQL's own text
    // form), MariaDB as LONGTEXT with a JSON_VALID check (the text as written).
    match flavour {
        Flavour::MySql => {
            assert_eq!(table.columns[20].data_type, "json");
            assert_eq!(
                snapshot[0][20],
                Cell::Json(r#"{"a": [1, 2.5, null]}"#.into())
            );
        }
        Flavour::MariaDb => assert_eq!(table.columns[20].data_type, "longtext"),
    }
    assert_eq!(snapshot[2][1], Cell::Null);
    assert_eq!(snapshot[3][26], Cell::ZeroDate);
    assert_eq!(snapshot[3][31], Cell::ZeroDate);
}

/// The shop migration's tables, read back from information_schema (MariaDB quotes
/// and spells defaults its own way), give exactly the demo schemas of
/// `types_demo_schema` (Debezium's, derived from the contract).
async fn shop_tables_from_information_schema_match_the_demo_schemas(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = stack.fresh_mysql_database().await;
    let mut conn = Conn::from_url(stack.mysql_url(Some(&db)).as_str())
        .await
        .expect("connect");
    let ddl_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations/mysql/V2__shop_tables.sql");
    let ddl = std::fs::read_to_string(&ddl_path).expect("read the shop migration");
    let ddl: String = ddl
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in ddl.split(';').filter(|s| !s.trim().is_empty()) {
        conn.query_drop(statement.replace("shop.", &format!("`{db}`.")))
            .await
            .expect("create a shop table");
    }
    for mut expected in types_support::demo_tables() {
        expected.database.clone_from(&db);
        let loaded = load_table_schema(&mut conn, &db, &expected.table)
            .await
            .expect("schema")
            .expect("table exists");
        for (l, e) in loaded.columns.iter().zip(&expected.columns) {
            assert_eq!(
                (&l.name, &l.data_type, l.unsigned, l.nullable, &l.default),
                (&e.name, &e.data_type, e.unsigned, e.nullable, &e.default),
                "{}.{}",
                expected.table,
                e.name
            );
        }
        assert_eq!(loaded.primary_key, expected.primary_key);
        let cfg = types_support::demo_cfg();
        let got = TableCodec::new(&loaded, &cfg).expect("codec");
        let want = TableCodec::new(&expected, &cfg).expect("codec");
        assert_eq!(got.value_schema_json, want.value_schema_json);
        assert_eq!(got.key_schema_json, want.key_schema_json);
    }
    let tables = cdc::schema::list_tables(&mut conn)
        .await
        .expect("list tables");
    for t in ["items", "purchases", "users"] {
        assert!(
            tables.contains(&(db.clone(), t.to_owned())),
            "{t} not listed"
        );
    }
    assert!(tables
        .iter()
        .all(|(d, _)| d != "mysql" && d != "information_schema"));
    conn.disconnect().await.ok();
}

/// Spatial columns (both servers) and MySQL 9's VECTOR: the snapshot (both
/// protocols) and the binlog give the same bytes (MySQL's internal geometry:
/// SRID, then WKB; VECTOR's float32s), the TABLE_MAP's subtypes and
/// dimensions give information_schema's types, and the datums are equal.
async fn spatial_and_vector_columns_read_alike_in_both_phases(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let mysql = matches!(flavour, Flavour::MySql);
    let db = stack.fresh_mysql_database().await;
    let url = stack.mysql_url(Some(&db));
    let mut conn = Conn::from_url(url.as_str()).await.expect("connect");
    let (vector_column, vector_a, vector_b) = if mysql {
        (
            ", v VECTOR(3)",
            ", STRING_TO_VECTOR('[1.5, -2, 3.25]')",
            ", NULL",
        )
    } else {
        ("", "", "")
    };
    conn.query_drop(format!(
        "CREATE TABLE s (id INT PRIMARY KEY, g GEOMETRY, p POINT, ls LINESTRING, poly POLYGON,
         mp MULTIPOINT, gc GEOMETRYCOLLECTION, req POINT NOT NULL{vector_column})"
    ))
    .await
    .expect("create table");
    let (file, pos) = stack_support::binlog_status(&mut conn, &stack).await;
    conn.query_drop(format!(
        "INSERT INTO s VALUES
         (1, ST_GeomFromText('LINESTRING(0 0, 1 1)', 3857), POINT(1.5, -2),
          ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)'), ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 0))'),
          ST_GeomFromText('MULTIPOINT((1 1), (2 2))'),
          ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))'), POINT(0, 0){vector_a}),
         (2, NULL, NULL, NULL, NULL, NULL, NULL, POINT(3, 4){vector_b})"
    ))
    .await
    .expect("insert");
    let table = load_table_schema(&mut conn, &db, "s")
        .await
        .expect("schema")
        .expect("table exists");
    let types: Vec<&str> = table.columns.iter().map(|c| c.data_type.as_str()).collect();
    assert_eq!(
        &types[..6],
        [
            "int",
            "geometry",
            "point",
            "linestring",
            "polygon",
            "multipoint"
        ]
    );
    let binary: Vec<Row> = conn
        .exec("SELECT * FROM s ORDER BY id", ())
        .await
        .expect("select");
    let text: Vec<Row> = conn
        .query("SELECT * FROM s ORDER BY id")
        .await
        .expect("select");
    let snapshot: Vec<Vec<Cell>> = binary
        .into_iter()
        .map(|r| row_from_snapshot(r, &table).expect("snapshot row"))
        .collect();
    for (t, b) in text.into_iter().zip(&snapshot) {
        assert_eq!(
            &row_from_snapshot(t, &table).expect("text row"),
            b,
            "text vs binary protocol"
        );
    }
    conn.disconnect().await.ok();

    let server_id = 100_000 + (std::process::id() % 100_000) + 7;
    let bconn = Conn::from_url(url.as_str()).await.expect("connect");
    let mut stream = bconn
        .get_binlog_stream(
            BinlogStreamRequest::new(server_id)
                .with_filename(file.as_bytes())
                .with_pos(pos),
        )
        .await
        .expect("binlog stream");
    let mut binlog: Vec<Vec<Cell>> = Vec::new();
    let read = async {
        while let Some(event) = stream.next().await {
            let event = event.expect("binlog event");
            if let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() {
                let tme = stream.get_tme(rows.table_id()).expect("table map");
                if tme.database_name() != db.as_str() {
                    continue;
                }
                // The TABLE_MAP alone names the same types (its geometry
                // subtypes and VECTOR dimensions); with the current schema
                // beside it, in the server's spelling.
                let mapped = cdc::schema::from_table_map(tme, None).expect("from table map");
                let beside =
                    cdc::schema::from_table_map(tme, Some(&table)).expect("from table map");
                for ((m, b), c) in mapped
                    .columns
                    .iter()
                    .zip(&beside.columns)
                    .zip(&table.columns)
                {
                    // MariaDB's information_schema spells it geometrycollection.
                    if !(c.data_type == "geometrycollection" && m.data_type == "geomcollection") {
                        assert_eq!(m.data_type, c.data_type, "column {}", c.name);
                    }
                    assert_eq!(b.data_type, c.data_type, "column {}", c.name);
                    if c.data_type == "vector" {
                        assert_eq!(m.column_type, c.column_type, "VECTOR dimensions");
                    }
                }
                let decoded = decode_rows(&rows, tme, &table, 0).expect("decode_rows");
                binlog.extend(
                    decoded
                        .into_iter()
                        .map(|(_, after)| after.expect("after image")),
                );
                if binlog.len() == 2 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the inserts' binlog events did not arrive within 60 s");
    assert_eq!(binlog, snapshot, "binlog vs snapshot");

    let codec = TableCodec::new(&table, &cfg()).expect("codec");
    for row in &snapshot {
        datum(&codec, row);
    }
    // MySQL's internal value: the SRID (little-endian), then the WKB.
    let Cell::Bytes(g) = &snapshot[0][1] else {
        panic!("geometry cell {:?}", snapshot[0][1]);
    };
    assert_eq!(&g[..4], &3857u32.to_le_bytes());
    let Cell::Bytes(p) = &snapshot[0][2] else {
        panic!("point cell {:?}", snapshot[0][2]);
    };
    assert_eq!(p.len(), 4 + 21);
    assert_eq!(&p[9..17], &1.5f64.to_le_bytes());
    if mysql {
        let floats: Vec<u8> = [1.5f32, -2.0, 3.25]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(snapshot[0][8], Cell::Bytes(floats));
        assert_eq!(table.columns[8].column_type, "vector(3)");
    }
}
