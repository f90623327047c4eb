//! Decoder and persist throughput on TSBS cpu rows.
//!
//! - `ndjson_decode/5000`: one 5,000-row NDJSON write body (400 hosts, 21 columns) → RecordBatch.
//! - `csv_decode/5000`: the same rows as CSV.
//! - `line_protocol_parse/5000`: the same rows as InfluxDB line protocol → parsed points.
//! - `persist_encode/100000`: 100,000 buffered rows → sorted zstd Parquet (the flush's CPU part).
//!
//! Run: `cargo bench --bench ingest`; throughput is reported in rows/s (elements).

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opsboard::generate::CpuGenerator;
use opsboard::ingest::{Format, Precision, decode};
use opsboard::render::{ExportFormat, encode_all};
use opsboard::storage::TableSchema;

const START: i64 = 1_704_067_200_000_000_000;
const STEP: i64 = 10_000_000_000;

fn bodies(rows: usize) -> (Vec<u8>, Vec<u8>) {
    let mut generator = CpuGenerator::new(400, 1);
    let times: Vec<i64> = (0..(rows / 400) as i64).map(|i| START + i * STEP).collect();
    let mut ndjson = vec![];
    generator.ndjson(&times, &mut ndjson);
    let batch = CpuGenerator::new(400, 1).batch(&times);
    let csv = encode_all(ExportFormat::Csv, &batch.schema(), &[batch]).expect("csv");
    (ndjson, csv)
}

fn decoders(c: &mut Criterion) {
    let (ndjson, csv) = bodies(5_000);
    let lines = common::protocols::line_protocol(&common::protocols::rows(&ndjson));
    // 12 steps of 400 hosts: the bodies hold 4,800 rows.
    let rows = ndjson.iter().filter(|b| **b == b'\n').count();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function("ndjson_decode/5000", |b| {
        b.iter(|| {
            decode(
                Format::Ndjson,
                &ndjson,
                Precision::Nanoseconds,
                &TableSchema::default(),
            )
            .expect("decode")
        })
    });
    group.bench_function("line_protocol_parse/5000", |b| {
        b.iter(|| {
            let (points, errors) = opsboard::ingest::line_protocol::parse(&lines);
            assert!(errors.is_empty() && points.len() == rows);
            points
        })
    });
    group.bench_function("csv_decode/5000", |b| {
        b.iter(|| {
            decode(
                Format::Csv,
                &csv,
                Precision::Nanoseconds,
                &TableSchema::default(),
            )
            .expect("decode")
        })
    });
    group.finish();
}

fn persist(c: &mut Criterion) {
    let times: Vec<i64> = (0..250).map(|i| START + i * STEP).collect();
    let batch = CpuGenerator::new(400, 2).batch(&times);
    let schema = TableSchema::default()
        .merge("cpu", &batch.schema())
        .expect("schema");
    let mut group = c.benchmark_group("persist");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    group.sample_size(10);
    group.bench_function("persist_encode/100000", |b| {
        b.iter(|| {
            opsboard::storage::encode_for_bench(&schema, std::slice::from_ref(&batch))
                .expect("encode")
        })
    });
    group.finish();
}

criterion_group!(benches, decoders, persist);
criterion_main!(benches);
