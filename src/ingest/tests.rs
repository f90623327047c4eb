//! Decoder tests: each body format, type rules, and every bad-input case naming its place.

use super::*;
use crate::config::TableConfig;
use arrow::util::pretty::pretty_format_batches;
use proptest::prelude::*;

fn decode_str(format: Format, body: &str) -> Result<RecordBatch, IngestError> {
    decode(
        format,
        body.as_bytes(),
        Precision::Milliseconds,
        &TableSchema::default(),
    )
}

fn details(err: IngestError) -> Vec<LineError> {
    match err {
        IngestError::InvalidLines { details, .. } => details,
        other => panic!("expected line errors, got {other}"),
    }
}

#[test]
fn ndjson_infers_tags_fields_and_nulls() {
    let body = "{\"time\": 1000, \"host\": \"a\", \"usage\": 1.5}\n\n{\"time\": \"1970-01-01T00:00:02Z\", \"host\": \"b\", \"up\": true}\n";
    let batch = decode_str(Format::Ndjson, body).unwrap();
    let expected = [
        "+----------------------+------+-------+------+",
        "| time                 | host | usage | up   |",
        "+----------------------+------+-------+------+",
        "| 1970-01-01T00:00:01Z | a    | 1.5   |      |",
        "| 1970-01-01T00:00:02Z | b    |       | true |",
        "+----------------------+------+-------+------+",
    ];
    assert_eq!(
        pretty_format_batches(&[batch]).unwrap().to_string(),
        expected.join("\n")
    );
}

#[test]
fn json_array_and_csv_give_the_same_rows() {
    let json = decode_str(
        Format::Json,
        r#"[{"time": 5, "host": "a", "v": 1}, {"time": 6, "host": "b", "v": 2}]"#,
    )
    .unwrap();
    let csv = decode_str(Format::Csv, "time,host,v\n5,a,1\n6,b,2\n").unwrap();
    assert_eq!(
        pretty_format_batches(&[json]).unwrap().to_string(),
        pretty_format_batches(&[csv]).unwrap().to_string()
    );
}

#[test]
fn declared_types_are_enforced() {
    let mut table = TableConfig::default();
    table
        .fields
        .insert("count".into(), crate::config::DeclaredType::Integer);
    let schema = TableSchema::declared(&table);
    let ok = decode(
        Format::Ndjson,
        b"{\"time\":1,\"count\":3}",
        Precision::Seconds,
        &schema,
    )
    .unwrap();
    assert_eq!(
        ok.schema().field_with_name("count").unwrap().data_type(),
        &arrow::datatypes::DataType::Int64
    );
    let err = decode(
        Format::Ndjson,
        b"{\"time\":1,\"count\":3.5}",
        Precision::Seconds,
        &schema,
    )
    .unwrap_err();
    let d = details(err);
    assert_eq!(d[0].column.as_deref(), Some("count"));
}

#[test]
fn precision_applies_to_epochs() {
    let batch = decode(
        Format::Ndjson,
        b"{\"time\":2,\"v\":1}",
        Precision::Seconds,
        &TableSchema::default(),
    )
    .unwrap();
    let s = pretty_format_batches(&[batch]).unwrap().to_string();
    assert!(s.contains("1970-01-01T00:00:02Z"), "{s}");
}

#[test]
fn every_bad_line_is_reported_with_its_place() {
    let body = "{\"time\":1,\"v\":1}\n{\"time\":2,\"v\":\n{\"v\":3}\n{\"time\":\"noon\",\"v\":4}\n{\"time\":5,\"v\":\"x\"}\n{\"time\":6,\"v\":{\"a\":1}}\n";
    let d = details(decode_str(Format::Ndjson, body).unwrap_err());
    let lines: Vec<_> = d.iter().map(|e| (e.line, e.column.as_deref())).collect();
    assert_eq!(
        lines,
        [
            (2, None),
            (3, Some("time")),
            (4, Some("time")),
            (5, Some("v")),
            (6, Some("v"))
        ],
        "{d:#?}"
    );
    assert!(d[0].message.contains("column"), "{}", d[0].message);
    assert!(d[2].message.contains("noon"));
}

#[test]
fn ragged_csv_names_the_line() {
    let d = details(decode_str(Format::Csv, "time,host\n1,a\n2,b,extra\n3\n").unwrap_err());
    assert_eq!(d.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4]);
    assert!(d[0].message.contains("3 fields"), "{}", d[0].message);
}

#[test]
fn csv_without_time_header_is_rejected() {
    let d = details(decode_str(Format::Csv, "host,v\na,1\n").unwrap_err());
    assert_eq!(d[0].line, 1);
}

#[test]
fn empty_bodies_are_rejected() {
    assert!(matches!(
        decode_str(Format::Ndjson, "\n\n"),
        Err(IngestError::Empty)
    ));
    assert!(matches!(
        decode_str(Format::Json, "[]"),
        Err(IngestError::Empty)
    ));
}

#[test]
fn content_types_pick_formats() {
    assert_eq!(
        Format::from_content_type(Some("application/x-ndjson")).unwrap(),
        Format::Ndjson
    );
    assert_eq!(
        Format::from_content_type(Some("text/csv; charset=utf-8")).unwrap(),
        Format::Csv
    );
    assert_eq!(Format::from_content_type(None).unwrap(), Format::Json);
    assert!(Format::from_content_type(Some("application/xml")).is_err());
}

/// Valid bodies the mutation test starts from, one per format.
const SEEDS: [(Format, &str); 3] = [
    (
        Format::Ndjson,
        "{\"time\":1000,\"host\":\"a\",\"v\":1.5,\"up\":true}\n{\"time\":\"1970-01-01T00:00:02Z\",\"host\":\"b\",\"n\":3}\n",
    ),
    (
        Format::Csv,
        "time,host,v,up\n1000,a,1.5,true\n\"1970-01-01T00:00:02Z\",\"b,c\",-2e3,false\n",
    ),
    (
        Format::Json,
        "[{\"time\":1000,\"host\":\"a\",\"v\":1.5},{\"time\":2000,\"host\":null,\"v\":[1]}]",
    ),
];

/// The characters the body formats give meaning to.
const SIGNIFICANT: &[u8] = b"{}[]\",:\\\n\r0123456789.eE-+tfn ";

proptest! {
    // `PROPTEST_CASES` raises the case count for long runs outside CI (benches/fuzz.sh).

    // Valid bodies with a few damaged bytes: never a panic; a refusal names lines of the body.
    #[test]
    fn damaged_bodies_are_refused_by_line(
        seed in 0usize..3,
        edits in proptest::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 1..10),
    ) {
        let (format, text) = SEEDS[seed];
        let body = crate::damage::damage(text.as_bytes(), &edits, SIGNIFICANT);
        let lines = body.split(|b| *b == b'\n').count();
        match decode(format, &body, Precision::Nanoseconds, &TableSchema::default()) {
            Ok(batch) => prop_assert!(batch.num_rows() <= body.len()),
            Err(IngestError::InvalidLines { details, total }) => {
                prop_assert!(!details.is_empty() && total >= details.len());
                if format != Format::Json {
                    for d in &details {
                        prop_assert!(d.line >= 1 && d.line <= lines, "line {} of {}", d.line, lines);
                    }
                }
            }
            Err(_) => {}
        }
    }

    // Arbitrary bytes never panic the decoders; they either decode or report lines.
    #[test]
    fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        for format in [Format::Json, Format::Ndjson, Format::Csv] {
            let _ = decode(format, &body, Precision::Nanoseconds, &TableSchema::default());
        }
    }

    // Any set of well-formed rows comes back with the same values.
    #[test]
    fn ndjson_round_trips(rows in proptest::collection::vec((0i64..1_000_000_000, "[a-z]{1,6}", -1e9f64..1e9), 1..40)) {
        let body: String = rows
            .iter()
            .map(|(t, host, v)| serde_json::json!({"time": t, "host": host, "v": v}).to_string() + "\n")
            .collect();
        let batch = decode(Format::Ndjson, body.as_bytes(), Precision::Nanoseconds, &TableSchema::default()).unwrap();
        prop_assert_eq!(batch.num_rows(), rows.len());
        let v = batch.column_by_name("v").unwrap().as_any().downcast_ref::<arrow::array::Float64Array>().unwrap();
        for (i, (_, _, expected)) in rows.iter().enumerate() {
            prop_assert_eq!(v.value(i), *expected);
        }
    }
}
