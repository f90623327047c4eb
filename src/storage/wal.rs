//! Write-ahead log segments: the on-disk form of acknowledged writes that are not yet in
//! Parquet. Each table has its own folder of numbered segments; a record is
//! `len: u32 LE | crc32(payload): u32 LE | payload` where the payload is one Arrow IPC stream
//! holding one RecordBatch. At start, a record whose length or checksum does not hold marks a
//! torn tail: the segment is cut there and everything before it is replayed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

const MAGIC: &[u8; 8] = b"OPSWAL1\n";
const RECORD_HEADER: usize = 8;
/// A length above this is certainly garbage from a torn write, not a real record.
const MAX_RECORD_BYTES: u32 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WAL record encoding failed: {0}")]
    Encode(#[from] arrow::error::ArrowError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Serialises one batch into a framed, checksummed WAL record.
pub fn encode_record(batch: &RecordBatch) -> Result<Vec<u8>, WalError> {
    let mut payload = Vec::with_capacity(batch.get_array_memory_size() / 2 + 256);
    {
        let mut writer = StreamWriter::try_new(&mut payload, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    let mut record = Vec::with_capacity(payload.len() + RECORD_HEADER);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    Ok(record)
}

fn decode_payload(payload: &[u8]) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let reader = StreamReader::try_new(payload, None)?;
    reader.collect()
}

pub fn segment_file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// Segment numbers present in `dir`, ascending. A missing folder has none.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut segments = vec![];
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            segments.push((seq, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// What replaying one segment found.
#[derive(Debug, Default)]
pub struct SegmentReplay {
    pub batches: Vec<RecordBatch>,
    /// Set when the segment ended in a torn or corrupt record: the byte offset of the last good
    /// record's end and why the next one was rejected.
    pub torn_at: Option<(u64, String)>,
}

/// Reads every intact record of a segment. Never fails on bad content, only on I/O.
pub fn read_segment(path: &Path) -> Result<SegmentReplay, WalError> {
    let mut bytes = vec![];
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    Ok(decode_segment(&bytes))
}

/// A segment (file or object) holding `records`, each from [`encode_record`].
pub fn encode_segment<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    for record in records {
        bytes.extend_from_slice(record);
    }
    bytes
}

/// Every intact record of a segment's bytes, and where (and why) the first bad one starts.
pub fn decode_segment(bytes: &[u8]) -> SegmentReplay {
    let mut replay = SegmentReplay::default();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        replay.torn_at = Some((0, "missing segment header".into()));
        return replay;
    }
    let mut pos = MAGIC.len();
    while pos < bytes.len() {
        let problem = match bytes.get(pos..pos + RECORD_HEADER) {
            None => Some("truncated record header".to_string()),
            Some(header) => {
                let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                let start = pos + RECORD_HEADER;
                match bytes.get(start..start + len as usize) {
                    _ if len > MAX_RECORD_BYTES => Some(format!("implausible record length {len}")),
                    None => Some(format!("record of {len} bytes cut short")),
                    Some(payload) if crc32fast::hash(payload) != crc => {
                        Some("checksum mismatch".to_string())
                    }
                    Some(payload) => match decode_payload(payload) {
                        Ok(batches) => {
                            replay.batches.extend(batches);
                            pos = start + len as usize;
                            None
                        }
                        Err(e) => Some(format!("undecodable record: {e}")),
                    },
                }
            }
        };
        if let Some(reason) = problem {
            replay.torn_at = Some((pos as u64, reason));
            break;
        }
    }
    replay
}

/// Cuts a segment at `offset`, the end of its last intact record, and syncs it.
pub fn truncate_segment(path: &Path, offset: u64) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let offset = offset.max(MAGIC.len() as u64);
    if file.metadata().map_err(io_err(path))?.len() < offset {
        // The header itself was torn: rewrite it so the segment is valid and empty.
        drop(file);
        return create_empty(path).map(|_| ());
    }
    file.set_len(offset).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn create_empty(path: &Path) -> Result<File, WalError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(MAGIC).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(file)
}

/// Makes a newly created file's directory entry durable.
fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// The segment a table currently appends to.
#[derive(Debug)]
pub struct ActiveSegment {
    path: PathBuf,
    file: File,
    dirty: bool,
}

impl ActiveSegment {
    /// Creates segment `seq` in `dir` (creating the folder), durable before it returns.
    pub fn create(dir: &Path, seq: u64) -> Result<Self, WalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(segment_file_name(seq));
        let file = create_empty(&path)?;
        sync_dir(dir)?;
        Ok(Self {
            path,
            file,
            dirty: false,
        })
    }

    pub fn append(&mut self, record: &[u8]) -> Result<(), WalError> {
        self.dirty = true;
        self.file.write_all(record).map_err(io_err(&self.path))
    }

    /// fdatasync if anything was appended since the last sync.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.file.sync_data().map_err(io_err(&self.path))?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![v, v + 1])),
                Arc::new(Float64Array::from(vec![0.5, 1.5])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn replays_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = ActiveSegment::create(dir.path(), 7).unwrap();
        for i in 0..3 {
            seg.append(&encode_record(&batch(i)).unwrap()).unwrap();
        }
        seg.sync().unwrap();
        let segments = list_segments(dir.path()).unwrap();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].0, 7);
        let replay = read_segment(&segments[0].1).unwrap();
        assert_eq!(replay.batches.len(), 3);
        assert!(replay.torn_at.is_none());
    }

    #[test]
    fn every_truncation_point_keeps_the_intact_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = ActiveSegment::create(dir.path(), 1).unwrap();
        let records: Vec<Vec<u8>> = (0..3).map(|i| encode_record(&batch(i)).unwrap()).collect();
        for r in &records {
            seg.append(r).unwrap();
        }
        seg.sync().unwrap();
        let full = std::fs::read(&seg.path).unwrap();
        let first_end = MAGIC.len() + records[0].len();
        for cut in (first_end..full.len()).step_by(7) {
            let path = dir.path().join("cut.wal");
            std::fs::write(&path, &full[..cut]).unwrap();
            let replay = read_segment(&path).unwrap();
            let expected = (cut - MAGIC.len()) / records[0].len();
            assert_eq!(replay.batches.len(), expected, "cut at {cut}");
        }
    }

    #[test]
    fn flipped_bit_is_detected_by_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = ActiveSegment::create(dir.path(), 1).unwrap();
        seg.append(&encode_record(&batch(1)).unwrap()).unwrap();
        seg.append(&encode_record(&batch(2)).unwrap()).unwrap();
        seg.sync().unwrap();
        let mut bytes = std::fs::read(&seg.path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        std::fs::write(&seg.path, &bytes).unwrap();
        let replay = read_segment(&seg.path).unwrap();
        assert_eq!(replay.batches.len(), 1);
        let (offset, reason) = replay.torn_at.unwrap();
        assert_eq!(reason, "checksum mismatch");
        truncate_segment(&seg.path, offset).unwrap();
        assert_eq!(std::fs::metadata(&seg.path).unwrap().len(), offset);
    }
}
