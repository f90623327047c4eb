//! Seed 004 (Lab by Kraliki) as rows: customer VMs reporting status, health and resources, and
//! each customer's billing (the tier's price, VM and API costs) per step. Some VMs and
//! customers sit in the seed's alert states: `vm-03`'s disk holds about 85 GB and `vm-08`'s 93,
//! `vm-05`'s CPU spikes above 90 % for 20 minutes every afternoon, `vm-07`'s memory every
//! evening; `cust-03` spends about $70 a week on the API and `cust-06` about $130. Every third
//! VM runs the previous release until it is updated or rebuilt.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::fleet::{Command, UnitState};
use super::{batch, tags, time_column};
use crate::generate::Rng;

pub const TENANT: &str = "kraliki";
pub const VMS: usize = 16;
pub const CUSTOMERS: usize = 8;
const TIERS: [(&str, f64); 3] = [("starter", 29.0), ("pro", 99.0), ("enterprise", 499.0)];
const NEWEST: &str = "1.8.2";
const PREVIOUS: &str = "1.7.9";
const NS: f64 = 1e9;

pub fn vm_ids(vms: usize) -> Vec<String> {
    (1..=vms).map(|i| format!("vm-{i:02}")).collect()
}

fn customer(i: usize, customers: usize) -> (String, &'static str, f64) {
    let c = i % customers.max(1);
    let (tier, price) = TIERS[c % TIERS.len()];
    (format!("cust-{:02}", c + 1), tier, price)
}

/// Deterministic rows for the `vms` and `billing` tables.
pub struct Kraliki {
    ids: Vec<String>,
    customers: usize,
    rng: Rng,
}

#[derive(Default)]
struct VmRows {
    time: Vec<i64>,
    vm: Vec<String>,
    customer: Vec<String>,
    tier: Vec<&'static str>,
    region: Vec<&'static str>,
    status: Vec<&'static str>,
    health: Vec<&'static str>,
    online: Vec<i64>,
    cpu: Vec<f64>,
    memory: Vec<f64>,
    disk: Vec<f64>,
    net_in: Vec<f64>,
    net_out: Vec<f64>,
    version: Vec<&'static str>,
    ip: Vec<String>,
}

impl Kraliki {
    pub fn new(vms: usize, customers: usize, seed: u64) -> Self {
        Self {
            ids: vm_ids(vms),
            customers,
            rng: Rng::new(seed ^ 0x4B_11),
        }
    }

    /// One report per VM at each of `times` (`offline` while restarting, `provisioning` while
    /// rebuilt), and each customer's billing for the `step_ns` ending at each time.
    pub fn batches(
        &mut self,
        times: &[i64],
        states: &BTreeMap<String, UnitState>,
        step_ns: i64,
    ) -> Vec<(&'static str, RecordBatch)> {
        let mut rows = VmRows::default();
        let empty = UnitState::default();
        for &time in times {
            for (i, id) in self.ids.clone().iter().enumerate() {
                self.report(&mut rows, time, i, id, states.get(id).unwrap_or(&empty));
            }
        }
        vec![
            ("vms", rows.into_batch()),
            ("billing", self.billing(times, step_ns)),
        ]
    }

    fn report(&mut self, rows: &mut VmRows, time: i64, i: usize, id: &str, state: &UnitState) {
        let r = &mut self.rng;
        let minute_of_day = (time / 60_000_000_000).rem_euclid(1_440);
        let away = state.away.filter(|a| a.until_ns > time);
        let status = match away.map(|a| a.command) {
            Some(Command::Rebuild) => "provisioning",
            Some(_) => "offline",
            None => "online",
        };
        let up = status == "online";
        let spike = i == 4 && (14 * 60..14 * 60 + 20).contains(&minute_of_day);
        let cpu = if !up {
            0.0
        } else if spike {
            94.0 + r.next_f64() * 4.0
        } else {
            20.0 + r.next_f64() * 35.0
        };
        let evening = i == 6 && (19 * 60..21 * 60).contains(&minute_of_day);
        let memory = if !up {
            0.0
        } else if evening {
            93.0 + r.next_f64() * 3.0
        } else {
            45.0 + r.next_f64() * 25.0
        };
        let since_rebuild_days = state
            .rebuilt_at_ns
            .map(|t| (time - t).max(0) as f64 / NS / 86_400.0);
        let base = match i {
            2 => 85.0,
            7 => 93.0,
            _ => 30.0 + 2.5 * i as f64,
        };
        let disk = match since_rebuild_days {
            Some(days) => 12.0 + days * 0.5,
            None => base,
        } + r.next_f64() * 0.5;
        let (customer, tier, _) = customer(i, self.customers);
        rows.time.push(time);
        rows.vm.push(id.to_string());
        rows.customer.push(customer);
        rows.tier.push(tier);
        rows.region
            .push(if i.is_multiple_of(2) { "eu" } else { "us" });
        rows.status.push(status);
        rows.health.push(if !up {
            "unknown"
        } else if spike || evening {
            "unhealthy"
        } else {
            "healthy"
        });
        rows.online.push(i64::from(up));
        rows.cpu.push(cpu);
        rows.memory.push(memory);
        rows.disk.push(disk);
        rows.net_in
            .push(if up { 5.0 + r.next_f64() * 40.0 } else { 0.0 });
        rows.net_out
            .push(if up { 2.0 + r.next_f64() * 15.0 } else { 0.0 });
        rows.version.push(if i % 3 == 2 && state.updates == 0 {
            PREVIOUS
        } else {
            NEWEST
        });
        rows.ip.push(format!("10.0.{}.{}", i / 200, i % 200 + 10));
    }

    fn billing(&mut self, times: &[i64], step_ns: i64) -> RecordBatch {
        let step_s = step_ns as f64 / NS;
        let (mut t, mut customers, mut tiers) = (vec![], vec![], vec![]);
        let (mut revenue, mut vm_cost, mut api_cost) = (vec![], vec![], vec![]);
        for &time in times {
            for c in 0..self.customers {
                let (name, tier, price) = customer(c, self.customers);
                let vms = (0..self.ids.len())
                    .filter(|i| i % self.customers == c)
                    .count() as f64;
                let weekly_api = match c {
                    2 => 70.0,
                    5 => 130.0,
                    _ => 5.0 + 3.0 * c as f64,
                };
                t.push(time);
                customers.push(name);
                tiers.push(tier);
                revenue.push(price / (30.0 * 86_400.0) * step_s);
                vm_cost.push(vms * 0.012 / 3_600.0 * step_s);
                let noise = 0.5 + self.rng.next_f64();
                api_cost.push(weekly_api / (7.0 * 86_400.0) * step_s * noise);
            }
        }
        let customers: Vec<&str> = customers.iter().map(String::as_str).collect();
        batch(vec![
            ("time", time_column(t)),
            ("customer", tags(&customers)),
            ("tier", tags(&tiers)),
            ("revenue_usd", Arc::new(Float64Array::from(revenue))),
            ("vm_cost_usd", Arc::new(Float64Array::from(vm_cost))),
            ("api_cost_usd", Arc::new(Float64Array::from(api_cost))),
        ])
    }
}

/// Whether a VM obeys `command` (device commands are not its).
pub fn obeys(command: Command) -> bool {
    matches!(
        command,
        Command::Restart | Command::Rebuild | Command::Update
    )
}

impl VmRows {
    fn into_batch(self) -> RecordBatch {
        let vm: Vec<&str> = self.vm.iter().map(String::as_str).collect();
        let customer: Vec<&str> = self.customer.iter().map(String::as_str).collect();
        batch(vec![
            ("time", time_column(self.time)),
            ("vm", tags(&vm)),
            ("customer", tags(&customer)),
            ("tier", tags(&self.tier)),
            ("region", tags(&self.region)),
            ("status", Arc::new(StringArray::from(self.status))),
            ("health", Arc::new(StringArray::from(self.health))),
            ("online", Arc::new(Int64Array::from(self.online))),
            ("cpu_percent", Arc::new(Float64Array::from(self.cpu))),
            ("memory_percent", Arc::new(Float64Array::from(self.memory))),
            ("disk_gb", Arc::new(Float64Array::from(self.disk))),
            ("net_in_mbps", Arc::new(Float64Array::from(self.net_in))),
            ("net_out_mbps", Arc::new(Float64Array::from(self.net_out))),
            ("version", Arc::new(StringArray::from(self.version))),
            (
                "ip_address",
                Arc::new(StringArray::from_iter_values(self.ip.iter())),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;

    #[test]
    fn the_same_seed_gives_the_same_rows_and_seed_thresholds_are_crossed() {
        let step = 60_000_000_000;
        let times: Vec<i64> = (0..10).map(|m| m * step).collect();
        let states = BTreeMap::new();
        let first = Kraliki::new(VMS, CUSTOMERS, 5).batches(&times, &states, step);
        assert_eq!(
            first,
            Kraliki::new(VMS, CUSTOMERS, 5).batches(&times, &states, step)
        );
        let disk = first[0]
            .1
            .column_by_name("disk_gb")
            .unwrap()
            .as_primitive::<Float64Type>();
        let max = disk.iter().flatten().fold(0.0, f64::max);
        assert!(max > 90.0, "vm-08's disk crosses the critical line: {max}");
        // cust-06's API spend runs at about $130 a week.
        let week =
            Kraliki::new(VMS, CUSTOMERS, 5).batches(&[0], &states, 7 * 86_400 * 1_000_000_000);
        let api = week[1]
            .1
            .column_by_name("api_cost_usd")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert!((65.0..=195.0).contains(&api.value(5)), "{}", api.value(5));
    }

    #[test]
    fn a_rebuilt_vm_provisions_then_starts_on_an_empty_disk_with_the_newest_release() {
        let fleet = super::super::fleet::Fleet::new(vm_ids(3));
        fleet.command("vm-03", Command::Rebuild, 0).unwrap();
        let mut generator = Kraliki::new(3, 1, 1);
        let during = generator.batches(&[1_000], &fleet.at(1_000), 1);
        let status = during[0]
            .1
            .column_by_name("status")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(status.value(2), "provisioning");
        let later = 60_000_000_000;
        let after = generator.batches(&[later], &fleet.at(later), 1);
        let vms = &after[0].1;
        assert_eq!(
            vms.column_by_name("status")
                .unwrap()
                .as_string::<i32>()
                .value(2),
            "online"
        );
        assert!(
            vms.column_by_name("disk_gb")
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(2)
                < 20.0
        );
        assert_eq!(
            vms.column_by_name("version")
                .unwrap()
                .as_string::<i32>()
                .value(2),
            NEWEST
        );
    }
}
