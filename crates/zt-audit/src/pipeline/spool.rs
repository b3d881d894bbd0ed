//! The spool: an append-only local file of length-prefixed, checksummed
//! records, in segments, for events the database has not taken yet.
//!
//! Segment layout: the 8 bytes `ZTSPOOL1`, then records of
//! `u32 LE payload length`, `u32 LE CRC-32 of the payload`, and the payload, a
//! JSON-encoded [`AuditEvent`]. Segments are named
//! `zt-audit-spool-<20-digit id>.log` and replayed in id order.
//!
//! fsync policy: with `fsync` on, an append returns only after `fdatasync`
//! of the segment (concurrent appends share one sync), and a new segment's
//! directory entry is synced too, so a spooled event survives a power
//! failure. With it off, an append survives a process crash (the data is in
//! the kernel's page cache) but not a power failure.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use zt_types::AuditEvent;

use crate::error::{Error, ErrorKind, Result};

const MAGIC: &[u8; 8] = b"ZTSPOOL1";
const HEADER: usize = 8;
/// A record larger than this is corrupt: events are bounded far below it.
const MAX_RECORD: u32 = 4 * 1024 * 1024;
const PREFIX: &str = "zt-audit-spool-";

/// Why reading a segment stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Where the good records end.
    pub offset: u64,
    /// What was wrong after that.
    pub reason: String,
}

/// The records of one segment that could be read.
#[derive(Debug)]
pub(crate) struct SegmentRead {
    pub(crate) events: Vec<AuditEvent>,
    pub(crate) torn: Option<TornTail>,
}

struct Active {
    id: u64,
    file: File,
    bytes: u64,
    records: u64,
}

struct SealedInfo {
    records: u64,
    committed: u64,
    bytes: u64,
}

struct State {
    active: Option<Active>,
    sealed: BTreeMap<u64, SealedInfo>,
    next_id: u64,
    /// Records in the active segment that were committed from the queue.
    active_committed: u64,
}

/// The spool directory.
pub(crate) struct Spool {
    dir: PathBuf,
    fsync: bool,
    segment_bytes: u64,
    state: Mutex<State>,
    /// The `(segment, offset)` known to be on disk, for shared syncs.
    durable: Mutex<(u64, u64)>,
    sync_lock: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn spool_error(message: String, source: std::io::Error) -> Error {
    Error::new(ErrorKind::Spool, message).with_source(source)
}

impl Spool {
    /// Opens `dir`, creating it if needed. Existing segments are sealed, to
    /// be replayed; new records go to a new segment.
    pub(crate) fn open(dir: &Path, fsync: bool, segment_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| spool_error(format!("cannot create the spool directory {}", dir.display()), e))?;
        let mut sealed = BTreeMap::new();
        for (id, path) in list_segments(dir)? {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            // Records are counted when the segment is replayed.
            sealed.insert(
                id,
                SealedInfo {
                    records: u64::MAX,
                    committed: 0,
                    bytes,
                },
            );
        }
        let next_id = sealed.keys().next_back().map_or(1, |id| id + 1);
        Ok(Self {
            dir: dir.to_owned(),
            fsync,
            segment_bytes,
            state: Mutex::new(State {
                active: None,
                sealed,
                next_id,
                active_committed: 0,
            }),
            durable: Mutex::new((0, 0)),
            sync_lock: Mutex::new(()),
        })
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id:020}.log"))
    }

    /// Appends events; returns the segment they went to. With fsync on, they
    /// are on disk when this returns.
    pub(crate) fn append(&self, events: &[&AuditEvent]) -> Result<u64> {
        let mut buffer = Vec::with_capacity(events.len() * 512);
        for event in events {
            let payload = serde_json::to_vec(event)
                .map_err(|e| Error::new(ErrorKind::Spool, format!("cannot encode an event for the spool: {e}")))?;
            let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            buffer.extend_from_slice(&length.to_le_bytes());
            buffer.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            buffer.extend_from_slice(&payload);
        }
        let (segment, end) = {
            let mut state = lock(&self.state);
            if state
                .active
                .as_ref()
                .is_some_and(|active| active.bytes >= self.segment_bytes)
            {
                self.seal_active(&mut state)?;
            }
            if state.active.is_none() {
                let id = state.next_id;
                let path = self.segment_path(id);
                let mut file = OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| spool_error(format!("cannot create spool segment {}", path.display()), e))?;
                file.write_all(MAGIC)
                    .map_err(|e| spool_error(format!("cannot write spool segment {}", path.display()), e))?;
                if self.fsync {
                    file.sync_data()
                        .map_err(|e| spool_error(format!("cannot sync {}", path.display()), e))?;
                    sync_dir(&self.dir)?;
                }
                state.next_id += 1;
                state.active_committed = 0;
                state.active = Some(Active {
                    id,
                    file,
                    bytes: HEADER as u64,
                    records: 0,
                });
            }
            let Some(active) = state.active.as_mut() else {
                return Err(Error::new(ErrorKind::Spool, "no active spool segment"));
            };
            if let Err(e) = active.file.write_all(&buffer) {
                let path = self.segment_path(active.id);
                // A partial write leaves a torn tail, which replay detects and
                // skips; later records go to a fresh segment.
                let id = active.id;
                let bytes = active.bytes;
                state.active = None;
                state.sealed.insert(
                    id,
                    SealedInfo {
                        records: u64::MAX,
                        committed: 0,
                        bytes,
                    },
                );
                return Err(spool_error(
                    format!("cannot write spool segment {}: {e}", path.display()),
                    e,
                ));
            }
            active.bytes += buffer.len() as u64;
            active.records += events.len() as u64;
            (active.id, active.bytes)
        };
        if self.fsync {
            self.sync_to(segment, end)?;
        }
        Ok(segment)
    }

    /// Makes everything up to `(segment, end)` durable, sharing the sync with
    /// concurrent appenders.
    fn sync_to(&self, segment: u64, end: u64) -> Result<()> {
        let covered = |durable: &(u64, u64)| durable.0 > segment || (durable.0 == segment && durable.1 >= end);
        let _sync = lock(&self.sync_lock);
        if covered(&lock(&self.durable)) {
            return Ok(());
        }
        let (file, id, written) = {
            let state = lock(&self.state);
            match &state.active {
                Some(active) if active.id == segment => {
                    let file = active
                        .file
                        .try_clone()
                        .map_err(|e| spool_error("cannot sync the spool".to_owned(), e))?;
                    (Some(file), active.id, active.bytes)
                }
                // The segment was sealed, and sealing synced it.
                _ => (None, segment, end),
            }
        };
        if let Some(file) = file {
            file.sync_data()
                .map_err(|e| spool_error("cannot sync the spool".to_owned(), e))?;
        }
        let mut durable = lock(&self.durable);
        if (id, written) > *durable {
            *durable = (id, written);
        }
        Ok(())
    }

    fn seal_active(&self, state: &mut State) -> Result<()> {
        if let Some(active) = state.active.take() {
            if self.fsync {
                active
                    .file
                    .sync_data()
                    .map_err(|e| spool_error("cannot sync the spool".to_owned(), e))?;
            }
            let committed = state.active_committed;
            if committed >= active.records {
                let _ = std::fs::remove_file(self.segment_path(active.id));
            } else {
                state.sealed.insert(
                    active.id,
                    SealedInfo {
                        records: active.records,
                        committed,
                        bytes: active.bytes,
                    },
                );
            }
            state.active_committed = 0;
        }
        Ok(())
    }

    /// Seals the active segment so that replay covers everything appended so far.
    pub(crate) fn rotate(&self) -> Result<()> {
        let mut state = lock(&self.state);
        self.seal_active(&mut state)
    }

    /// Notes that `count` records of `segment` reached the database through
    /// the queue; a sealed segment whose records all did is deleted.
    pub(crate) fn committed(&self, segment: u64, count: u64) {
        let mut state = lock(&self.state);
        if state.active.as_ref().is_some_and(|active| active.id == segment) {
            state.active_committed += count;
            return;
        }
        let done = match state.sealed.get_mut(&segment) {
            Some(info) => {
                info.committed += count;
                info.committed >= info.records
            }
            None => false,
        };
        if done {
            state.sealed.remove(&segment);
            let _ = std::fs::remove_file(self.segment_path(segment));
        }
    }

    /// The sealed segments, oldest first.
    pub(crate) fn sealed(&self) -> Vec<u64> {
        lock(&self.state).sealed.keys().copied().collect()
    }

    /// Whether anything is waiting in sealed segments.
    pub(crate) fn has_sealed(&self) -> bool {
        !lock(&self.state).sealed.is_empty()
    }

    /// Reads a sealed segment.
    pub(crate) fn read(&self, segment: u64) -> Result<SegmentRead> {
        read_segment(&self.segment_path(segment))
    }

    /// Deletes a replayed segment.
    pub(crate) fn remove(&self, segment: u64) {
        lock(&self.state).sealed.remove(&segment);
        let _ = std::fs::remove_file(self.segment_path(segment));
    }

    /// Bytes on disk in all segments.
    pub(crate) fn bytes(&self) -> u64 {
        let state = lock(&self.state);
        state.sealed.values().map(|info| info.bytes).sum::<u64>() + state.active.as_ref().map_or(0, |a| a.bytes)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| spool_error(format!("cannot sync the spool directory {}", dir.display()), e))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| spool_error(format!("cannot read the spool directory {}", dir.display()), e))?;
    let mut segments: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let id = name
                .to_str()?
                .strip_prefix(PREFIX)?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((id, entry.path()))
        })
        .collect();
    segments.sort();
    Ok(segments)
}

/// Reads every good record of a segment, stopping at the first damaged one.
pub(crate) fn read_segment(path: &Path) -> Result<SegmentRead> {
    let file = File::open(path).map_err(|e| spool_error(format!("cannot open spool segment {}", path.display()), e))?;
    let mut reader = BufReader::new(file);
    let mut events = Vec::new();
    let torn = |offset: u64, reason: &str| {
        Some(TornTail {
            path: path.to_owned(),
            offset,
            reason: reason.to_owned(),
        })
    };
    let mut magic = [0u8; HEADER];
    if reader.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Ok(SegmentRead {
            events,
            torn: torn(0, "the segment header is missing or wrong"),
        });
    }
    let mut offset = HEADER as u64;
    loop {
        let mut prefix = [0u8; 8];
        match read_full(&mut reader, &mut prefix) {
            Ok(0) => return Ok(SegmentRead { events, torn: None }),
            Ok(8) => {}
            Ok(_) => {
                return Ok(SegmentRead {
                    events,
                    torn: torn(offset, "a record header is cut short"),
                });
            }
            Err(e) => {
                return Err(spool_error(
                    format!("cannot read spool segment {}: {e}", path.display()),
                    e,
                ));
            }
        }
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let checksum = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        if length > MAX_RECORD {
            return Ok(SegmentRead {
                events,
                torn: torn(offset, "a record length is impossible"),
            });
        }
        let mut payload = vec![0u8; length as usize];
        match read_full(&mut reader, &mut payload) {
            Ok(read) if read == payload.len() => {}
            Ok(_) => {
                return Ok(SegmentRead {
                    events,
                    torn: torn(offset, "a record is cut short"),
                });
            }
            Err(e) => {
                return Err(spool_error(
                    format!("cannot read spool segment {}: {e}", path.display()),
                    e,
                ));
            }
        }
        if crc32fast::hash(&payload) != checksum {
            return Ok(SegmentRead {
                events,
                torn: torn(offset, "a record fails its checksum"),
            });
        }
        match serde_json::from_slice::<AuditEvent>(&payload) {
            Ok(event) => events.push(event),
            Err(_) => {
                return Ok(SegmentRead {
                    events,
                    torn: torn(offset, "a record does not decode"),
                });
            }
        }
        offset += 8 + u64::from(length);
    }
}

/// Reads until `buffer` is full or the file ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
