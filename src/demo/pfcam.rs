//! Seed 001 (PFCAM) as rows: industrial event cameras reporting their health (online,
//! recording, storage, temperature) each step, and events — motion, person, vehicle in a zone,
//! with a score — each carrying a snapshot drawn here: a scene in the camera's colours, darker
//! at night, with the figure the event is about at a random place, so no two are alike.
//! `cam-03` stops reporting three hours before "now" (camera offline), `cam-05`'s storage sits
//! above 90 %, and `cam-02` watches the back door, where people turn up at night.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use image::{ImageEncoder, Rgb, RgbImage};

use super::{batch, tags, time_column};
use crate::generate::Rng;
use crate::storage::attachment_id;

pub const TENANT: &str = "pfcam";
pub const CAMERAS: usize = 8;
const SITES: [&str; 2] = ["plant-north", "plant-south"];
const ZONES: [&str; 4] = ["gate", "yard", "dock", "back"];
const OFFLINE_CAMERA: &str = "cam-03";
const FULL_CAMERA: &str = "cam-05";
const BACK_DOOR_CAMERA: &str = "cam-02";
const OFFLINE_FOR_NS: i64 = 3 * 3_600 * 1_000_000_000;
const HOUR_NS: i64 = 3_600 * 1_000_000_000;
const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

pub fn camera_ids(cameras: usize) -> Vec<String> {
    (1..=cameras).map(|i| format!("cam-{i:02}")).collect()
}

/// One step's rows, and the snapshots they name (to be uploaded before the rows).
pub struct Step {
    pub pictures: Vec<Bytes>,
    pub batches: Vec<(&'static str, RecordBatch)>,
}

/// Deterministic rows for the `cameras` and `events` tables.
pub struct Pfcam {
    ids: Vec<String>,
    rng: Rng,
    /// Chance of an event per camera and step.
    event_chance: f64,
}

#[derive(Default)]
struct EventRows {
    time: Vec<i64>,
    camera: Vec<String>,
    zone: Vec<&'static str>,
    kind: Vec<&'static str>,
    score: Vec<f64>,
    snapshot: Vec<String>,
}

impl Pfcam {
    /// `event_chance`: chance of an event per camera and step.
    pub fn new(cameras: usize, seed: u64, event_chance: f64) -> Self {
        Self {
            ids: camera_ids(cameras),
            rng: Rng::new(seed ^ 0xCA_01),
            event_chance,
        }
    }

    /// One health report per camera at each of `times` (none from `cam-03` in the last three
    /// hours before `now_ns`), and the events of those steps with their snapshots.
    pub fn step(&mut self, times: &[i64], now_ns: i64) -> Step {
        let mut t = vec![];
        let (mut camera, mut site) = (vec![], vec![]);
        let (mut online, mut recording) = (vec![], vec![]);
        let (mut used, mut percent, mut temperature) = (vec![], vec![], vec![]);
        let mut events = EventRows::default();
        let mut pictures = vec![];
        for &time in times {
            let hour = (time / HOUR_NS).rem_euclid(24);
            for i in 0..self.ids.len() {
                let id = self.ids[i].clone();
                if id == OFFLINE_CAMERA && time > now_ns - OFFLINE_FOR_NS {
                    continue;
                }
                let total = 500.0;
                let fill = if id == FULL_CAMERA {
                    0.91
                } else {
                    0.35 + i as f64 * 0.05
                };
                let gb = total * (fill + self.rng.next_f64() * 0.02);
                t.push(time);
                camera.push(id.clone());
                site.push(SITES[i % SITES.len()]);
                online.push(1_i64);
                recording.push(i64::from(self.rng.next_f64() > 0.02));
                used.push(gb);
                percent.push(gb / total * 100.0);
                let day = 8.0 * ((hour as f64 - 14.0) / 24.0 * std::f64::consts::TAU).cos();
                temperature.push(38.0 + i as f64 + day + self.rng.next_f64() * 2.0);
                let night = !(6..22).contains(&hour);
                let chance = if id == BACK_DOOR_CAMERA && night {
                    self.event_chance * 4.0
                } else {
                    self.event_chance
                };
                if self.rng.next_f64() < chance {
                    let picture = self.event(time, i, &id, night, &mut events);
                    pictures.push(picture);
                }
            }
        }
        let cameras = batch(vec![
            ("time", time_column(t)),
            (
                "camera",
                tags(&camera.iter().map(String::as_str).collect::<Vec<_>>()),
            ),
            ("site", tags(&site)),
            ("online", Arc::new(Int64Array::from(online))),
            ("recording", Arc::new(Int64Array::from(recording))),
            ("storage_used_gb", Arc::new(Float64Array::from(used))),
            ("storage_percent", Arc::new(Float64Array::from(percent))),
            ("temperature_c", Arc::new(Float64Array::from(temperature))),
        ]);
        let events = batch(vec![
            ("time", time_column(events.time)),
            (
                "camera",
                tags(&events.camera.iter().map(String::as_str).collect::<Vec<_>>()),
            ),
            ("zone", tags(&events.zone)),
            ("kind", Arc::new(StringArray::from(events.kind))),
            ("score", Arc::new(Float64Array::from(events.score))),
            ("snapshot", Arc::new(StringArray::from(events.snapshot))),
        ]);
        Step {
            pictures,
            batches: vec![("cameras", cameras), ("events", events)],
        }
    }

    /// Adds one event of camera `i` at `time`; returns its snapshot.
    fn event(&mut self, time: i64, i: usize, id: &str, night: bool, rows: &mut EventRows) -> Bytes {
        let zone = if id == BACK_DOOR_CAMERA {
            "back"
        } else {
            ZONES[(self.rng.next_u64() % 3) as usize]
        };
        let roll = self.rng.next_f64();
        let kind = if id == BACK_DOOR_CAMERA && night && roll < 0.6 {
            "person"
        } else if roll < 0.5 {
            "motion"
        } else if roll < 0.8 {
            "vehicle"
        } else {
            "person"
        };
        let score = 0.55 + self.rng.next_f64() * 0.44;
        let picture = self.snapshot(i, kind, night);
        rows.time.push(time);
        rows.camera.push(id.to_string());
        rows.zone.push(zone);
        rows.kind.push(kind);
        rows.score.push((score * 100.0).round() / 100.0);
        rows.snapshot.push(attachment_id(&picture));
        picture
    }

    /// A 320×240 JPEG: sky and ground in the camera's colours (dim at night), the subject.
    fn snapshot(&mut self, camera: usize, kind: &str, night: bool) -> Bytes {
        let light = if night { 0.35 } else { 1.0 };
        let shade = |c: [u8; 3]| Rgb(c.map(|v| (v as f64 * light) as u8));
        let hue = (camera * 37 % 100) as u8;
        let sky = shade([120 + hue, 170, 220 - hue]);
        let ground = shade([90, 100 + hue / 2, 80]);
        let horizon = 100 + (self.rng.next_u64() % 40) as u32;
        let mut img =
            RgbImage::from_fn(WIDTH, HEIGHT, |_, y| if y < horizon { sky } else { ground });
        let x = 20 + (self.rng.next_u64() % 240) as u32;
        let base = horizon + 20 + (self.rng.next_u64() % 60) as u32;
        let mut fill = |x0: u32, y0: u32, w: u32, h: u32, color: Rgb<u8>| {
            for y in y0..(y0 + h).min(HEIGHT) {
                for x in x0..(x0 + w).min(WIDTH) {
                    img.put_pixel(x, y, color);
                }
            }
        };
        match kind {
            "person" => {
                fill(x, base.saturating_sub(60), 16, 60, shade([200, 60, 40]));
                fill(
                    x + 3,
                    base.saturating_sub(72),
                    10,
                    10,
                    shade([230, 190, 160]),
                );
            }
            "vehicle" => {
                fill(x, base.saturating_sub(30), 70, 26, shade([40, 70, 160]));
                fill(x + 8, base.saturating_sub(6), 12, 6, shade([20, 20, 20]));
                fill(x + 50, base.saturating_sub(6), 12, 6, shade([20, 20, 20]));
            }
            _ => {
                for k in 0..5 {
                    fill(
                        x + k * 9,
                        base.saturating_sub(40) + k * 4,
                        30,
                        2,
                        shade([240, 240, 240]),
                    );
                }
            }
        }
        let mut out = vec![];
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70);
        encoder
            .write_image(img.as_raw(), WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
            .expect("an in-memory JPEG of a fixed size encodes");
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_own_pictures_and_cam03_goes_quiet() {
        let now = 1_700_000_000_000_000_000_i64;
        let times: Vec<i64> = (0..240).map(|i| now - (240 - i) * 60_000_000_000).collect();
        let mut g = Pfcam::new(CAMERAS, 3, 0.2);
        let step = g.step(&times, now);
        let (_, events) = &step.batches[1];
        assert!(events.num_rows() > 10);
        assert_eq!(events.num_rows(), step.pictures.len());
        let ids: std::collections::BTreeSet<String> =
            step.pictures.iter().map(|p| attachment_id(p)).collect();
        assert_eq!(ids.len(), step.pictures.len(), "no two snapshots alike");
        assert!(
            step.pictures
                .iter()
                .all(|p| p.starts_with(&[0xFF, 0xD8, 0xFF]))
        );
        let (_, cameras) = &step.batches[0];
        // cam-03 is quiet for the 179 steps after now - 3h.
        assert_eq!(cameras.num_rows(), 61 * CAMERAS + 179 * (CAMERAS - 1));
        let again = Pfcam::new(CAMERAS, 3, 0.2).step(&times, now);
        assert_eq!(again.pictures, step.pictures, "deterministic");
    }
}
