//! Synthetic data: the TSBS "cpu-only" data set (10 tags, 10 `usage_*` fields per host and
//! interval), deterministic from a seed so benchmarks and demos are repeatable.

use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, Float64Array, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::schema::{tag_type, time_type};

pub const TAGS: [&str; 10] = [
    "hostname",
    "region",
    "datacenter",
    "rack",
    "os",
    "arch",
    "team",
    "service",
    "service_version",
    "service_environment",
];
pub const FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

const REGIONS: [&str; 3] = ["us-east-1", "us-west-1", "eu-central-1"];
const OSES: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCHES: [&str; 2] = ["x64", "x86"];
const TEAMS: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVS: [&str; 3] = ["production", "staging", "test"];

/// splitmix64: tiny, fast and good enough for synthetic metrics.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One host's fixed tag values.
#[derive(Debug, Clone)]
pub struct Host {
    pub tags: [String; 10],
}

/// The TSBS cpu generator: hosts with random-walk usage values.
#[derive(Debug, Clone)]
pub struct CpuGenerator {
    pub hosts: Vec<Host>,
    values: Vec<[f64; 10]>,
    rng: Rng,
    schema: SchemaRef,
}

impl CpuGenerator {
    pub fn new(hosts: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let hosts: Vec<Host> = (0..hosts)
            .map(|i| {
                let pick = |rng: &mut Rng, options: &[&str]| {
                    options[(rng.next_u64() % options.len() as u64) as usize].to_string()
                };
                let region = pick(&mut rng, &REGIONS);
                Host {
                    tags: [
                        format!("host_{i}"),
                        region.clone(),
                        format!("{region}{}", ['a', 'b', 'c'][(rng.next_u64() % 3) as usize]),
                        (rng.next_u64() % 100).to_string(),
                        pick(&mut rng, &OSES),
                        pick(&mut rng, &ARCHES),
                        pick(&mut rng, &TEAMS),
                        (rng.next_u64() % 20).to_string(),
                        (rng.next_u64() % 2).to_string(),
                        pick(&mut rng, &ENVS),
                    ],
                }
            })
            .collect();
        let values = (0..hosts.len())
            .map(|_| std::array::from_fn(|_| rng.next_f64() * 100.0))
            .collect();
        let mut fields: Vec<Field> = vec![Field::new("time", time_type(), false)];
        fields.extend(TAGS.iter().map(|t| Field::new(*t, tag_type(), true)));
        fields.extend(
            FIELDS
                .iter()
                .map(|f| Field::new(*f, DataType::Float64, true)),
        );
        Self {
            hosts,
            values,
            rng,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// Advances every host's values one step (bounded random walk in 0..=100).
    fn step(&mut self) {
        for host in &mut self.values {
            for v in host.iter_mut() {
                *v = (*v + (self.rng.next_f64() - 0.5) * 10.0).clamp(0.0, 100.0);
            }
        }
    }

    /// Rows for every host at each of `times` (ns), as one batch.
    pub fn batch(&mut self, times: &[i64]) -> RecordBatch {
        let n = times.len() * self.hosts.len();
        let mut time = Vec::with_capacity(n);
        let mut fields: Vec<Vec<f64>> = (0..10).map(|_| Vec::with_capacity(n)).collect();
        let mut keys: Vec<i32> = Vec::with_capacity(n);
        for t in times {
            self.step();
            for (h, values) in self.values.iter().enumerate() {
                time.push(*t);
                keys.push(h as i32);
                for (f, v) in values.iter().enumerate() {
                    fields[f].push((v * 100.0).round() / 100.0);
                }
            }
        }
        let keys = arrow::array::Int32Array::from(keys);
        let mut columns: Vec<ArrayRef> = vec![Arc::new(
            TimestampNanosecondArray::from(time).with_timezone("UTC"),
        )];
        for tag in 0..10 {
            let values: Vec<&str> = self.hosts.iter().map(|h| h.tags[tag].as_str()).collect();
            let dict = DictionaryArray::<Int32Type>::try_new(
                keys.clone(),
                Arc::new(arrow::array::StringArray::from(values)),
            )
            .expect("keys index the host list");
            columns.push(Arc::new(dict));
        }
        columns.extend(
            fields
                .into_iter()
                .map(|f| Arc::new(Float64Array::from(f)) as ArrayRef),
        );
        RecordBatch::try_new(self.schema.clone(), columns).expect("columns match the schema")
    }

    /// The same rows as NDJSON lines (the `generate` CLI and decode benchmarks).
    pub fn ndjson(&mut self, times: &[i64], out: &mut Vec<u8>) {
        let batch = self.batch(times);
        let mut writer = arrow::json::LineDelimitedWriter::new(out);
        writer.write(&batch).expect("writing to memory");
        writer.finish().expect("writing to memory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_from_seed() {
        let a = CpuGenerator::new(3, 7).batch(&[0, 10]);
        let b = CpuGenerator::new(3, 7).batch(&[0, 10]);
        assert_eq!(a, b);
        assert_eq!(a.num_rows(), 6);
        assert_eq!(a.num_columns(), 21);
        let c = CpuGenerator::new(3, 8).batch(&[0, 10]);
        assert_ne!(a, c);
    }
}
