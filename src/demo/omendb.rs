//! Seed 002 (OmenDB admin portal) as rows: per-customer usage each step (queries/s, storage,
//! API calls, the step's cost from the price table), the platform's services (up, p95 latency,
//! errors, database errors), sign-ins (failed logins, API key use) and the price table itself
//! as rows (one per plan, written with each step so it is always in range). The seed's alert
//! states recur daily: `search` is down for ten minutes from 03:00 UTC, `query`'s p95 stays
//! above 1 s from 15:00 to 15:20, `cust-04` sees a burst of failed logins for two minutes each
//! hour, and `metadata` loses its database for a minute at 09:30.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array};
use arrow::record_batch::RecordBatch;

use super::{batch, tags, time_column};
use crate::generate::Rng;

pub const TENANT: &str = "omendb";
pub const CUSTOMERS: usize = 8;
const SERVICES: [&str; 4] = ["api", "query", "search", "metadata"];
/// Plan, USD per million queries, per GB-month of storage, per thousand API calls.
const PLANS: [(&str, f64, f64, f64); 3] = [
    ("free", 0.0, 0.0, 0.0),
    ("team", 0.40, 0.25, 0.02),
    ("business", 0.30, 0.20, 0.015),
];
const MINUTE_NS: i64 = 60 * 1_000_000_000;
const GB_MONTH_NS: f64 = 30.0 * 86_400.0 * 1e9;

pub fn customer_ids(customers: usize) -> Vec<String> {
    (1..=customers).map(|i| format!("cust-{i:02}")).collect()
}

/// Deterministic rows for `usage`, `services`, `logins` and `prices`.
pub struct OmenDb {
    ids: Vec<String>,
    rng: Rng,
}

impl OmenDb {
    pub fn new(customers: usize, seed: u64) -> Self {
        Self {
            ids: customer_ids(customers),
            rng: Rng::new(seed ^ 0x0E_DB),
        }
    }

    /// Rows at each of `times`, each covering the `step_ns` before it.
    pub fn batches(&mut self, times: &[i64], step_ns: i64) -> Vec<(&'static str, RecordBatch)> {
        vec![
            ("usage", self.usage(times, step_ns)),
            ("services", self.services(times)),
            ("logins", self.logins(times, step_ns)),
            ("prices", prices(times)),
        ]
    }

    fn usage(&mut self, times: &[i64], step_ns: i64) -> RecordBatch {
        let mut t = vec![];
        let (mut customer, mut plan) = (vec![], vec![]);
        let (mut qps, mut storage, mut calls, mut cost) = (vec![], vec![], vec![], vec![]);
        let step_s = step_ns as f64 / 1e9;
        for &time in times {
            let hour = (time / (60 * MINUTE_NS)).rem_euclid(24) as f64;
            let load = 0.55 + 0.45 * ((hour - 15.0) / 24.0 * std::f64::consts::TAU).cos();
            for (i, id) in self.ids.iter().enumerate() {
                let (name, per_mquery, per_gb_month, per_kcall) = PLANS[i % PLANS.len()];
                let q = (i as f64 + 1.0) * 12.0 * load * (0.8 + self.rng.next_f64() * 0.4);
                let gb = 5.0 + i as f64 * 18.0 + (time as f64 / GB_MONTH_NS).fract();
                let n = (q * step_s * 0.05 * (0.5 + self.rng.next_f64())) as i64;
                t.push(time);
                customer.push(id.as_str());
                plan.push(name);
                qps.push(q);
                storage.push(gb);
                calls.push(n);
                let step_cost = q * step_s / 1e6 * per_mquery
                    + gb * per_gb_month * step_ns as f64 / GB_MONTH_NS
                    + n as f64 / 1e3 * per_kcall;
                cost.push(step_cost);
            }
        }
        batch(vec![
            ("time", time_column(t)),
            ("customer", tags(&customer)),
            ("plan", tags(&plan)),
            ("queries_per_s", Arc::new(Float64Array::from(qps))),
            ("storage_gb", Arc::new(Float64Array::from(storage))),
            ("api_calls", Arc::new(Int64Array::from(calls))),
            ("cost_usd", Arc::new(Float64Array::from(cost))),
        ])
    }

    fn services(&mut self, times: &[i64]) -> RecordBatch {
        let mut t = vec![];
        let mut service = vec![];
        let (mut up, mut p95, mut errors, mut db_errors) = (vec![], vec![], vec![], vec![]);
        for &time in times {
            let minute = (time / MINUTE_NS).rem_euclid(24 * 60);
            for (i, name) in SERVICES.iter().enumerate() {
                let down = *name == "search" && (180..190).contains(&minute);
                let slow = *name == "query" && (900..920).contains(&minute);
                let db_lost = *name == "metadata" && minute == 570;
                t.push(time);
                service.push(*name);
                up.push(i64::from(!down));
                let base = 120.0 + i as f64 * 60.0 + self.rng.next_f64() * 80.0;
                p95.push(if slow {
                    1_400.0 + self.rng.next_f64() * 300.0
                } else {
                    base
                });
                errors.push(if down {
                    40
                } else {
                    (self.rng.next_f64() * 3.0) as i64
                });
                db_errors.push(if db_lost { 5 } else { 0 });
            }
        }
        batch(vec![
            ("time", time_column(t)),
            ("service", tags(&service)),
            ("up", Arc::new(Int64Array::from(up))),
            ("p95_ms", Arc::new(Float64Array::from(p95))),
            ("errors", Arc::new(Int64Array::from(errors))),
            ("db_errors", Arc::new(Int64Array::from(db_errors))),
        ])
    }

    fn logins(&mut self, times: &[i64], step_ns: i64) -> RecordBatch {
        let mut t = vec![];
        let mut customer = vec![];
        let (mut failed, mut key_uses) = (vec![], vec![]);
        let per_minute = step_ns as f64 / MINUTE_NS as f64;
        for &time in times {
            let minute = (time / MINUTE_NS).rem_euclid(60);
            for (i, id) in self.ids.iter().enumerate() {
                let burst = id == "cust-04" && minute < 2;
                let f = if burst {
                    25.0
                } else {
                    self.rng.next_f64() * 1.5
                };
                t.push(time);
                customer.push(id.as_str());
                failed.push((f * per_minute).round() as i64);
                key_uses.push(((i + 1) as f64 * 20.0 * per_minute * self.rng.next_f64()) as i64);
            }
        }
        batch(vec![
            ("time", time_column(t)),
            ("customer", tags(&customer)),
            ("failed_logins", Arc::new(Int64Array::from(failed))),
            ("api_key_uses", Arc::new(Int64Array::from(key_uses))),
        ])
    }
}

/// The price table: one row per plan at each time.
fn prices(times: &[i64]) -> RecordBatch {
    let mut t = vec![];
    let mut plan = vec![];
    let (mut q, mut gb, mut calls) = (vec![], vec![], vec![]);
    for &time in times {
        for (name, per_mquery, per_gb_month, per_kcall) in PLANS {
            t.push(time);
            plan.push(name);
            q.push(per_mquery);
            gb.push(per_gb_month);
            calls.push(per_kcall);
        }
    }
    batch(vec![
        ("time", time_column(t)),
        ("plan", tags(&plan)),
        ("usd_per_million_queries", Arc::new(Float64Array::from(q))),
        ("usd_per_gb_month", Arc::new(Float64Array::from(gb))),
        (
            "usd_per_thousand_calls",
            Arc::new(Float64Array::from(calls)),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_alert_states_recur_each_day() {
        let day = 1_700_006_400_000_000_000_i64 / (1440 * MINUTE_NS) * (1440 * MINUTE_NS);
        let times: Vec<i64> = (0..1440).map(|m| day + m * MINUTE_NS).collect();
        let batches = OmenDb::new(CUSTOMERS, 1).batches(&times, MINUTE_NS);
        let column = |table: usize, name: &str| {
            let b = &batches[table].1;
            arrow::compute::cast(
                b.column_by_name(name).unwrap(),
                &arrow::datatypes::DataType::Float64,
            )
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .values()
            .to_vec()
        };
        let up = column(1, "up");
        assert_eq!(
            up.iter().filter(|u| **u == 0.0).count(),
            10,
            "search down 10 minutes"
        );
        let slow = column(1, "p95_ms").iter().filter(|p| **p > 1_000.0).count();
        assert_eq!(slow, 20, "query slow 20 minutes");
        let failed = column(2, "failed_logins");
        assert_eq!(
            failed.iter().filter(|f| **f > 10.0).count(),
            48,
            "2 minutes an hour"
        );
        assert!(column(0, "cost_usd").iter().all(|c| *c >= 0.0));
    }
}
