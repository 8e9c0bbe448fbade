//! Record and replay: a [`Recorder`] follows a state file (untyped, through a [`RawReader`])
//! and appends every version it observes to a log file of its own; a [`LogReader`] reads such a
//! log back, validating every byte; [`replay`] re-publishes a log's records into a new state
//! file of the same schema, at the recorded pace or faster.
//!
//! The log format and the decisions behind it are specified in `docs/FORMAT.md`, section 13.
//! In short: a 96-byte header (magic `MSRECLOG`, version, the state file's schema hash, payload
//! geometry and ring size), the state file's manifest bytes, then one record per captured
//! version (a 40-byte record header: version, commit time, how many versions were skipped since
//! the previous record, then the payload bytes), and, when the recording ended cleanly, a 40-byte
//! end record with the totals. Native byte order, like the state file whose payloads it holds.
//!
//! ```
//! use mapped_state::record::{LogReader, RecordLimits, Recorder};
//! use mapped_state::{MappedState, RawReader, Writer};
//!
//! #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
//! pub struct Counter { pub n: u64 }
//!
//! # let dir = std::env::temp_dir().join(format!("ms-doc-record-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let (state, log) = (dir.join("counter.state"), dir.join("counter.log"));
//! let mut w = Writer::<Counter>::create(&state, &Counter { n: 0 })?;
//! let mut rec = Recorder::create(RawReader::open(&state)?, &log)?;
//! rec.capture()?; // the current version: the recording's first record
//! for n in 1..=3 {
//!     w.publish(&Counter { n });
//!     rec.capture()?; // what is new since the last capture
//! }
//! let summary = rec.finish(mapped_state::record::EndReason::Stopped)?;
//! assert_eq!(summary.records + summary.skipped, 4);
//!
//! let mut log = LogReader::open(&log)?;
//! let versions: Vec<u64> = log.by_ref().map(|r| r.map(|r| r.version)).collect::<Result<_, _>>()?;
//! assert_eq!(versions.last(), Some(&3));
//! assert!(log.end().is_some(), "finished cleanly");
//! # drop(w); std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mapped_state::record::LogError>(())
//! ```
//!
//! [`RawReader`]: crate::RawReader

mod log;
mod recorder;
mod replay;

use std::path::PathBuf;

pub use self::log::{LogHeader, LogReader, Record};
pub use self::recorder::{RecordLimits, Recorder, DEFAULT_SPIN};
pub use self::replay::{replay, ReplayOptions, ReplaySummary, Replayer, Speed};

use crate::state::DecodeError;

/// The first 8 bytes of every log.
pub const LOG_MAGIC: [u8; 8] = *b"MSRECLOG";
/// The log format version this library reads and writes.
pub const LOG_VERSION: u32 = 1;
/// Length of a log's fixed header; the manifest follows it.
pub const LOG_HEADER_LEN: usize = 96;
/// Length of a record's header; the payload follows it.
pub const RECORD_HEADER_LEN: usize = 40;
/// Length of the end record.
pub const END_LEN: usize = 40;
/// The first 4 bytes of a record.
pub const RECORD_TAG: [u8; 4] = *b"RCRD";
/// The first 4 bytes of the end record.
pub const END_TAG: [u8; 4] = *b"ENDS";
/// Record flag: when the record was captured a newer version had already been committed, so its
/// commit time is that newer version's (an upper bound of its own). See `docs/FORMAT.md` 13.3.
pub const FLAG_FROM_HISTORY: u32 = 1;
/// Every record flag this version defines.
pub const KNOWN_FLAGS: u32 = FLAG_FROM_HISTORY;

/// Byte offsets of the log header's fields.
pub mod off {
    /// `[u8; 8]`: `MSRECLOG`.
    pub const MAGIC: usize = 0;
    /// `u32`: the log format version.
    pub const VERSION: usize = 8;
    /// `u32`: `0x01020304`, written natively.
    pub const ENDIAN: usize = 12;
    /// `u32`: 96.
    pub const HEADER_LEN: usize = 16;
    /// `u32`: 40.
    pub const RECORD_HEADER_LEN: usize = 20;
    /// `u64`: the recorded file's schema hash (FNV-1a 64 of the manifest).
    pub const SCHEMA_HASH: usize = 24;
    /// `u64`: payload size in bytes.
    pub const PAYLOAD_SIZE: usize = 32;
    /// `u64`: payload alignment.
    pub const PAYLOAD_ALIGN: usize = 40;
    /// `u64`: manifest length; the manifest starts at byte 96.
    pub const MANIFEST_LEN: usize = 48;
    /// `u64`: the recorded file's slot count.
    pub const SOURCE_SLOTS: usize = 56;
    /// `u64`: the recorded file's nonce.
    pub const SOURCE_NONCE: usize = 64;
    /// `u64`: when the recording started, nanoseconds since the Unix epoch.
    pub const STARTED: usize = 72;
    /// `[u8; 8]`: zero.
    pub const RESERVED: usize = 80;
    /// `u64`: FNV-1a 64 of bytes 0..88.
    pub const CHECKSUM: usize = 88;
}

/// Byte offsets inside a record header (from the record's first byte).
pub mod rec_off {
    /// `[u8; 4]`: `RCRD`.
    pub const TAG: usize = 0;
    /// `u32`: flags ([`FLAG_FROM_HISTORY`](super::FLAG_FROM_HISTORY)).
    pub const FLAGS: usize = 4;
    /// `u64`: the version recorded.
    pub const VERSION: usize = 8;
    /// `u64`: its commit time, nanoseconds since the Unix epoch.
    pub const COMMIT_TIME: usize = 16;
    /// `u64`: versions committed between the previous record's and this one, not captured.
    pub const SKIPPED: usize = 24;
    /// `u32`: payload length (the header's `payload_size`).
    pub const PAYLOAD_LEN: usize = 32;
    /// `[u8; 4]`: zero.
    pub const RESERVED: usize = 36;
}

/// Byte offsets inside the end record (from its first byte).
pub mod end_off {
    /// `[u8; 4]`: `ENDS`.
    pub const TAG: usize = 0;
    /// `u32`: why the recording ended ([`EndReason`](super::EndReason)).
    pub const REASON: usize = 4;
    /// `u64`: records in the log.
    pub const RECORDS: usize = 8;
    /// `u64`: versions skipped in total.
    pub const SKIPPED: usize = 16;
    /// `u64`: when the recording ended, nanoseconds since the Unix epoch.
    pub const ENDED: usize = 24;
    /// `u64`: FNV-1a 64 of the end record's bytes 0..32.
    pub const CHECKSUM: usize = 32;
}

/// Why a recording ended, as stored in its end record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The number of records asked for was captured.
    Count,
    /// The time asked for passed.
    Duration,
    /// No writer holds the recorded file any more.
    WriterGone,
    /// The recorded file was replaced at its path by a newer one.
    Superseded,
    /// The program recording stopped it (`Recorder::finish`).
    Stopped,
}

impl EndReason {
    /// The code stored in the end record.
    pub fn code(self) -> u32 {
        match self {
            EndReason::Count => 1,
            EndReason::Duration => 2,
            EndReason::WriterGone => 3,
            EndReason::Superseded => 4,
            EndReason::Stopped => 5,
        }
    }

    /// The reason stored as `code`, if it is one.
    pub fn from_code(code: u32) -> Option<EndReason> {
        Some(match code {
            1 => EndReason::Count,
            2 => EndReason::Duration,
            3 => EndReason::WriterGone,
            4 => EndReason::Superseded,
            5 => EndReason::Stopped,
            _ => return None,
        })
    }

    /// A short description (`"the writer is gone"`).
    pub fn describe(self) -> &'static str {
        match self {
            EndReason::Count => "the count asked for was recorded",
            EndReason::Duration => "the duration asked for passed",
            EndReason::WriterGone => "the writer is gone",
            EndReason::Superseded => "the file was replaced at its path",
            EndReason::Stopped => "stopped by the recording program",
        }
    }

    /// The identifier used in JSON (`"writer_gone"`).
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Count => "count",
            EndReason::Duration => "duration",
            EndReason::WriterGone => "writer_gone",
            EndReason::Superseded => "superseded",
            EndReason::Stopped => "stopped",
        }
    }
}

/// The totals of a recording: what the end record holds, or what a [`Recorder`] has captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSummary {
    /// Why the recording ended (`None` while it goes on).
    pub reason: Option<EndReason>,
    /// Records in the log.
    pub records: u64,
    /// Versions committed after the first record and not captured.
    pub skipped: u64,
    /// The first recorded version.
    pub first_version: Option<u64>,
    /// The last recorded version.
    pub last_version: Option<u64>,
    /// When the recording ended (nanoseconds since the Unix epoch), from the end record.
    pub ended_ns: Option<u64>,
}

/// An incomplete last record: what a recorder killed in the middle of writing it leaves (or a
/// log read while a recorder is still writing it). See [`LogReader::torn_tail`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// File offset where the incomplete record starts.
    pub offset: u64,
    /// Bytes present from there to the end of the file.
    pub have: u64,
    /// Bytes a complete record (or end record) would take.
    pub need: u64,
}

/// Everything that can go wrong recording, reading or replaying a log. Every variant names the
/// file; problems inside a log name the byte (file offset) and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An I/O operation on the log failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The log.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the log magic.
    #[error("{path}: not a mapped-state log (first bytes {found:02x?}, expected \"MSRECLOG\")")]
    NotALog {
        /// The file.
        path: PathBuf,
        /// Its first bytes (up to 8).
        found: Vec<u8>,
    },

    /// The log's format version is not one this library reads.
    #[error("{path}: log format version {found} is not supported (this library reads version {supported})")]
    UnsupportedVersion {
        /// The log.
        path: PathBuf,
        /// Version in the log.
        found: u32,
        /// Version this library reads and writes.
        supported: u32,
    },

    /// The log was written on a machine of the other byte order.
    #[error("{path}: log written with the other byte order (endian tag {found:#010x}); its payloads are native-endian and cannot be read here")]
    ForeignEndian {
        /// The log.
        path: PathBuf,
        /// The tag as read here.
        found: u32,
    },

    /// The file ends inside the log's header or manifest.
    #[error("{path}: log is {len} bytes long, its header and manifest need {need} (truncated?)")]
    TruncatedHeader {
        /// The log.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// Length its header and manifest need.
        need: u64,
    },

    /// A header field holds a value that cannot be right.
    #[error("{path}: corrupt log header: field `{field}` at byte {offset} is {found}, expected {expected}")]
    CorruptHeader {
        /// The log.
        path: PathBuf,
        /// The header field.
        field: &'static str,
        /// Its file offset.
        offset: u64,
        /// What it should hold.
        expected: String,
        /// What it holds.
        found: String,
    },

    /// The manifest in the log's header is malformed.
    #[error("{path}: corrupt schema manifest in the log at byte {offset} (manifest byte {manifest_offset}): {reason}")]
    CorruptManifest {
        /// The log.
        path: PathBuf,
        /// File offset of the bad byte.
        offset: u64,
        /// Offset inside the manifest.
        manifest_offset: usize,
        /// What is wrong.
        reason: String,
    },

    /// A record (or the end record) holds a value that cannot be right.
    #[error("{path}: corrupt record {record} at byte {offset}: field `{field}` is {found}, expected {expected}")]
    CorruptRecord {
        /// The log.
        path: PathBuf,
        /// Index of the record (0 for the first).
        record: u64,
        /// File offset of the bad field.
        offset: u64,
        /// The field.
        field: &'static str,
        /// What it should hold.
        expected: String,
        /// What it holds.
        found: String,
    },

    /// A record's payload is not a valid value of the log's schema.
    #[error(
        "{path}: record {record} (version {version}) at byte {offset}: invalid value: {source}"
    )]
    InvalidValue {
        /// The log.
        path: PathBuf,
        /// Index of the record.
        record: u64,
        /// Its version.
        version: u64,
        /// File offset of the invalid value.
        offset: u64,
        /// The field and its bytes (boxed: keeps every `Result` of this module small).
        #[source]
        source: Box<DecodeError>,
    },

    /// The log ends inside a record, and the reader was asked for a complete log
    /// ([`LogReader::require_complete`]).
    #[error("{path}: torn tail: the record at byte {} has {} of its {} bytes (a recorder was killed while writing it, or is still writing); the {records} records before it are complete", tail.offset, tail.have, tail.need)]
    TornTail {
        /// The log.
        path: PathBuf,
        /// Where and how much.
        tail: TornTail,
        /// Complete records before it.
        records: u64,
    },

    /// The log has no end record, and the reader was asked for a complete log.
    #[error("{path}: unfinished: the log ends after {records} records without an end record (its recorder was stopped without finishing, or is still running)")]
    Unfinished {
        /// The log.
        path: PathBuf,
        /// Records read.
        records: u64,
    },

    /// Bytes follow the end record.
    #[error("{path}: {len} bytes after the end record at byte {offset}")]
    TrailingBytes {
        /// The log.
        path: PathBuf,
        /// File offset of the first of them.
        offset: u64,
        /// How many.
        len: u64,
    },

    /// The state file being recorded, or the one being replayed into, failed.
    #[error(transparent)]
    State(#[from] crate::Error),
}

impl LogError {
    pub(crate) fn io(path: &std::path::Path, op: &'static str, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }
}

/// `u32` at `at` of `b`, native-endian.
pub(crate) fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `u64` at `at` of `b`, native-endian.
pub(crate) fn get64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// The end record of a recording of `records` records and `skipped` skipped versions that
/// ended (for `reason`) at `ended_ns`.
pub(crate) fn encode_end(
    reason: EndReason,
    records: u64,
    skipped: u64,
    ended_ns: u64,
) -> [u8; END_LEN] {
    let mut b = [0u8; END_LEN];
    b[..4].copy_from_slice(&END_TAG);
    put32(&mut b, end_off::REASON, reason.code());
    put64(&mut b, end_off::RECORDS, records);
    put64(&mut b, end_off::SKIPPED, skipped);
    put64(&mut b, end_off::ENDED, ended_ns);
    let sum = crate::schema::fnv1a64(&b[..end_off::CHECKSUM]);
    put64(&mut b, end_off::CHECKSUM, sum);
    b
}
