//! Seed 001 (PFCAM) as rows: industrial event cameras reporting their health (online,
//! recording, storage, temperature) each step, and events — motion, person, vehicle in a zone,
//! with a score — each carrying a snapshot drawn here (and for some people and vehicles a clip,
//! an animated GIF of the subject crossing): a scene in the camera's colours, darker
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
/// Chance that a person or vehicle event comes with a clip.
const CLIP_CHANCE: f64 = 0.3;

pub fn camera_ids(cameras: usize) -> Vec<String> {
    (1..=cameras).map(|i| format!("cam-{i:02}")).collect()
}

/// One step's rows, and the files they name with their types (to be uploaded first).
pub struct Step {
    pub pictures: Vec<(Bytes, &'static str)>,
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
    clip: Vec<Option<String>>,
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
                    let files = self.event(time, i, &id, night, &mut events);
                    pictures.extend(files);
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
            ("clip", Arc::new(StringArray::from(events.clip))),
        ]);
        Step {
            pictures,
            batches: vec![("cameras", cameras), ("events", events)],
        }
    }

    /// Adds one event of camera `i` at `time`; returns its snapshot.
    fn event(
        &mut self,
        time: i64,
        i: usize,
        id: &str,
        night: bool,
        rows: &mut EventRows,
    ) -> Vec<(Bytes, &'static str)> {
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
        let scene = self.scene(i, night);
        let picture = Self::snapshot(&scene, kind);
        // Some people and vehicles come with a clip.
        let clip = (kind != "motion" && self.rng.next_f64() < CLIP_CHANCE)
            .then(|| Self::clip(&scene, kind));
        rows.clip.push(clip.as_deref().map(attachment_id));
        rows.time.push(time);
        rows.camera.push(id.to_string());
        rows.zone.push(zone);
        rows.kind.push(kind);
        rows.score.push((score * 100.0).round() / 100.0);
        rows.snapshot.push(attachment_id(&picture));
        let mut files = vec![(picture, "image/jpeg")];
        files.extend(clip.map(|c| (c, "image/gif")));
        files
    }

    /// Where an event happens: the camera's colours (dim at night), horizon, subject's place.
    fn scene(&mut self, camera: usize, night: bool) -> Scene {
        Scene {
            light: if night { 0.35 } else { 1.0 },
            hue: (camera * 37 % 100) as u8,
            horizon: 100 + (self.rng.next_u64() % 40) as u32,
            x: 20 + (self.rng.next_u64() % 200) as u32,
            base: 0,
        }
        .with_base(20 + (self.rng.next_u64() % 60) as u32)
    }

    /// The event's snapshot: a 320×240 JPEG of the scene with its subject.
    fn snapshot(scene: &Scene, kind: &str) -> Bytes {
        let img = scene.draw(kind, scene.x, WIDTH, HEIGHT);
        let mut out = vec![];
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70);
        encoder
            .write_image(img.as_raw(), WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
            .expect("an in-memory JPEG of a fixed size encodes");
        Bytes::from(out)
    }

    /// The event's clip: an animated GIF, 8 frames of the subject crossing the scene at half
    /// size (GIF plays in every browser; the bytes are a real animation, not a stand-in).
    fn clip(scene: &Scene, kind: &str) -> Bytes {
        let (w, h) = (WIDTH / 2, HEIGHT / 2);
        let half = Scene {
            horizon: scene.horizon / 2,
            base: scene.base / 2,
            x: scene.x / 2,
            ..*scene
        };
        let frames = (0..CLIP_FRAMES).map(|k| {
            let rgb = half.draw(kind, half.x.saturating_sub(20) + k * 6, w, h);
            let rgba = image::DynamicImage::ImageRgb8(rgb).into_rgba8();
            let delay = image::Delay::from_numer_denom_ms(150, 1);
            image::Frame::from_parts(rgba, 0, 0, delay)
        });
        let mut out = vec![];
        {
            let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
            encoder
                .set_repeat(image::codecs::gif::Repeat::Infinite)
                .and_then(|()| encoder.encode_frames(frames))
                .expect("an in-memory GIF of fixed frames encodes");
        }
        Bytes::from(out)
    }
}

const CLIP_FRAMES: u32 = 8;

/// A drawn scene: light (1 by day), the camera's hue, horizon, and where the subject stands.
#[derive(Clone, Copy)]
struct Scene {
    light: f64,
    hue: u8,
    horizon: u32,
    x: u32,
    base: u32,
}

impl Scene {
    fn with_base(self, below_horizon: u32) -> Self {
        Self {
            base: self.horizon + below_horizon,
            ..self
        }
    }

    fn shade(&self, c: [u8; 3]) -> Rgb<u8> {
        Rgb(c.map(|v| (v as f64 * self.light) as u8))
    }

    /// The scene `width`×`height` with `kind`'s figure at `x` (sizes scale with the width).
    fn draw(&self, kind: &str, x: u32, width: u32, height: u32) -> RgbImage {
        let (sky, ground) = (
            self.shade([120 + self.hue, 170, 220 - self.hue]),
            self.shade([90, 100 + self.hue / 2, 80]),
        );
        let mut img = RgbImage::from_fn(
            width,
            height,
            |_, y| {
                if y < self.horizon { sky } else { ground }
            },
        );
        let unit = |v: u32| v * width / WIDTH;
        let base = self.base;
        let mut fill = |x0: u32, y0: u32, w: u32, h: u32, color: Rgb<u8>| {
            for y in y0..(y0 + h).min(height) {
                for x in x0..(x0 + w).min(width) {
                    img.put_pixel(x, y, color);
                }
            }
        };
        match kind {
            "person" => {
                let (w, h) = (unit(16), unit(60));
                fill(x, base.saturating_sub(h), w, h, self.shade([200, 60, 40]));
                let head = unit(10);
                fill(
                    x + unit(3),
                    base.saturating_sub(h + unit(12)),
                    head,
                    head,
                    self.shade([230, 190, 160]),
                );
            }
            "vehicle" => {
                fill(
                    x,
                    base.saturating_sub(unit(30)),
                    unit(70),
                    unit(26),
                    self.shade([40, 70, 160]),
                );
                for wheel in [unit(8), unit(50)] {
                    fill(
                        x + wheel,
                        base.saturating_sub(unit(6)),
                        unit(12),
                        unit(6),
                        self.shade([20, 20, 20]),
                    );
                }
            }
            _ => {
                for k in 0..5 {
                    let y = base.saturating_sub(unit(40)) + unit(k * 4);
                    fill(
                        x + unit(k * 9),
                        y,
                        unit(30),
                        unit(2).max(1),
                        self.shade([240, 240, 240]),
                    );
                }
            }
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_own_pictures_and_clips_and_cam03_goes_quiet() {
        let now = 1_700_000_000_000_000_000_i64;
        let times: Vec<i64> = (0..240).map(|i| now - (240 - i) * 60_000_000_000).collect();
        let mut g = Pfcam::new(CAMERAS, 3, 0.2);
        let step = g.step(&times, now);
        let (_, events) = &step.batches[1];
        assert!(events.num_rows() > 10);
        let (snapshots, clips): (Vec<_>, Vec<_>) =
            step.pictures.iter().partition(|(_, t)| *t == "image/jpeg");
        assert_eq!(events.num_rows(), snapshots.len());
        let ids: std::collections::BTreeSet<String> = step
            .pictures
            .iter()
            .map(|(p, _)| attachment_id(p))
            .collect();
        assert_eq!(ids.len(), step.pictures.len(), "no two files alike");
        assert!(
            snapshots
                .iter()
                .all(|(p, _)| p.starts_with(&[0xFF, 0xD8, 0xFF]))
        );
        assert!(!clips.is_empty(), "some events have a clip");
        for (clip, _) in clips {
            let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(clip.to_vec()));
            let frames = decoder
                .and_then(|d| image::AnimationDecoder::into_frames(d).collect_frames())
                .unwrap();
            assert_eq!(frames.len(), CLIP_FRAMES as usize, "an animation");
        }
        let (_, cameras) = &step.batches[0];
        // cam-03 is quiet for the 179 steps after now - 3h.
        assert_eq!(cameras.num_rows(), 61 * CAMERAS + 179 * (CAMERAS - 1));
        let again = Pfcam::new(CAMERAS, 3, 0.2).step(&times, now);
        assert_eq!(again.pictures, step.pictures, "deterministic");
    }
}
