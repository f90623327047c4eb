//! Seed 000 (PiMeet) as rows: meeting-room devices' heartbeats with their vitals, and their log
//! lines. Some devices drift into alert states on their own: `room-03` runs hot in the
//! afternoons, `room-06`'s disk is nearly full, `room-09` stopped reporting 20 minutes before
//! now, `room-12`'s meetings keep failing in office hours; every fourth device runs last
//! release until it is updated.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::fleet::{Command, UnitState};
use super::{batch, tags, time_column};
use crate::generate::Rng;

pub const TENANT: &str = "pimeet";
pub const DEVICES: usize = 24;
const GROUPS: [&str; 4] = ["hq", "branch-north", "branch-south", "remote"];
const NEWEST: &str = "2.3.0";
const PREVIOUS: &str = "2.2.1";
const SILENT_FOR_NS: i64 = 20 * 60 * 1_000_000_000;
const MESSAGES: [&str; 4] = [
    "joined meeting",
    "left meeting",
    "camera reconnected",
    "network latency above 200 ms",
];

pub fn device_ids(devices: usize) -> Vec<String> {
    (1..=devices).map(|i| format!("room-{i:02}")).collect()
}

/// Deterministic rows for the `devices` and `device_logs` tables.
pub struct PiMeet {
    ids: Vec<String>,
    rng: Rng,
}

#[derive(Default)]
struct Rows {
    time: Vec<i64>,
    device: Vec<String>,
    group: Vec<&'static str>,
    location: Vec<String>,
    health: Vec<i64>,
    problem: Vec<Option<String>>,
    cpu: Vec<f64>,
    memory: Vec<f64>,
    temperature: Vec<f64>,
    disk: Vec<f64>,
    meeting: Vec<&'static str>,
    version: Vec<&'static str>,
    uptime: Vec<i64>,
}

impl PiMeet {
    pub fn new(devices: usize, seed: u64) -> Self {
        Self {
            ids: device_ids(devices),
            rng: Rng::new(seed ^ 0x91_3E),
        }
    }

    /// One heartbeat per device at each of `times` (none while a device is away or silent),
    /// and the log lines of the period — the fleet's own lines first.
    pub fn batches(
        &mut self,
        times: &[i64],
        states: &BTreeMap<String, UnitState>,
        now_ns: i64,
    ) -> Vec<(&'static str, RecordBatch)> {
        let mut rows = Rows::default();
        let mut logs: Vec<(i64, String, &'static str, String)> = states
            .iter()
            .flat_map(|(id, s)| {
                s.log
                    .iter()
                    .map(move |(t, level, m)| (*t, id.clone(), *level, m.clone()))
            })
            .collect();
        let empty = UnitState::default();
        for &time in times {
            let hour = (time / 3_600_000_000_000).rem_euclid(24);
            for (i, id) in self.ids.clone().iter().enumerate() {
                let state = states.get(id).unwrap_or(&empty);
                let away = state.away.is_some_and(|a| a.until_ns > time);
                if away || (i == 8 && time > now_ns - SILENT_FOR_NS) {
                    continue;
                }
                self.heartbeat(&mut rows, time, hour, i, id, state);
                if self.rng.next_f64() < 0.01 {
                    let message = MESSAGES[(self.rng.next_u64() % 4) as usize];
                    let level = if message.starts_with("network") {
                        "WARNING"
                    } else {
                        "INFO"
                    };
                    logs.push((time, id.clone(), level, message.to_string()));
                }
            }
        }
        vec![
            ("devices", rows.into_batch()),
            ("device_logs", log_batch(logs)),
        ]
    }

    fn heartbeat(
        &mut self,
        rows: &mut Rows,
        time: i64,
        hour: i64,
        i: usize,
        id: &str,
        state: &UnitState,
    ) {
        let r = &mut self.rng;
        let afternoon = (13..17).contains(&hour);
        let temperature = if i == 2 && afternoon { 77.0 } else { 52.0 } + r.next_f64() * 6.0;
        let disk = if i == 5 { 92.0 } else { 35.0 + i as f64 } + r.next_f64();
        let failing = i == 11 && (8..18).contains(&hour) && r.next_f64() < 0.3;
        let meeting = if failing {
            "failed"
        } else if (8..18).contains(&hour) && r.next_f64() < 0.5 {
            "in_meeting"
        } else {
            "idle"
        };
        let (health, problem) = if failing {
            (2, Some("meeting failed to start".to_string()))
        } else if temperature > 75.0 {
            (1, Some(format!("running hot: {temperature:.1} °C")))
        } else if disk > 90.0 {
            (1, Some(format!("disk {disk:.0}% full")))
        } else {
            (0, None)
        };
        let boot = state
            .rebuilt_at_ns
            .unwrap_or(time - time.rem_euclid(3 * 86_400_000_000_000));
        rows.time.push(time);
        rows.device.push(id.to_string());
        rows.group.push(GROUPS[i % GROUPS.len()]);
        rows.location.push(format!(
            "{} room {}",
            GROUPS[i % GROUPS.len()],
            i / GROUPS.len() + 1
        ));
        rows.health.push(health);
        rows.problem.push(problem);
        rows.cpu
            .push(15.0 + r.next_f64() * 25.0 + if meeting == "in_meeting" { 30.0 } else { 0.0 });
        rows.memory.push(40.0 + r.next_f64() * 20.0);
        rows.temperature.push(temperature);
        rows.disk.push(disk);
        rows.meeting.push(meeting);
        rows.version.push(if i % 4 == 3 && state.updates == 0 {
            PREVIOUS
        } else {
            NEWEST
        });
        rows.uptime.push((time - boot).max(0) / 1_000_000_000);
    }
}

/// Whether a device obeys `command` (VM commands are not its).
pub fn obeys(command: Command) -> bool {
    command != Command::Rebuild
}

impl Rows {
    fn into_batch(self) -> RecordBatch {
        let device: Vec<&str> = self.device.iter().map(String::as_str).collect();
        let location: Vec<&str> = self.location.iter().map(String::as_str).collect();
        batch(vec![
            ("time", time_column(self.time)),
            ("device", tags(&device)),
            ("group", tags(&self.group)),
            ("location", tags(&location)),
            ("health", Arc::new(Int64Array::from(self.health))),
            ("problem", Arc::new(StringArray::from(self.problem))),
            ("cpu_percent", Arc::new(Float64Array::from(self.cpu))),
            ("memory_percent", Arc::new(Float64Array::from(self.memory))),
            (
                "temperature_c",
                Arc::new(Float64Array::from(self.temperature)),
            ),
            ("disk_percent", Arc::new(Float64Array::from(self.disk))),
            ("meeting_status", Arc::new(StringArray::from(self.meeting))),
            (
                "software_version",
                Arc::new(StringArray::from(self.version)),
            ),
            ("uptime_s", Arc::new(Int64Array::from(self.uptime))),
        ])
    }
}

fn log_batch(mut logs: Vec<(i64, String, &'static str, String)>) -> RecordBatch {
    logs.sort_by_key(|l| l.0);
    let device: Vec<&str> = logs.iter().map(|l| l.1.as_str()).collect();
    let level: Vec<&str> = logs.iter().map(|l| l.2).collect();
    batch(vec![
        ("time", time_column(logs.iter().map(|l| l.0).collect())),
        ("device", tags(&device)),
        ("level", tags(&level)),
        (
            "message",
            Arc::new(StringArray::from_iter_values(
                logs.iter().map(|l| l.3.as_str()),
            )),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;

    const HOUR_NS: i64 = 3_600_000_000_000;

    #[test]
    fn the_same_seed_gives_the_same_rows_and_some_devices_drift() {
        let now = 15 * HOUR_NS;
        let times: Vec<i64> = (0..60)
            .map(|m| now - HOUR_NS + m * 60_000_000_000)
            .collect();
        let states = BTreeMap::new();
        let first = PiMeet::new(12, 3).batches(&times, &states, now);
        let again = PiMeet::new(12, 3).batches(&times, &states, now);
        assert_eq!(first, again);
        let devices = &first[0].1;
        assert_eq!(
            devices.num_rows(),
            60 * 12 - 19,
            "room-09 silent for the last 20 minutes"
        );
        let temperature = devices
            .column_by_name("temperature_c")
            .unwrap()
            .as_primitive::<Float64Type>();
        let hottest = temperature.iter().flatten().fold(0.0, f64::max);
        assert!(
            hottest > 75.0,
            "room-03 runs hot in the afternoon: {hottest}"
        );
    }

    #[test]
    fn a_device_away_sends_no_heartbeat() {
        let fleet = super::super::fleet::Fleet::new(device_ids(2));
        fleet.command("room-01", Command::Reboot, 0).unwrap();
        let batches = PiMeet::new(2, 1).batches(&[1_000], &fleet.at(1_000), 1_000);
        assert_eq!(batches[0].1.num_rows(), 1, "only room-02");
        assert_eq!(batches[1].1.num_rows(), 1, "the reboot request is logged");
    }
}
