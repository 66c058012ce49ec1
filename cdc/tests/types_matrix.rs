//! Every MySQL column type through the codec, under every converter mode: the
//! datum is decoded by apache-avro against the generated schema and each field is
//! checked (signed/unsigned extremes, NULLs, zero dates, charsets, both time modes,
//! three decimal modes, both BIGINT UNSIGNED modes).

mod types_support;

use apache_avro::types::Value;
use debezium_avro::Cell;
use debezium_avro::{BigintUnsigned, ConverterConfig, DecimalHandling, TableCodec, TimePrecision};
use debezium_avro::{ColumnSchema, TableSchema};
use types_support::*;

fn matrix_table() -> TableSchema {
    let mut latin = col("vc_latin1", "varchar(20)");
    latin.charset = Some("latin1".into());
    let mut ascii = col("txt_ascii", "text");
    ascii.charset = Some("ascii".into());
    table(
        "db",
        "matrix",
        vec![
            not_null(col("id", "int(11)")),
            col("ti", "tinyint(4)"),
            col("tiu", "tinyint(3) unsigned"),
            col("si", "smallint(6)"),
            col("siu", "smallint(5) unsigned"),
            col("mi", "mediumint(9)"),
            col("miu", "mediumint(8) unsigned"),
            col("i", "int(11)"),
            col("iu", "int(10) unsigned"),
            col("bi", "bigint(20)"),
            col("biu", "bigint(20) unsigned"),
            col("f", "float"),
            col("d", "double"),
            col("dec", "decimal(10,3)"),
            col("c", "char(10)"),
            latin,
            ascii,
            col("bin", "binary(4)"),
            col("vb", "varbinary(10)"),
            col("blb", "blob"),
            col("js", "json"),
            col("en", "enum('a','b','c')"),
            col("st", "set('x','y','z')"),
            col("b1", "bit(1)"),
            col("b12", "bit(12)"),
            col("yr", "year(4)"),
            col("dt", "date"),
            col("tm", "time(6)"),
            col("dtm3", "datetime(3)"),
            col("dtm6", "datetime(6)"),
            col("ts0", "timestamp"),
            col("ts3", "timestamp(3)"),
            not_null(col("dt_nn", "date")),
            not_null(with_default(
                col("ts_nn", "timestamp"),
                debezium_avro::CURRENT_TIMESTAMP_DEFAULT,
            )),
        ],
        vec![0],
    )
}

fn max_row() -> Vec<Cell> {
    vec![
        Cell::Int(1),
        Cell::Int(127),
        Cell::UInt(255),
        Cell::Int(32767),
        Cell::UInt(65535),
        Cell::Int(8_388_607),
        Cell::UInt(16_777_215),
        Cell::Int(i32::MAX as i64),
        Cell::UInt(u32::MAX as u64),
        Cell::Int(i64::MAX),
        Cell::UInt(u64::MAX),
        Cell::Float(3.5),
        Cell::Double(1.0e300),
        Cell::Decimal("9999999.999".into()),
        Cell::Bytes("héllo ✓".as_bytes().to_vec()),
        Cell::Bytes(vec![b'c', b'a', b'f', 0xe9, 0x80]),
        Cell::Bytes(b"plain".to_vec()),
        Cell::Bytes(vec![1, 2, 0, 0]),
        Cell::Bytes(vec![0xff, 0x00]),
        Cell::Bytes(vec![0u8; 3]),
        Cell::Json(r#"{"a": [1, 2.5, null]}"#.into()),
        Cell::EnumIndex(3),
        Cell::SetBits(0b101),
        Cell::Bits(vec![1]),
        Cell::Bits(vec![0x0a, 0xbc]),
        Cell::Int(2155),
        Cell::Date {
            year: 9999,
            month: 12,
            day: 31,
        },
        Cell::Time {
            negative: false,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
        },
        Cell::DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 59,
            micros: 123_000,
        },
        Cell::DateTime {
            year: 1000,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 1,
        },
        Cell::TimestampUtc {
            secs: 2_147_483_647,
            micros: 0,
        },
        Cell::TimestampUtc {
            secs: 1_673_397_250,
            micros: 5_000,
        },
        Cell::Date {
            year: 1969,
            month: 12,
            day: 31,
        },
        Cell::TimestampUtc { secs: 1, micros: 0 },
    ]
}

fn min_row() -> Vec<Cell> {
    let mut r = max_row();
    r[1] = Cell::Int(-128);
    r[2] = Cell::UInt(0);
    r[3] = Cell::Int(-32768);
    r[5] = Cell::Int(-8_388_608);
    r[7] = Cell::Int(i32::MIN as i64);
    r[9] = Cell::Int(i64::MIN);
    r[10] = Cell::UInt(0);
    r[13] = Cell::Decimal("-9999999.999".into());
    r[21] = Cell::EnumIndex(0);
    r[22] = Cell::SetBits(0);
    r[23] = Cell::Bits(vec![0]);
    r[27] = Cell::Time {
        negative: true,
        hours: 838,
        minutes: 59,
        seconds: 59,
        micros: 0,
    };
    r
}

/// All NULL, zero dates where a zero date can be stored.
fn null_row() -> Vec<Cell> {
    let mut r = vec![Cell::Null; matrix_table().columns.len()];
    r[0] = Cell::Int(2);
    r[26] = Cell::ZeroDate;
    r[28] = Cell::ZeroDate;
    r[30] = Cell::ZeroDate;
    r[32] = Cell::ZeroDate;
    r[33] = Cell::ZeroDate;
    r
}

fn configs() -> Vec<ConverterConfig> {
    let mut v = Vec::new();
    for t in [
        TimePrecision::AdaptiveTimeMicroseconds,
        TimePrecision::Connect,
    ] {
        for d in [
            DecimalHandling::Precise,
            DecimalHandling::Double,
            DecimalHandling::String,
        ] {
            for b in [BigintUnsigned::Long, BigintUnsigned::Precise] {
                v.push(cfg(t, d, b));
            }
        }
    }
    v
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// Expected Avro value of column `c` holding `cell` (non-null) under `cfg`.
fn expected(cfg: &ConverterConfig, c: &ColumnSchema, cell: &Cell) -> Value {
    let connect = cfg.time_precision == TimePrecision::Connect;
    match (c.name.as_str(), cell) {
        ("biu", Cell::UInt(u)) if cfg.bigint_unsigned == BigintUnsigned::Precise => {
            decimal_value(*u as i128)
        }
        ("iu" | "bi" | "biu", Cell::UInt(u)) => Value::Long(*u as i64),
        ("bi", Cell::Int(i)) => Value::Long(*i),
        (_, Cell::Int(i)) if c.data_type != "bit" => Value::Int(*i as i32),
        (_, Cell::UInt(u)) => Value::Int(*u as i32),
        (_, Cell::Float(f)) => Value::Float(*f),
        (_, Cell::Double(d)) => Value::Double(*d),
        (_, Cell::Decimal(t)) => match cfg.decimal_handling {
            DecimalHandling::Precise => decimal_value(t.replace('.', "").parse().unwrap()),
            DecimalHandling::Double => Value::Double(t.parse().unwrap()),
            DecimalHandling::String => s(t),
        },
        ("c", _) => s("héllo ✓"),
        ("vc_latin1", _) => s("café€"),
        ("txt_ascii", _) => s("plain"),
        ("bin" | "vb" | "blb", Cell::Bytes(b)) => Value::Bytes(b.clone()),
        ("js", Cell::Json(j)) => s(j),
        ("en", Cell::EnumIndex(3)) => s("c"),
        ("en", Cell::EnumIndex(0)) => s(""),
        ("st", Cell::SetBits(5)) => s("x,z"),
        ("st", Cell::SetBits(0)) => s(""),
        ("b1", Cell::Bits(b)) => Value::Boolean(b[0] != 0),
        ("b12", _) => Value::Bytes(vec![0xbc, 0x0a]),
        ("dt", _) if connect => Value::Date(2_932_896),
        ("dt", _) => Value::Int(2_932_896),
        ("dt_nn", _) if connect => Value::Date(-1),
        ("dt_nn", _) => Value::Int(-1),
        ("tm", Cell::Time { negative, .. }) => {
            let us: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000;
            let us = if *negative { -us } else { us };
            if connect {
                Value::TimeMillis(86_399_999)
            } else {
                Value::Long(us)
            }
        }
        ("dtm3", _) => {
            let ms = 1_709_251_199_123;
            if connect {
                Value::TimestampMillis(ms)
            } else {
                Value::Long(ms)
            }
        }
        ("dtm6", _) => {
            let us: i64 = -30_610_224_000_000_000 + 1;
            if connect {
                Value::TimestampMillis(us.div_euclid(1000))
            } else {
                Value::Long(us)
            }
        }
        ("ts0", _) => s("2038-01-19T03:14:07Z"),
        ("ts3", _) => s("2023-01-11T00:34:10.005Z"),
        ("ts_nn", _) => s("1970-01-01T00:00:01Z"),
        (n, other) => panic!("no expectation for {n} = {other:?}"),
    }
}

fn check_row(codec: &TableCodec, cfg: &ConverterConfig, t: &TableSchema, row: &[Cell]) {
    let after = after_record(codec, row);
    for (c, cell) in t.columns.iter().zip(row) {
        let got = field(&after, &c.name);
        match cell {
            Cell::Null | Cell::ZeroDate if c.nullable => {
                assert_eq!(un(got), &Value::Null, "{} under {cfg:?}", c.name)
            }
            Cell::Null | Cell::ZeroDate => {
                // NOT NULL: Debezium's fallback (default, else epoch).
                let want = match c.name.as_str() {
                    "dt_nn" if cfg.time_precision == TimePrecision::Connect => Value::Date(0),
                    "dt_nn" => Value::Int(0),
                    "ts_nn" => s("1970-01-01T00:00:00Z"),
                    other => panic!("{other}"),
                };
                assert_eq!(got, &want, "{} under {cfg:?}", c.name);
            }
            cell => assert_eq!(un(got), &expected(cfg, c, cell), "{} under {cfg:?}", c.name),
        }
    }
}

#[test]
fn every_type_in_every_mode() {
    let t = matrix_table();
    for cfg in configs() {
        let codec = TableCodec::new(&t, &cfg).unwrap_or_else(|e| panic!("{e} under {cfg:?}"));
        let connect = cfg.time_precision == TimePrecision::Connect;
        for mut row in [max_row(), min_row(), null_row()] {
            if connect && matches!(row[27], Cell::Time { .. }) {
                // Connect's Time holds a time of day only: an out-of-day TIME
                // (838:59:59, -838:59:59) is written as null, the record still goes.
                let after = after_record(&codec, &row);
                assert_eq!(un(field(&after, "tm")), &Value::Null, "under {cfg:?}");
                row[27] = Cell::Time {
                    negative: false,
                    hours: 23,
                    minutes: 59,
                    seconds: 59,
                    micros: 999_999,
                };
            }
            check_row(&codec, &cfg, &t, &row);
        }
        let key = key_record(&codec, &max_row());
        assert_eq!(record_fields(&key), &[("id".to_string(), Value::Int(1))]);
    }
}

#[test]
fn schema_types_per_mode() {
    let t = matrix_table();
    let field_json = |cfg: &ConverterConfig, name: &str| -> serde_json::Value {
        let codec = TableCodec::new(&t, cfg).unwrap();
        let v: serde_json::Value = serde_json::from_str(&codec.value_schema_json).unwrap();
        let fields = v["fields"][0]["type"][1]["fields"]
            .as_array()
            .unwrap()
            .clone();
        fields.into_iter().find(|f| f["name"] == name).unwrap()
    };
    let adaptive = cfg(
        TimePrecision::AdaptiveTimeMicroseconds,
        DecimalHandling::Precise,
        BigintUnsigned::Long,
    );
    let connect = cfg(
        TimePrecision::Connect,
        DecimalHandling::String,
        BigintUnsigned::Precise,
    );
    let ty = |cfg: &ConverterConfig, name: &str| field_json(cfg, name)["type"][1].clone();
    assert_eq!(ty(&adaptive, "ti")["connect.type"], "int16");
    assert_eq!(ty(&adaptive, "tiu")["connect.type"], "int16");
    assert_eq!(ty(&adaptive, "si")["connect.type"], "int16");
    assert_eq!(ty(&adaptive, "siu"), "int");
    assert_eq!(ty(&adaptive, "iu"), "long");
    assert_eq!(ty(&adaptive, "dt")["connect.name"], "io.debezium.time.Date");
    assert_eq!(
        ty(&adaptive, "tm")["connect.name"],
        "io.debezium.time.MicroTime"
    );
    assert_eq!(
        ty(&adaptive, "dtm3")["connect.name"],
        "io.debezium.time.Timestamp"
    );
    assert_eq!(
        ty(&adaptive, "dtm6")["connect.name"],
        "io.debezium.time.MicroTimestamp"
    );
    assert_eq!(
        ty(&adaptive, "ts3")["connect.name"],
        "io.debezium.time.ZonedTimestamp"
    );
    assert_eq!(ty(&adaptive, "yr")["connect.name"], "io.debezium.time.Year");
    assert_eq!(ty(&adaptive, "js")["connect.name"], "io.debezium.data.Json");
    assert_eq!(
        ty(&adaptive, "en")["connect.parameters"]["allowed"],
        "a,b,c"
    );
    assert_eq!(
        ty(&adaptive, "st")["connect.name"],
        "io.debezium.data.EnumSet"
    );
    assert_eq!(ty(&adaptive, "b1"), "boolean");
    assert_eq!(ty(&adaptive, "b12")["connect.parameters"]["length"], "12");
    assert_eq!(ty(&connect, "dt")["logicalType"], "date");
    assert_eq!(ty(&connect, "tm")["logicalType"], "time-millis");
    assert_eq!(ty(&connect, "dtm6")["logicalType"], "timestamp-millis");
    assert_eq!(ty(&connect, "dec"), "string");
    assert_eq!(
        ty(&connect, "biu")["connect.parameters"]["connect.decimal.precision"],
        "20"
    );
    // NOT NULL TIMESTAMP DEFAULT CURRENT_TIMESTAMP: epoch default, no union.
    let ts_nn = field_json(&adaptive, "ts_nn");
    assert_eq!(ts_nn["default"], "1970-01-01T00:00:00Z");
    assert_eq!(ts_nn["type"]["connect.default"], "1970-01-01T00:00:00Z");
    assert!(field_json(&adaptive, "dt_nn").get("default").is_none());
}

#[test]
fn defaults_of_every_kind_are_typed() {
    let t = table(
        "db",
        "defaults",
        vec![
            with_default(col("n", "int(11)"), "-5"),
            with_default(col("b", "bit(1)"), "b'1'"),
            with_default(col("bits", "bit(9)"), "b'100000001'"),
            with_default(col("dec", "decimal(5,2)"), "1.5"),
            with_default(col("f", "double"), "2.5"),
            with_default(col("s", "varchar(5)"), "it's"),
            with_default(col("e", "enum('p','q')"), "q"),
            with_default(col("d", "date"), "2020-02-02"),
            with_default(col("z", "date"), "0000-00-00"),
            with_default(col("tm", "time"), "01:00:00"),
            with_default(col("ts", "timestamp"), "2020-01-01 00:00:00"),
            with_default(col("r", "int(11)"), "1.6"),
            with_default(col("bad", "date"), "not a date"),
        ],
        vec![],
    );
    let codec = TableCodec::new(
        &t,
        &cfg(
            TimePrecision::AdaptiveTimeMicroseconds,
            DecimalHandling::Precise,
            BigintUnsigned::Long,
        ),
    )
    .unwrap();
    assert!(codec.key_schema_json.is_none());
    let v: serde_json::Value = serde_json::from_str(&codec.value_schema_json).unwrap();
    let fields = v["fields"][0]["type"][1]["fields"].as_array().unwrap();
    let d = |i: usize| fields[i]["default"].clone();
    assert_eq!(d(0), -5);
    assert_eq!(d(1), true);
    assert_eq!(d(2), "\u{1}\u{1}");
    assert_eq!(d(3), "\u{0}\u{96}");
    assert_eq!(d(4), 2.5);
    assert_eq!(d(5), "it's");
    assert_eq!(d(6), "q");
    assert_eq!(d(7), 18294);
    // A zero-date default on a nullable column is dropped (optional, default null).
    assert_eq!(fields[8]["type"][0], "null");
    assert_eq!(d(8), serde_json::Value::Null);
    assert_eq!(d(9), 3_600_000_000_i64);
    assert_eq!(d(10), "2020-01-01T00:00:00Z");
    // Decimal-looking integer defaults round; unparsable defaults are dropped.
    assert_eq!(d(11), 2);
    assert_eq!(fields[12]["type"][0], "null");
    assert_eq!(d(12), serde_json::Value::Null);
    // With defaults the value branch comes first: check the datum layout decodes.
    let row = vec![Cell::Null; t.columns.len()];
    let after = after_record(&codec, &row);
    assert_eq!(field(&after, "n"), &Value::Union(1, Box::new(Value::Null)));
    assert_eq!(field(&after, "z"), &Value::Union(0, Box::new(Value::Null)));
    let mut out = Vec::new();
    assert!(!codec.encode_key(&row, &mut out).unwrap().written);
    assert!(out.is_empty());
}

#[test]
fn unsupported_charsets_and_bad_values_are_clear_errors() {
    let mut c = col("name", "varchar(10)");
    c.charset = Some("sjis".into());
    let t = table("db", "t", vec![c], vec![]);
    let err = TableCodec::new(&t, &demo_cfg()).unwrap_err().to_string();
    assert!(
        err.contains("db.t") && err.contains("name") && err.contains("sjis"),
        "{err}"
    );

    let t = table("db", "t", vec![col("n", "int(11)")], vec![]);
    let codec = TableCodec::new(&t, &demo_cfg()).unwrap();
    let mut out = Vec::new();
    let err = codec
        .encode_envelope(
            None,
            Some(&[Cell::Json("x".into())]),
            &source(debezium_avro::SnapshotMarker::False),
            debezium_avro::Op::Create,
            0,
            &mut out,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("db.t") && err.contains("column n"), "{err}");

    let mut c = col("u", "varchar(10)");
    c.charset = Some("utf8mb4".into());
    let t = table("db", "t", vec![c], vec![]);
    let codec = TableCodec::new(&t, &demo_cfg()).unwrap();
    let err = codec
        .encode_envelope(
            None,
            Some(&[Cell::Bytes(vec![0xff, 0xfe])]),
            &source(debezium_avro::SnapshotMarker::False),
            debezium_avro::Op::Create,
            0,
            &mut out,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("column u"), "{err}");
}
