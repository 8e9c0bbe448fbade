//! The log's bytes: encoding its header, and [`LogReader`], which validates a log of unknown
//! origin byte by byte (bounded by the file's length, never panicking) and yields its records.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{
    end_off, get32, get64, off, put32, put64, rec_off, EndReason, LogError, LogSummary, TornTail,
    END_LEN, END_TAG, KNOWN_FLAGS, LOG_HEADER_LEN, LOG_MAGIC, LOG_VERSION, RECORD_HEADER_LEN,
    RECORD_TAG,
};
use crate::format::{ENDIAN_TAG, MAX_ALIGN, MAX_MANIFEST, MAX_PAYLOAD};
use crate::manifest::Type;

/// A log's header: the recorded file's schema (manifest and hash), payload geometry and
/// identity, and when the recording started.
#[derive(Clone, Debug)]
pub struct LogHeader {
    /// The recorded file's schema hash (FNV-1a 64 of the manifest).
    pub schema_hash: u64,
    /// Bytes per payload.
    pub payload_size: u64,
    /// Payload alignment.
    pub payload_align: u64,
    /// Slots in the recorded file's ring (`replay` creates its file with as many by default).
    pub source_slots: u64,
    /// The recorded file's nonce (`Header::nonce`): which file at its path was recorded.
    pub source_nonce: u64,
    /// When the recording started, nanoseconds since the Unix epoch.
    pub started_ns: u64,
    manifest: Box<[u8]>,
    schema: Type,
}

impl LogHeader {
    /// A header for recording `r`, starting now.
    pub(crate) fn of(r: &crate::RawReader) -> LogHeader {
        let h = r.header();
        LogHeader {
            schema_hash: h.schema_hash,
            payload_size: h.payload_size,
            payload_align: h.payload_align,
            source_slots: h.slot_count,
            source_nonce: h.nonce,
            started_ns: crate::notify::wall_ns(),
            manifest: r.manifest().into(),
            schema: r.schema().clone(),
        }
    }

    /// The recorded file's manifest bytes.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The recorded type, decoded from the manifest.
    pub fn schema(&self) -> &Type {
        &self.schema
    }

    /// When the recording started.
    pub fn started(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.started_ns)
    }

    /// File offset of the first record: right after the manifest.
    pub fn records_offset(&self) -> u64 {
        LOG_HEADER_LEN as u64 + self.manifest.len() as u64
    }

    /// Bytes per record: its header and a payload.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + self.payload_size
    }

    /// The header's 96 bytes followed by the manifest.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; LOG_HEADER_LEN];
        b[..8].copy_from_slice(&LOG_MAGIC);
        put32(&mut b, off::VERSION, LOG_VERSION);
        put32(&mut b, off::ENDIAN, ENDIAN_TAG);
        put32(&mut b, off::HEADER_LEN, LOG_HEADER_LEN as u32);
        put32(&mut b, off::RECORD_HEADER_LEN, RECORD_HEADER_LEN as u32);
        put64(&mut b, off::SCHEMA_HASH, self.schema_hash);
        put64(&mut b, off::PAYLOAD_SIZE, self.payload_size);
        put64(&mut b, off::PAYLOAD_ALIGN, self.payload_align);
        put64(&mut b, off::MANIFEST_LEN, self.manifest.len() as u64);
        put64(&mut b, off::SOURCE_SLOTS, self.source_slots);
        put64(&mut b, off::SOURCE_NONCE, self.source_nonce);
        put64(&mut b, off::STARTED, self.started_ns);
        let sum = crate::schema::fnv1a64(&b[..off::CHECKSUM]);
        put64(&mut b, off::CHECKSUM, sum);
        b.extend_from_slice(&self.manifest);
        b
    }

    /// Reads and validates the header and manifest of the log at `path`, `len` bytes long,
    /// from `file` positioned at its start. Checks run identity first (magic, byte order,
    /// version), then each field's range, then the checksum, then the manifest.
    fn parse(path: &Path, file: &mut impl Read, len: u64) -> Result<LogHeader, LogError> {
        let mut b = [0u8; LOG_HEADER_LEN];
        let n = read_up_to(file, &mut b).map_err(|e| LogError::io(path, "read log header", e))?;
        if n < 8 || b[..8] != LOG_MAGIC {
            return Err(LogError::NotALog {
                path: path.to_owned(),
                found: b[..n.min(8)].to_vec(),
            });
        }
        if n < LOG_HEADER_LEN {
            return Err(LogError::TruncatedHeader {
                path: path.to_owned(),
                len,
                need: LOG_HEADER_LEN as u64,
            });
        }
        let corrupt = |field: &'static str, at: usize, expected: String, found: String| {
            LogError::CorruptHeader {
                path: path.to_owned(),
                field,
                offset: at as u64,
                expected,
                found,
            }
        };
        let endian = get32(&b, off::ENDIAN);
        if endian != ENDIAN_TAG {
            if endian == ENDIAN_TAG.swap_bytes() {
                return Err(LogError::ForeignEndian {
                    path: path.to_owned(),
                    found: endian,
                });
            }
            return Err(corrupt(
                "endian_tag",
                off::ENDIAN,
                format!("{ENDIAN_TAG:#010x}"),
                format!("{endian:#010x}"),
            ));
        }
        let version = get32(&b, off::VERSION);
        if version != LOG_VERSION {
            return Err(LogError::UnsupportedVersion {
                path: path.to_owned(),
                found: version,
                supported: LOG_VERSION,
            });
        }
        let exact32 = |field, at: usize, want: usize| {
            let v = get32(&b, at);
            if v as usize == want {
                Ok(())
            } else {
                Err(corrupt(field, at, want.to_string(), v.to_string()))
            }
        };
        exact32("header_len", off::HEADER_LEN, LOG_HEADER_LEN)?;
        exact32(
            "record_header_len",
            off::RECORD_HEADER_LEN,
            RECORD_HEADER_LEN,
        )?;
        let size = get64(&b, off::PAYLOAD_SIZE);
        if size == 0 || size > MAX_PAYLOAD {
            return Err(corrupt(
                "payload_size",
                off::PAYLOAD_SIZE,
                format!("1 ..= {MAX_PAYLOAD}"),
                size.to_string(),
            ));
        }
        let align = get64(&b, off::PAYLOAD_ALIGN);
        if !align.is_power_of_two() || align > MAX_ALIGN || !size.is_multiple_of(align) {
            return Err(corrupt(
                "payload_align",
                off::PAYLOAD_ALIGN,
                format!("a power of two <= {MAX_ALIGN} dividing payload_size {size}"),
                align.to_string(),
            ));
        }
        let manifest_len = get64(&b, off::MANIFEST_LEN);
        if manifest_len == 0 || manifest_len > MAX_MANIFEST {
            return Err(corrupt(
                "manifest_len",
                off::MANIFEST_LEN,
                format!("1 ..= {MAX_MANIFEST}"),
                manifest_len.to_string(),
            ));
        }
        let slots = get64(&b, off::SOURCE_SLOTS);
        if !crate::format::slots_ok(slots) {
            return Err(corrupt(
                "source_slots",
                off::SOURCE_SLOTS,
                format!(
                    "a power of two in {}..={}",
                    crate::format::MIN_SLOTS,
                    crate::format::MAX_SLOTS
                ),
                slots.to_string(),
            ));
        }
        if b[off::RESERVED..off::CHECKSUM].iter().any(|&x| x != 0) {
            return Err(corrupt(
                "reserved",
                off::RESERVED,
                "all zero".into(),
                format!("{:02x?}", &b[off::RESERVED..off::CHECKSUM]),
            ));
        }
        let sum = crate::schema::fnv1a64(&b[..off::CHECKSUM]);
        let stored = get64(&b, off::CHECKSUM);
        if sum != stored {
            return Err(corrupt(
                "checksum",
                off::CHECKSUM,
                format!("{sum:#018x} (FNV-1a 64 of bytes 0..88)"),
                format!("{stored:#018x}"),
            ));
        }
        let need = LOG_HEADER_LEN as u64 + manifest_len;
        if len < need {
            return Err(LogError::TruncatedHeader {
                path: path.to_owned(),
                len,
                need,
            });
        }
        // Bounded by `MAX_MANIFEST` and by the file's length, both checked above.
        let mut manifest = vec![0u8; manifest_len as usize];
        file.read_exact(&mut manifest)
            .map_err(|e| LogError::io(path, "read log manifest", e))?;
        let bad_manifest = |at: usize, reason: String| LogError::CorruptManifest {
            path: path.to_owned(),
            offset: (LOG_HEADER_LEN + at) as u64,
            manifest_offset: at,
            reason,
        };
        let hash = crate::schema::fnv1a64(&manifest);
        let schema_hash = get64(&b, off::SCHEMA_HASH);
        if hash != schema_hash {
            return Err(bad_manifest(
                0,
                format!(
                    "FNV-1a 64 of the manifest is {hash:#018x}, the log header's schema_hash is {schema_hash:#018x}"
                ),
            ));
        }
        let schema =
            Type::from_manifest(&manifest).map_err(|e| bad_manifest(e.offset, e.reason))?;
        if schema.size as u64 != size || schema.align as u64 != align {
            return Err(bad_manifest(
                5,
                format!(
                    "manifest type has size {} align {}, the log header says payload_size {size} payload_align {align}",
                    schema.size, schema.align
                ),
            ));
        }
        Ok(LogHeader {
            schema_hash,
            payload_size: size,
            payload_align: align,
            source_slots: slots,
            source_nonce: get64(&b, off::SOURCE_NONCE),
            started_ns: get64(&b, off::STARTED),
            manifest: manifest.into_boxed_slice(),
            schema,
        })
    }
}

/// Reads as much of `buf` as `r` holds; returns the number of bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// One recorded version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its version in the recorded file.
    pub version: u64,
    /// When it was committed, nanoseconds since the Unix epoch (the writer's clock; see
    /// `docs/FORMAT.md` 13.3 for its resolution and [`from_history`](Self::from_history)).
    pub commit_time_ns: u64,
    /// Versions committed between the previous record's and this one that the recorder did
    /// not capture (0 for the first record).
    pub skipped: u64,
    /// A newer version was already committed when this one was captured (read from the ring's
    /// history): `commit_time_ns` is then that newer version's, an upper bound of this one's.
    pub from_history: bool,
    /// The payload bytes, validated against the log's schema.
    pub payload: Vec<u8>,
    /// File offset of the record.
    pub offset: u64,
}

impl Record {
    /// `commit_time_ns` as a time.
    pub fn commit_time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.commit_time_ns)
    }
}

/// Reads a log: validates its header and manifest at [`open`](Self::open), then yields its
/// records one by one ([`next_record`](Self::next_record), or as an iterator), validating each
/// (its tag, flags, payload length, that versions increase and that its `skipped` count is the
/// gap to the previous record, its payload against the schema) and the end record's totals.
///
/// Nothing is read or allocated beyond what the file's length (taken at open) holds: a log that
/// lies about a length ends as a [`TornTail`] or a typed error, never a large allocation or a
/// panic. After the first error the iteration ends.
///
/// **A torn tail is tolerated by default**: a last record cut short (a recorder killed while
/// writing it, or still writing) ends the records as a clean end would, and is reported by
/// [`torn_tail`](Self::torn_tail). [`require_complete`](Self::require_complete) makes it an
/// error, and a log without its end record too.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    file: BufReader<File>,
    len: u64,
    pos: u64,
    header: LogHeader,
    require_complete: bool,
    records: u64,
    skipped: u64,
    first: Option<u64>,
    last: Option<u64>,
    end: Option<(EndReason, u64)>,
    torn: Option<TornTail>,
    done: bool,
}

impl LogReader {
    /// Opens the log at `path` and validates its header and manifest. Refuses symbolic links
    /// and files that are not regular files (a FIFO would block a reader).
    pub fn open(path: impl AsRef<Path>) -> Result<LogReader, LogError> {
        let path = path.as_ref();
        let file = crate::os::open_existing(path, false).map_err(|e| {
            if crate::os::is_symlink_refusal(&e) {
                LogError::io(
                    path,
                    "open",
                    std::io::Error::other("it is a symbolic link; open the file it points to"),
                )
            } else {
                LogError::io(path, "open", e)
            }
        })?;
        let meta = file.metadata().map_err(|e| LogError::io(path, "stat", e))?;
        if !meta.file_type().is_file() {
            return Err(LogError::io(
                path,
                "open",
                std::io::Error::other("not a regular file"),
            ));
        }
        let len = meta.len();
        let mut file = BufReader::with_capacity(64 << 10, file);
        let header = LogHeader::parse(path, &mut file, len)?;
        Ok(LogReader {
            path: path.to_owned(),
            file,
            len,
            pos: header.records_offset(),
            header,
            require_complete: false,
            records: 0,
            skipped: 0,
            first: None,
            last: None,
            end: None,
            torn: None,
            done: false,
        })
    }

    /// Whether `path` starts with the log magic (`false` when it cannot be read).
    pub fn is_log(path: impl AsRef<Path>) -> bool {
        let Ok(mut f) = crate::os::open_existing(path.as_ref(), false) else {
            return false;
        };
        let mut b = [0u8; 8];
        matches!(read_up_to(&mut f, &mut b), Ok(8)) && b == LOG_MAGIC
    }

    /// Makes a torn tail ([`LogError::TornTail`]) and a missing end record
    /// ([`LogError::Unfinished`]) errors (default: tolerated, see the type's documentation).
    pub fn require_complete(mut self, yes: bool) -> Self {
        self.require_complete = yes;
        self
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's header.
    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// The log's length when it was opened: records appended since are not read.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log holds no record (its header and manifest only), as far as read so far.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The totals of what was read so far; once the records are exhausted, with the end
    /// record's reason and time if the log has one.
    pub fn summary(&self) -> LogSummary {
        LogSummary {
            reason: self.end.map(|(r, _)| r),
            records: self.records,
            skipped: self.skipped,
            first_version: self.first,
            last_version: self.last,
            ended_ns: self.end.map(|(_, t)| t),
        }
    }

    /// The end record's reason, once read (`None` before, or if the log has none).
    pub fn end(&self) -> Option<EndReason> {
        self.end.map(|(r, _)| r)
    }

    /// The incomplete last record, once the records are exhausted, if there is one.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn
    }

    fn corrupt(&self, at: u64, field: &'static str, expected: String, found: String) -> LogError {
        LogError::CorruptRecord {
            path: self.path.clone(),
            record: self.records,
            offset: at,
            field,
            expected,
            found,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), LogError> {
        self.file
            .read_exact(buf)
            .map_err(|e| LogError::io(&self.path, "read log record", e))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// The next record: `Ok(None)` at the end of the log (after its end record, at the end of
    /// the file, or at a tolerated torn tail).
    pub fn next_record(&mut self) -> Result<Option<Record>, LogError> {
        if self.done {
            return Ok(None);
        }
        let r = self.read_next();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    fn read_next(&mut self) -> Result<Option<Record>, LogError> {
        let at = self.pos;
        let left = self.len - at;
        if left == 0 {
            if self.require_complete && self.end.is_none() {
                return Err(LogError::Unfinished {
                    path: self.path.clone(),
                    records: self.records,
                });
            }
            return Ok(None);
        }
        let mut head = [0u8; RECORD_HEADER_LEN];
        let have = left.min(RECORD_HEADER_LEN as u64) as usize;
        self.read_exact(&mut head[..have])?;
        let tag = &head[..have.min(4)];
        let is_end = END_TAG.starts_with(tag);
        if !is_end && !RECORD_TAG.starts_with(tag) {
            return Err(self.corrupt(
                at,
                "tag",
                "\"RCRD\" (a record) or \"ENDS\" (the end record)".into(),
                format!("{tag:02x?}"),
            ));
        }
        if is_end {
            return self.read_end(at, left, &head[..have]);
        }
        let need = self.header.record_len();
        if have < RECORD_HEADER_LEN {
            return self.torn(at, left, need);
        }
        let flags = get32(&head, rec_off::FLAGS);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(self.corrupt(
                at + rec_off::FLAGS as u64,
                "flags",
                format!("only bits {KNOWN_FLAGS:#x}"),
                format!("{flags:#x}"),
            ));
        }
        let version = get64(&head, rec_off::VERSION);
        let skipped = get64(&head, rec_off::SKIPPED);
        let expected_skipped = match self.last {
            None => 0,
            Some(last) => {
                if version <= last {
                    return Err(self.corrupt(
                        at + rec_off::VERSION as u64,
                        "version",
                        format!("more than the previous record's {last}"),
                        version.to_string(),
                    ));
                }
                version - last - 1
            }
        };
        if skipped != expected_skipped {
            return Err(self.corrupt(
                at + rec_off::SKIPPED as u64,
                "skipped",
                format!(
                    "{expected_skipped} (the versions between the previous record's and {version})"
                ),
                skipped.to_string(),
            ));
        }
        let payload_len = get32(&head, rec_off::PAYLOAD_LEN);
        if u64::from(payload_len) != self.header.payload_size {
            return Err(self.corrupt(
                at + rec_off::PAYLOAD_LEN as u64,
                "payload_len",
                format!(
                    "{} (the log header's payload_size)",
                    self.header.payload_size
                ),
                payload_len.to_string(),
            ));
        }
        let reserved = &head[rec_off::RESERVED..RECORD_HEADER_LEN];
        if reserved.iter().any(|&b| b != 0) {
            return Err(self.corrupt(
                at + rec_off::RESERVED as u64,
                "reserved",
                "all zero".into(),
                format!("{reserved:02x?}"),
            ));
        }
        if left < need {
            return self.torn(at, left, need);
        }
        // Bounded by the file's length, checked just above.
        let mut payload = vec![0u8; self.header.payload_size as usize];
        self.read_exact(&mut payload)?;
        crate::dynamic::validate(&self.header.schema, &payload).map_err(|source| {
            LogError::InvalidValue {
                path: self.path.clone(),
                record: self.records,
                version,
                offset: at + RECORD_HEADER_LEN as u64 + source.offset as u64,
                source: Box::new(source),
            }
        })?;
        self.records += 1;
        self.skipped += skipped;
        self.first.get_or_insert(version);
        self.last = Some(version);
        Ok(Some(Record {
            version,
            commit_time_ns: get64(&head, rec_off::COMMIT_TIME),
            skipped,
            from_history: flags & super::FLAG_FROM_HISTORY != 0,
            payload,
            offset: at,
        }))
    }

    fn read_end(&mut self, at: u64, left: u64, head: &[u8]) -> Result<Option<Record>, LogError> {
        if head.len() < END_LEN {
            return self.torn(at, left, END_LEN as u64);
        }
        let sum = crate::schema::fnv1a64(&head[..end_off::CHECKSUM]);
        let stored = get64(head, end_off::CHECKSUM);
        if sum != stored {
            return Err(self.corrupt(
                at + end_off::CHECKSUM as u64,
                "end checksum",
                format!("{sum:#018x} (FNV-1a 64 of the end record's bytes 0..32)"),
                format!("{stored:#018x}"),
            ));
        }
        let code = get32(head, end_off::REASON);
        let Some(reason) = EndReason::from_code(code) else {
            return Err(self.corrupt(
                at + end_off::REASON as u64,
                "end reason",
                "1 ..= 5".into(),
                code.to_string(),
            ));
        };
        let records = get64(head, end_off::RECORDS);
        if records != self.records {
            return Err(self.corrupt(
                at + end_off::RECORDS as u64,
                "end records",
                format!("{} (the records before it)", self.records),
                records.to_string(),
            ));
        }
        let skipped = get64(head, end_off::SKIPPED);
        if skipped != self.skipped {
            return Err(self.corrupt(
                at + end_off::SKIPPED as u64,
                "end skipped",
                format!("{} (the sum of the records' skipped counts)", self.skipped),
                skipped.to_string(),
            ));
        }
        if left > END_LEN as u64 {
            return Err(LogError::TrailingBytes {
                path: self.path.clone(),
                offset: at + END_LEN as u64,
                len: left - END_LEN as u64,
            });
        }
        self.end = Some((reason, get64(head, end_off::ENDED)));
        Ok(None)
    }

    fn torn(&mut self, at: u64, have: u64, need: u64) -> Result<Option<Record>, LogError> {
        let tail = TornTail {
            offset: at,
            have,
            need,
        };
        if self.require_complete {
            return Err(LogError::TornTail {
                path: self.path.clone(),
                tail,
                records: self.records,
            });
        }
        self.torn = Some(tail);
        Ok(None)
    }
}

impl Iterator for LogReader {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}
