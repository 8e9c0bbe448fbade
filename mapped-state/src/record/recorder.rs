//! [`Recorder`]: follows a state file through a [`RawReader`] and appends every version it
//! observes to a log of its own.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::log::LogHeader;
use super::{
    encode_end, put32, put64, rec_off, EndReason, LogError, LogSummary, FLAG_FROM_HISTORY,
    RECORD_HEADER_LEN, RECORD_TAG,
};
use crate::{Error, RawReader};

/// Bytes of records a recorder buffers before writing them; it also writes whenever it has
/// caught up with the writer and is about to wait, so an idle log is always complete on disk.
const BUFFER: usize = 256 << 10;

/// How long a caught-up recorder polls for the next commit before it sleeps, by default.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// When [`Recorder::run`] stops (besides the writer going away).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordLimits {
    /// Stop once this many records are in the log (the first record counts).
    pub count: Option<u64>,
    /// Stop once this long has passed since `run` began.
    pub duration: Option<Duration>,
}

/// Follows one state file and appends every version it observes to a log (`docs/FORMAT.md`
/// section 13), never writing to the state file (its reader is read-only).
///
/// Each [`capture`](Self::capture) records every version newer than the last one recorded that
/// is still in the file's ring: after a burst of commits it reads the newest `slots` versions
/// from the ring's history, so it loses as few as the ring allows. A version it could not read
/// before the writer overwrote it is counted in the next record's `skipped`, so that for any
/// log `records + skipped = last_version - first_version + 1`.
#[derive(Debug)]
pub struct Recorder {
    reader: RawReader,
    path: PathBuf,
    out: BufWriter<File>,
    /// Reused per record: the record's header, then its payload.
    head: [u8; RECORD_HEADER_LEN],
    payload: Vec<u8>,
    slots: u64,
    records: u64,
    skipped: u64,
    first: Option<u64>,
    last: Option<u64>,
    spin: Duration,
}

impl Recorder {
    /// Creates the log at `log` (mode 0600; refused with an `AlreadyExists` I/O error if
    /// anything exists there, so neither a log nor the state file itself is ever overwritten)
    /// and writes its header: the state file's schema hash, geometry and manifest. Nothing is
    /// recorded until the first [`capture`](Self::capture).
    pub fn create(reader: RawReader, log: impl AsRef<Path>) -> Result<Recorder, LogError> {
        let path = log.as_ref();
        let header = LogHeader::of(&reader);
        let mut file =
            crate::os::create_new(path, 0o600).map_err(|e| LogError::io(path, "create log", e))?;
        file.write_all(&header.encode())
            .map_err(|e| LogError::io(path, "write log header", e))?;
        Ok(Recorder {
            path: path.to_owned(),
            out: BufWriter::with_capacity(BUFFER, file),
            head: [0u8; RECORD_HEADER_LEN],
            payload: vec![0u8; header.payload_size as usize],
            slots: header.source_slots,
            records: 0,
            skipped: 0,
            first: None,
            last: None,
            spin: DEFAULT_SPIN,
            reader,
        })
    }

    /// The reader of the recorded file.
    pub fn reader(&self) -> &RawReader {
        &self.reader
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What has been recorded so far (`reason` is `None`).
    pub fn summary(&self) -> LogSummary {
        LogSummary {
            reason: None,
            records: self.records,
            skipped: self.skipped,
            first_version: self.first,
            last_version: self.last,
            ended_ns: None,
        }
    }

    /// Records, without blocking, every version committed since the last one recorded that is
    /// still in the ring (the first call records the current version). Returns how many
    /// records it appended.
    pub fn capture(&mut self) -> Result<u64, LogError> {
        self.capture_up_to(u64::MAX)
    }

    /// `capture`, appending at most `max` records.
    pub fn capture_up_to(&mut self, max: u64) -> Result<u64, LogError> {
        if max == 0 {
            return Ok(0);
        }
        let Some(last) = self.last else {
            let v = self.reader.snapshot_into(&mut self.payload)?;
            self.append(v)?;
            return Ok(1);
        };
        // Up to the newest version when the call began, so a writer faster than the recorder
        // cannot keep one call going for ever.
        let newest = self.reader.version();
        let (mut n, mut h) = (0, last + 1);
        // Versions older than the ring holds are gone: skip them at once.
        h = h.max(newest.saturating_sub(self.slots - 1));
        while h <= newest && n < max {
            match self.reader.snapshot_version_into(h, &mut self.payload) {
                Ok(()) => {
                    self.append(h)?;
                    n += 1;
                    h += 1;
                }
                Err(Error::VersionGone { .. }) => {
                    // Overwritten while it was read (counted as skipped by the next record): the
                    // writer is lapping the ring, so the oldest versions left are about to go
                    // too. Go on from the oldest one its next commit leaves.
                    let now = self.reader.version();
                    h = (h + 1).max(now.saturating_sub(self.slots.saturating_sub(2)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    /// Appends the record of version `v`, whose payload is in `self.payload`.
    fn append(&mut self, v: u64) -> Result<(), LogError> {
        // Read after the payload: the time of `v` or of a later commit (see FORMAT.md 13.3).
        let time = self.reader.last_commit();
        let history = self.reader.version() > v;
        let ns = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let skipped = self.last.map_or(0, |last| v - last - 1);
        let h = &mut self.head;
        h[..4].copy_from_slice(&RECORD_TAG);
        put32(
            h,
            rec_off::FLAGS,
            if history { FLAG_FROM_HISTORY } else { 0 },
        );
        put64(h, rec_off::VERSION, v);
        put64(h, rec_off::COMMIT_TIME, ns);
        put64(h, rec_off::SKIPPED, skipped);
        // `payload_size` is at most 2^30 (validated when the state file was opened).
        put32(h, rec_off::PAYLOAD_LEN, self.payload.len() as u32);
        put32(h, rec_off::RESERVED, 0);
        let io = |e| LogError::io(&self.path, "write log record", e);
        self.out.write_all(&self.head).map_err(io)?;
        self.out.write_all(&self.payload).map_err(io)?;
        self.records += 1;
        self.skipped += skipped;
        self.first.get_or_insert(v);
        self.last = Some(v);
        Ok(())
    }

    /// Writes the buffered records to the log file.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.out
            .flush()
            .map_err(|e| LogError::io(&self.path, "write log record", e))
    }

    /// Sets how long [`wait`](Self::wait) polls for the next commit before it writes the
    /// buffered records and sleeps (default [`DEFAULT_SPIN`], 20 µs; zero: sleep at once).
    ///
    /// A sleeping recorder learns of a commit only when it is woken, which takes tens of
    /// microseconds (and up to a coalescing period during a burst, see
    /// [`WakePolicy`](crate::WakePolicy)); a writer committing every few microseconds would
    /// overrun the ring meanwhile. Polling costs up to this much CPU time per commit of a
    /// writer slower than that.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Blocks until a version newer than the last one recorded is committed: polls for
    /// [`set_spin`](Self::set_spin)'s time, then writes the buffered records (so a log is
    /// complete on disk whenever its recorder sleeps) and sleeps on the file's futex.
    /// `Ok(true)` then, `Ok(false)` when `timeout` passes first. `Err(LogError::State(
    /// Error::WriterGone))` when no writer holds the file or it was superseded, as
    /// [`RawReader::wait_for_update`] says.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, LogError> {
        let since = self.last.unwrap_or(0);
        if self.last.is_none() || self.reader.version() > since {
            return Ok(true);
        }
        let start = Instant::now();
        let spin = timeout.map_or(self.spin, |t| t.min(self.spin));
        while start.elapsed() < spin {
            for _ in 0..16 {
                std::hint::spin_loop();
            }
            if self.reader.version() > since {
                return Ok(true);
            }
        }
        self.flush()?;
        let timeout = timeout.map(|t| t.saturating_sub(start.elapsed()));
        Ok(self.reader.wait_for_update(since, timeout)?.is_some())
    }

    /// Records until `limits` say stop or the writer is gone (or the file superseded), then
    /// [`finish`](Self::finish)es the log with the reason. Versions the writer committed just
    /// before it went away are still recorded. On any other error the log keeps what was
    /// recorded, without an end record.
    pub fn run(mut self, limits: &RecordLimits) -> Result<LogSummary, LogError> {
        let deadline = limits
            .duration
            .map(|d| Instant::now().checked_add(d).unwrap_or_else(far_future));
        loop {
            let left = limits
                .count
                .map_or(u64::MAX, |c| c.saturating_sub(self.records));
            if left == 0 {
                return self.finish(EndReason::Count);
            }
            self.capture_up_to(left)?;
            if limits.count.is_some_and(|c| self.records >= c) {
                return self.finish(EndReason::Count);
            }
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(t) if !t.is_zero() => Some(t),
                    _ => return self.finish(EndReason::Duration),
                },
                None => None,
            };
            match self.wait(timeout) {
                Ok(_) => {}
                Err(LogError::State(Error::WriterGone { superseded, .. })) => {
                    // The wait delivers a last commit before its verdict: all is recorded.
                    self.capture_up_to(left)?;
                    return self.finish(if superseded {
                        EndReason::Superseded
                    } else {
                        EndReason::WriterGone
                    });
                }
                Err(e) => {
                    let _ = self.flush();
                    return Err(e);
                }
            }
        }
    }

    /// Appends the end record (the totals and `reason`), writes everything to the log file and
    /// syncs it to disk. Returns the totals.
    pub fn finish(mut self, reason: EndReason) -> Result<LogSummary, LogError> {
        let ended = crate::notify::wall_ns();
        let end = encode_end(reason, self.records, self.skipped, ended);
        self.out
            .write_all(&end)
            .map_err(|e| LogError::io(&self.path, "write log end", e))?;
        self.flush()?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| LogError::io(&self.path, "sync log", e))?;
        Ok(LogSummary {
            reason: Some(reason),
            ended_ns: Some(ended),
            ..self.summary()
        })
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}
