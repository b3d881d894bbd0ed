//! The spool: an append-only local file of length-prefixed, authenticated
//! records, in segments, for events the database has not taken yet.
//!
//! Segment layout: the 8 bytes `ZTSPOOL2`, then records of
//!
//! 1. the marker `FF 5A 54 52` (`\xffZTR`: `FF` never occurs in the JSON
//!    payloads, so the marker is found again after a damaged stretch);
//! 2. `u32 LE` payload length;
//! 3. `u32 LE` CRC-32 of the marker and the length, which tells a record
//!    header from stray bytes;
//! 4. the HMAC-SHA256 of `zt-audit-spool-record\0`, the length and the
//!    payload, under the spool key: a key derived from the chain key
//!    (`HMAC(chain key, "zt-audit-spool-key\0")`), which someone who can
//!    write the spool directory does not hold;
//! 5. the payload, a JSON-encoded [`AuditEvent`].
//!
//! Segments are named `zt-audit-spool-<20-digit id>.log` and replayed in id
//! order. A damaged record (a flipped byte, a torn tail, a record forged or
//! written under another key) is skipped alone: reading resumes at the next
//! marker, every intact record is replayed, and the segment is then moved to
//! `quarantine/` for inspection instead of being deleted. Segments of the
//! earlier unauthenticated format (`ZTSPOOL1`) and files whose names are not
//! segment names the spool hands out are quarantined unread.
//!
//! Files are created readable by their owner only (0600) in a directory
//! only its owner may enter (0700); a looser existing directory is
//! tightened, or refused when it is writable by others and cannot be.
//!
//! fsync policy: with `fsync` on, an append returns only after `fdatasync`
//! of the segment (concurrent appends share one sync), and a new segment's
//! directory entry is synced too, so a spooled event survives a power
//! failure. With it off, an append survives a process crash (the data is in
//! the kernel's page cache) but not a power failure.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zt_types::AuditEvent;

use crate::chain::Chain;
use crate::error::{Error, ErrorKind, Result};
use crate::key::ChainKey;

const MAGIC: &[u8; 8] = b"ZTSPOOL2";
/// The earlier format, whose records carry only a CRC.
const LEGACY_MAGIC: &[u8; 8] = b"ZTSPOOL1";
const HEADER: usize = 8;
const MARKER: [u8; 4] = [0xff, b'Z', b'T', b'R'];
/// Marker, length, header CRC, MAC.
const RECORD_HEADER: usize = 4 + 4 + 4 + 32;
/// A record larger than this is damaged: events are bounded far below it.
const MAX_RECORD: u32 = 4 * 1024 * 1024;
const PREFIX: &str = "zt-audit-spool-";
const SUFFIX: &str = ".log";
/// The largest segment id the spool hands out or replays; a name beyond it
/// is not one the spool wrote, and is quarantined.
const MAX_SEGMENT_ID: u64 = 999_999_999_999_999_999;
/// Where damaged segments are kept for inspection, inside the spool directory.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";
const KEY_LABEL: &[u8] = b"zt-audit-spool-key\0";
const RECORD_DOMAIN: &[u8] = b"zt-audit-spool-record\0";
/// How much a reader asks the file for at a time.
const CHUNK: usize = 64 * 1024;

/// The key that authenticates spool records, derived from the chain key.
#[derive(Clone)]
pub(crate) struct SpoolKey {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for SpoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpoolKey")
    }
}

impl SpoolKey {
    /// The spool key of the log whose chain is `chain`.
    pub(crate) fn derive(chain: &Chain) -> Self {
        let key = chain.derive_key(KEY_LABEL);
        // HMAC takes keys of any length, so this cannot fail.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        Self { keyed }
    }

    fn mac(&self, length: u32, payload: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(RECORD_DOMAIN);
        mac.update(&length.to_le_bytes());
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    fn verifies(&self, length: u32, payload: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.keyed.clone();
        mac.update(RECORD_DOMAIN);
        mac.update(&length.to_le_bytes());
        mac.update(payload);
        mac.verify_slice(tag).is_ok()
    }
}

fn header_crc(length: u32) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&MARKER);
    hasher.update(&length.to_le_bytes());
    hasher.finalize()
}

/// Encodes one record.
fn encode_record(key: &SpoolKey, event: &AuditEvent, out: &mut Vec<u8>) -> Result<()> {
    let payload = serde_json::to_vec(event)
        .map_err(|e| Error::new(ErrorKind::Spool, format!("cannot encode an event for the spool: {e}")))?;
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|length| *length <= MAX_RECORD)
        .ok_or_else(|| Error::new(ErrorKind::Spool, "an event is too large for the spool"))?;
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&header_crc(length).to_le_bytes());
    out.extend_from_slice(&key.mac(length, &payload));
    out.extend_from_slice(&payload);
    Ok(())
}

/// What was wrong with a stretch of a spool segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpoolDamageKind {
    /// The segment is of the earlier format, whose records carry no MAC: it
    /// is not replayed, since anyone who could write the directory could
    /// have written it.
    Unauthenticated,
    /// The segment's first 8 bytes are not a spool header.
    BadSegmentHeader,
    /// Bytes where a record should start, without a record marker.
    NoRecord,
    /// A record header whose checksum fails or whose length is impossible.
    BadRecordHeader,
    /// A record that the end of the file cuts short: a torn write.
    CutShort,
    /// A record whose MAC fails: damaged, forged, or written under another
    /// chain key.
    FailsAuthentication,
    /// An authentic record that does not decode as an event.
    Undecodable,
}

impl SpoolDamageKind {
    /// A sentence for the operator.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unauthenticated => "a segment of the earlier, unauthenticated spool format",
            Self::BadSegmentHeader => "the segment header is missing or wrong",
            Self::NoRecord => "bytes without a record marker",
            Self::BadRecordHeader => "a record header is damaged",
            Self::CutShort => "a record is cut short",
            Self::FailsAuthentication => {
                "a record fails authentication: damaged, forged, or written under another chain key"
            }
            Self::Undecodable => "an authenticated record does not decode as an event",
        }
    }
}

impl fmt::Display for SpoolDamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A damaged stretch of a spool segment, skipped when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolDamage {
    /// Where it starts, in bytes from the start of the segment.
    pub offset: u64,
    /// How many bytes it spans.
    pub length: u64,
    /// What was wrong at its start.
    pub kind: SpoolDamageKind,
}

/// What a spool segment holds, read as the pipeline's replay reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SpoolSegment {
    /// The events of every intact, authenticated record, in order.
    pub events: Vec<AuditEvent>,
    /// The damaged stretches skipped, in order; empty for an intact segment.
    pub damage: Vec<SpoolDamage>,
}

/// Reads a spool segment, such as one the pipeline moved to its
/// `quarantine/` folder, with the chain key of the log that wrote it. Only
/// records authenticated under that key are returned; every damaged stretch
/// is listed. Only reading `segment` can fail.
pub fn read_spool_segment(key: &ChainKey, segment: impl Read) -> Result<SpoolSegment> {
    read_records(&SpoolKey::derive(&Chain::new(key)), segment)
        .map_err(|e| Error::new(ErrorKind::Io, "cannot read the spool segment").with_source(e))
}

/// Encodes `events` as one spool segment, exactly as the pipeline writes
/// them under the chain key `key`: for tools that hand events to a
/// pipeline through its spool directory, and for tests.
pub fn encode_spool_segment(key: &ChainKey, events: &[AuditEvent]) -> Result<Vec<u8>> {
    let key = SpoolKey::derive(&Chain::new(key));
    let mut out = MAGIC.to_vec();
    for event in events {
        encode_record(&key, event, &mut out)?;
    }
    Ok(out)
}

/// A reader with a window over the file: never more than a record and a
/// chunk in memory.
struct Window<R> {
    reader: R,
    buffer: Vec<u8>,
    position: usize,
    /// The file offset of `buffer[0]`.
    base: u64,
    end: bool,
}

impl<R: Read> Window<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            buffer: Vec::new(),
            position: 0,
            base: 0,
            end: false,
        }
    }

    fn available(&self) -> usize {
        self.buffer.len() - self.position
    }

    fn offset(&self) -> u64 {
        self.base + self.position as u64
    }

    fn bytes(&self, count: usize) -> &[u8] {
        let end = (self.position + count).min(self.buffer.len());
        &self.buffer[self.position..end]
    }

    fn advance(&mut self, count: usize) {
        self.position = (self.position + count).min(self.buffer.len());
    }

    /// Reads until `count` bytes are available or the file ends.
    fn fill(&mut self, count: usize) -> std::io::Result<()> {
        while self.available() < count && !self.end {
            if self.position > 0 {
                self.buffer.drain(..self.position);
                self.base += self.position as u64;
                self.position = 0;
            }
            let want = (count - self.available()).max(CHUNK);
            let start = self.buffer.len();
            self.buffer.resize(start + want, 0);
            let read = loop {
                match self.reader.read(&mut self.buffer[start..]) {
                    Ok(read) => break read,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buffer.truncate(start);
                        return Err(e);
                    }
                }
            };
            self.buffer.truncate(start + read);
            if read == 0 {
                self.end = true;
            }
        }
        Ok(())
    }

    /// Moves past the current byte to the next record marker, or to the end.
    fn skip_to_marker(&mut self) -> std::io::Result<()> {
        self.advance(1);
        loop {
            self.fill(MARKER.len())?;
            if let Some(found) = self.buffer[self.position..]
                .windows(MARKER.len())
                .position(|window| window == MARKER)
            {
                self.advance(found);
                return Ok(());
            }
            if self.end {
                self.position = self.buffer.len();
                return Ok(());
            }
            // Keep a possible marker's start that the next chunk completes.
            let keep = (MARKER.len() - 1).min(self.available());
            self.position = self.buffer.len() - keep;
            self.fill(self.available() + CHUNK)?;
        }
    }

    /// Consumes the rest of the file.
    fn skip_to_end(&mut self) -> std::io::Result<()> {
        loop {
            self.position = self.buffer.len();
            self.fill(CHUNK)?;
            if self.end && self.available() == 0 {
                return Ok(());
            }
        }
    }
}

/// Damage being read through: where it started and why.
struct Stretch {
    open: Option<(u64, SpoolDamageKind)>,
    found: Vec<SpoolDamage>,
}

impl Stretch {
    fn begin(&mut self, offset: u64, kind: SpoolDamageKind) {
        if self.open.is_none() {
            self.open = Some((offset, kind));
        }
    }

    fn close(&mut self, offset: u64) {
        if let Some((start, kind)) = self.open.take() {
            self.found.push(SpoolDamage {
                offset: start,
                length: offset.saturating_sub(start),
                kind,
            });
        }
    }
}

/// Reads every intact, authenticated record of a segment, skipping each
/// damaged stretch to the next record marker.
fn read_records(key: &SpoolKey, reader: impl Read) -> std::io::Result<SpoolSegment> {
    let mut window = Window::new(reader);
    let mut events = Vec::new();
    let mut damage = Stretch {
        open: None,
        found: Vec::new(),
    };
    window.fill(HEADER)?;
    let header = window.bytes(HEADER);
    if header == LEGACY_MAGIC {
        window.skip_to_end()?;
        damage.begin(0, SpoolDamageKind::Unauthenticated);
        damage.close(window.offset());
        return Ok(SpoolSegment {
            events,
            damage: damage.found,
        });
    }
    if header == MAGIC {
        window.advance(HEADER);
    } else if header.is_empty() {
        // Created, then a crash before its header was written: nothing in it.
        return Ok(SpoolSegment::default());
    } else {
        // A flipped byte in the header loses none of the records after it.
        damage.begin(0, SpoolDamageKind::BadSegmentHeader);
        if window.bytes(MARKER.len()) != MARKER {
            window.skip_to_marker()?;
        }
    }
    loop {
        window.fill(RECORD_HEADER)?;
        let start = window.offset();
        if window.available() == 0 {
            break;
        }
        if window.bytes(MARKER.len()) != MARKER {
            let kind = if window.end && window.available() < RECORD_HEADER {
                SpoolDamageKind::CutShort
            } else {
                SpoolDamageKind::NoRecord
            };
            damage.begin(start, kind);
            window.skip_to_marker()?;
            continue;
        }
        if window.available() < RECORD_HEADER {
            damage.begin(start, SpoolDamageKind::CutShort);
            window.skip_to_end()?;
            break;
        }
        let head = window.bytes(RECORD_HEADER);
        let length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(&head[12..RECORD_HEADER]);
        if crc != header_crc(length) || length > MAX_RECORD {
            damage.begin(start, SpoolDamageKind::BadRecordHeader);
            window.skip_to_marker()?;
            continue;
        }
        let size = RECORD_HEADER + length as usize;
        window.fill(size)?;
        if window.available() < size {
            // Cut short, or a length that lies: records may still follow.
            damage.begin(start, SpoolDamageKind::CutShort);
            window.skip_to_marker()?;
            continue;
        }
        let payload = &window.bytes(size)[RECORD_HEADER..];
        if !key.verifies(length, payload, &tag) {
            damage.begin(start, SpoolDamageKind::FailsAuthentication);
            window.skip_to_marker()?;
            continue;
        }
        match serde_json::from_slice::<AuditEvent>(payload) {
            Ok(event) => {
                damage.close(start);
                events.push(event);
            }
            Err(_) => damage.begin(start, SpoolDamageKind::Undecodable),
        }
        window.advance(size);
    }
    damage.close(window.offset());
    Ok(SpoolSegment {
        events,
        damage: damage.found,
    })
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
    key: SpoolKey,
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

/// Opens a file for appending, created readable by its owner only.
pub(crate) fn private_file(path: &Path, create_new: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates `dir` (and its parents) only its owner may enter, or checks an
/// existing one: a looser mode is tightened to 0700, and a directory that
/// others may write and that cannot be tightened is refused.
fn private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| spool_error(format!("cannot create the spool directory {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = std::fs::metadata(dir)
            .map_err(|e| spool_error(format!("cannot read the spool directory {}", dir.display()), e))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                Ok(()) => tracing::warn!(target: "zt::audit", dir = %dir.display(), mode = format!("{mode:o}"),
                    "the spool directory was open to others; its mode is now 0700"),
                Err(error) if mode & 0o022 != 0 => {
                    return Err(spool_error(
                        format!(
                            "the spool directory {} is writable by others (mode {mode:o}) and cannot be made \
                             private; anyone who can write it could plant events. Use a directory only the \
                             service's user can write",
                            dir.display()
                        ),
                        error,
                    ));
                }
                Err(error) => tracing::warn!(target: "zt::audit", dir = %dir.display(), mode = format!("{mode:o}"),
                    error = %error, "the spool directory is readable by others and cannot be made private"),
            }
        }
    }
    Ok(())
}

/// Makes an existing file readable by its owner only, where it is not.
fn tighten_file(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
            && let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(target: "zt::audit", path = %path.display(), error = %error,
                "a spool file is readable by others and cannot be made private");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A file in the spool directory.
enum Entry {
    /// A segment the spool hands out, by id.
    Segment(u64, PathBuf),
    /// A file named like a segment whose name the spool never hands out.
    Malformed(PathBuf),
}

/// Parses a segment name: the prefix, exactly 20 digits, the suffix, and
/// an id in `1..=MAX_SEGMENT_ID`.
fn segment_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|id| (1..=MAX_SEGMENT_ID).contains(id))
}

impl Spool {
    /// Opens `dir`, creating it if needed. Existing segments are sealed, to
    /// be replayed; new records go to a new segment. Files named like
    /// segments whose names the spool never hands out are quarantined;
    /// returns how many.
    pub(crate) fn open(dir: &Path, key: SpoolKey, fsync: bool, segment_bytes: u64) -> Result<(Self, u64)> {
        private_dir(dir)?;
        let mut sealed = BTreeMap::new();
        let mut malformed = Vec::new();
        for entry in list_entries(dir)? {
            match entry {
                Entry::Segment(id, path) => {
                    tighten_file(&path);
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
                Entry::Malformed(path) => malformed.push(path),
            }
        }
        let next_id = sealed.keys().next_back().map_or(1, |id| id + 1);
        let spool = Self {
            dir: dir.to_owned(),
            key,
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
        };
        let mut quarantined = 0;
        for path in malformed {
            let kept = spool.move_to_quarantine(&path);
            quarantined += 1;
            match kept {
                Ok(to) => tracing::warn!(target: "zt::audit", path = %path.display(), quarantined_to = %to.display(),
                    "a file named like a spool segment, with a name the spool never hands out, was set aside unread"),
                Err(error) => tracing::error!(target: "zt::audit", path = %path.display(), error = %error,
                    "a file named like a spool segment, with a name the spool never hands out, is ignored; \
                     it could not be set aside"),
            }
        }
        Ok((spool, quarantined))
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id:020}{SUFFIX}"))
    }

    /// Appends events; returns the segment they went to. With fsync on, they
    /// are on disk when this returns.
    pub(crate) fn append(&self, events: &[&AuditEvent]) -> Result<u64> {
        let mut buffer = Vec::with_capacity(events.len() * 600);
        for event in events {
            encode_record(&self.key, event, &mut buffer)?;
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
                if id > MAX_SEGMENT_ID {
                    return Err(Error::new(
                        ErrorKind::Spool,
                        format!(
                            "the spool in {} has used every segment id; move its segments away",
                            self.dir.display()
                        ),
                    ));
                }
                let path = self.segment_path(id);
                let mut file = private_file(&path, true)
                    .map_err(|e| spool_error(format!("cannot create spool segment {}", path.display()), e))?;
                file.write_all(MAGIC)
                    .map_err(|e| spool_error(format!("cannot write spool segment {}", path.display()), e))?;
                if self.fsync {
                    file.sync_data()
                        .map_err(|e| spool_error(format!("cannot sync {}", path.display()), e))?;
                    sync_dir(&self.dir)?;
                }
                state.next_id = id + 1;
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
                return Err(spool_error(format!("cannot write spool segment {}", path.display()), e));
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

    /// Reads a sealed segment: its authenticated events, and its damage.
    pub(crate) fn read(&self, segment: u64) -> Result<SpoolSegment> {
        let path = self.segment_path(segment);
        let file =
            File::open(&path).map_err(|e| spool_error(format!("cannot open spool segment {}", path.display()), e))?;
        read_records(&self.key, std::io::BufReader::new(file))
            .map_err(|e| spool_error(format!("cannot read spool segment {}", path.display()), e))
    }

    /// Deletes a replayed segment.
    pub(crate) fn remove(&self, segment: u64) {
        lock(&self.state).sealed.remove(&segment);
        let _ = std::fs::remove_file(self.segment_path(segment));
    }

    /// Moves a replayed, damaged segment to `quarantine/`; returns where it
    /// went. If it cannot be moved it stays, and is read again at the next
    /// start (its events are then found stored, and skipped).
    pub(crate) fn quarantine(&self, segment: u64) -> Result<PathBuf> {
        lock(&self.state).sealed.remove(&segment);
        self.move_to_quarantine(&self.segment_path(segment))
    }

    /// The folder damaged segments are kept in.
    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.dir.join(QUARANTINE_DIR)
    }

    fn move_to_quarantine(&self, path: &Path) -> Result<PathBuf> {
        let folder = self.quarantine_dir();
        private_dir(&folder)?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Never replace a segment already kept: ids are reused once the spool empties.
        let mut target = folder.join(&name);
        let mut attempt = 1u32;
        while target.exists() {
            target = folder.join(format!("{name}.{attempt}"));
            attempt += 1;
        }
        std::fs::rename(path, &target)
            .map_err(|e| spool_error(format!("cannot move {} to {}", path.display(), target.display()), e))?;
        if self.fsync {
            sync_dir(&folder)?;
            sync_dir(&self.dir)?;
        }
        Ok(target)
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

fn list_entries(dir: &Path) -> Result<Vec<Entry>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| spool_error(format!("cannot read the spool directory {}", dir.display()), e))?;
    let mut segments = Vec::new();
    let mut malformed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let path = entry.path();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !name.starts_with(PREFIX) || !name.ends_with(SUFFIX) || !path.is_file() {
            continue;
        }
        match segment_id(name) {
            Some(id) => segments.push((id, path)),
            None => malformed.push(Entry::Malformed(path)),
        }
    }
    segments.sort();
    let mut found: Vec<Entry> = segments
        .into_iter()
        .map(|(id, path)| Entry::Segment(id, path))
        .collect();
    found.extend(malformed);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zt_types::Actor;

    fn key() -> ChainKey {
        ChainKey::from_bytes(&(9..9 + 32).collect::<Vec<u8>>()).unwrap()
    }

    fn events(count: usize) -> Vec<AuditEvent> {
        (0..count)
            .map(|i| {
                AuditEvent::builder(Actor::System, "SPOOL_TEST", "tests")
                    .resource_id(i)
                    .build()
                    .unwrap()
            })
            .collect()
    }

    fn read(bytes: &[u8]) -> SpoolSegment {
        read_spool_segment(&key(), bytes).unwrap()
    }

    /// The byte offsets at which each record starts.
    fn record_starts(bytes: &[u8]) -> Vec<usize> {
        (HEADER..bytes.len().saturating_sub(3))
            .filter(|&i| bytes[i..i + 4] == MARKER)
            .collect()
    }

    #[test]
    fn round_trip() {
        let written = events(5);
        let bytes = encode_spool_segment(&key(), &written).unwrap();
        let segment = read(&bytes);
        assert_eq!(segment.events, written);
        assert!(segment.damage.is_empty());
    }

    #[test]
    fn any_flipped_byte_loses_at_most_its_own_record() {
        let written = events(4);
        let bytes = encode_spool_segment(&key(), &written).unwrap();
        let starts = record_starts(&bytes);
        assert_eq!(starts.len(), 4);
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x5a;
            let segment = read(&damaged);
            let hit = starts.iter().rposition(|&start| start <= position);
            let expected: Vec<AuditEvent> = written
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != hit)
                .map(|(_, event)| event.clone())
                .collect();
            assert_eq!(segment.events, expected, "flipping byte {position}");
            assert_eq!(
                segment.damage.len(),
                1,
                "flipping byte {position}: {:?}",
                segment.damage
            );
        }
    }

    #[test]
    fn torn_tails_and_truncations_keep_every_whole_record() {
        let written = events(3);
        let bytes = encode_spool_segment(&key(), &written).unwrap();
        let starts = record_starts(&bytes);
        for cut in HEADER..bytes.len() {
            let segment = read(&bytes[..cut]);
            let whole = starts
                .iter()
                .enumerate()
                .filter(|(i, _)| starts.get(i + 1).copied().unwrap_or(bytes.len()) <= cut)
                .count();
            assert_eq!(segment.events, written[..whole], "cut at {cut}");
            let torn = !starts.contains(&cut);
            assert_eq!(segment.damage.len(), usize::from(torn), "cut at {cut}");
        }
    }

    #[test]
    fn records_under_another_key_or_format_are_refused() {
        let written = events(2);
        let stranger = ChainKey::from_bytes(&(10..10 + 32).collect::<Vec<u8>>()).unwrap();
        let forged = encode_spool_segment(&stranger, &written).unwrap();
        let segment = read(&forged);
        assert!(segment.events.is_empty());
        assert_eq!(segment.damage.len(), 1);
        assert_eq!(segment.damage[0].kind, SpoolDamageKind::FailsAuthentication);

        let mut legacy = LEGACY_MAGIC.to_vec();
        legacy.extend_from_slice(&[1, 2, 3]);
        let segment = read(&legacy);
        assert!(segment.events.is_empty());
        assert_eq!(segment.damage[0].kind, SpoolDamageKind::Unauthenticated);
        assert_eq!(segment.damage[0].length, 11);

        // A forged record between genuine ones is skipped alone.
        let genuine = encode_spool_segment(&key(), &written).unwrap();
        let starts = record_starts(&genuine);
        let mut mixed = genuine[..starts[1]].to_vec();
        mixed.extend_from_slice(&forged[HEADER..]);
        mixed.extend_from_slice(&genuine[starts[1]..]);
        let segment = read(&mixed);
        assert_eq!(segment.events, written);
        assert_eq!(segment.damage.len(), 1);
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_id("zt-audit-spool-00000000000000000007.log"), Some(7));
        for bad in [
            "zt-audit-spool-18446744073709551615.log",
            "zt-audit-spool-00000000000000000000.log",
            "zt-audit-spool-7.log",
            "zt-audit-spool-+0000000000000000007.log",
            "zt-audit-spool-0000000000000000000x.log",
            "zt-audit-spool-000000000000000000007.log",
        ] {
            assert_eq!(segment_id(bad), None, "{bad}");
        }
    }
}
