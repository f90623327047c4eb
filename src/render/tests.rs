//! Golden outputs of each result format for one small fixture.

use std::sync::Arc;

use arrow::array::{DictionaryArray, Float64Array, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;

use super::*;

fn fixture() -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new(
            "host",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("v", DataType::Float64, true),
    ]));
    let batch = |t: Vec<i64>, h: Vec<&str>, v: Vec<Option<f64>>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampNanosecondArray::from(t).with_timezone("UTC")),
                Arc::new(h.into_iter().collect::<DictionaryArray<Int32Type>>()),
                Arc::new(Float64Array::from(v)),
            ],
        )
        .unwrap()
    };
    let batches = vec![
        batch(vec![1_000_000_000], vec!["a"], vec![Some(1.5)]),
        batch(
            vec![2_000_000_000, 3_000_000_000],
            vec!["b", "a"],
            vec![None, Some(2.0)],
        ),
    ];
    (schema, batches)
}

fn text(format: ExportFormat) -> String {
    let (schema, batches) = fixture();
    String::from_utf8(encode_all(format, &schema, &batches).unwrap()).unwrap()
}

#[test]
fn json_is_one_array_of_objects_across_batches() {
    assert_eq!(
        text(ExportFormat::Json),
        r#"[{"time":"1970-01-01T00:00:01Z","host":"a","v":1.5},{"time":"1970-01-01T00:00:02Z","host":"b","v":null},{"time":"1970-01-01T00:00:03Z","host":"a","v":2.0}]"#
    );
}

#[test]
fn empty_json_result_is_an_empty_array() {
    let (schema, _) = fixture();
    assert_eq!(encode_all(ExportFormat::Json, &schema, &[]).unwrap(), b"[]");
}

#[test]
fn ndjson_is_one_object_per_line() {
    assert_eq!(text(ExportFormat::Ndjson).lines().count(), 3);
}

#[test]
fn csv_has_one_header() {
    assert_eq!(
        text(ExportFormat::Csv),
        "time,host,v\n1970-01-01T00:00:01Z,a,1.5\n1970-01-01T00:00:02Z,b,\n1970-01-01T00:00:03Z,a,2.0\n"
    );
}

#[test]
fn parquet_and_arrow_read_back() {
    let (schema, batches) = fixture();
    let bytes = encode_all(ExportFormat::Parquet, &schema, &batches).unwrap();
    let reader = ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
    let bytes = encode_all(ExportFormat::Arrow, &schema, &batches).unwrap();
    let reader = arrow::ipc::reader::StreamReader::try_new(&bytes[..], None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
}
