//! Replay: re-publishing a log's records into a new state file of the same schema.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{EndReason, LogError, LogReader, Record, TornTail};
use crate::{CreateOptions, RawWriter};

/// How fast a replay goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Each record is published when its commit time, counted from the first record's, divided
    /// by the factor, has passed since the replay began: `Factor(1.0)` keeps the recorded pace,
    /// `Factor(10.0)` goes ten times faster. A factor that is not finite and positive is
    /// [`Max`](Self::Max).
    Factor(f64),
    /// As fast as possible, never sleeping.
    Max,
}

impl Speed {
    /// When a record committed `since_first_ns` after the first one is due, from the start of
    /// the replay; `None` at [`Max`](Self::Max) speed.
    pub fn due_after(self, since_first_ns: u64) -> Option<Duration> {
        match self {
            Speed::Factor(f) if f.is_finite() && f > 0.0 => Some(
                Duration::try_from_secs_f64(since_first_ns as f64 / 1e9 / f)
                    .unwrap_or(Duration::MAX),
            ),
            _ => None,
        }
    }
}

/// How a replay creates and paces its state file.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    speed: Speed,
    create: CreateOptions,
    slots: Option<u64>,
    require_complete: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: Speed::Factor(1.0),
            create: CreateOptions::new(),
            slots: None,
            require_complete: false,
        }
    }
}

impl ReplayOptions {
    /// Defaults: the recorded pace, a new file (refusing to replace one) with as many slots as
    /// the recorded file had, mode 0600, a torn tail tolerated.
    pub fn new() -> Self {
        Self::default()
    }

    /// How fast to go (default `Speed::Factor(1.0)`, the recorded pace).
    pub fn speed(mut self, speed: Speed) -> Self {
        self.speed = speed;
        self
    }

    /// How the file is created (mode, group, replace); its slot count is the log's unless set
    /// with [`slots`](Self::slots).
    pub fn create(mut self, create: CreateOptions) -> Self {
        self.create = create;
        self
    }

    /// Slots in the new file's ring (default: the recorded file's, from the log header).
    pub fn slots(mut self, slots: u64) -> Self {
        self.slots = Some(slots);
        self
    }

    /// Refuse a log with a torn tail or without an end record (default: replay what is
    /// complete, unless the `LogReader` given to [`Replayer::new`] was made strict), see
    /// [`LogReader::require_complete`].
    pub fn require_complete(mut self, yes: bool) -> Self {
        self.require_complete = yes;
        self
    }
}

/// What a replay did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplaySummary {
    /// Records published (the first as the new file's initial value, version 0).
    pub records: u64,
    /// The new file's last version (`records - 1`).
    pub last_version: u64,
    /// The recorded versions of the first and last record.
    pub recorded_versions: (u64, u64),
    /// The log's end record's reason, if it has one.
    pub end: Option<EndReason>,
    /// The log's torn tail, if it has one (tolerated unless `require_complete`).
    pub torn_tail: Option<TornTail>,
    /// How long the replay took.
    pub elapsed: Duration,
}

/// A replay in progress: the new file and the log, one record per [`step`](Self::step).
///
/// The new file's version `k` holds the log's record `k` (the first record is its initial
/// value, version 0; each later one is one commit): versions are renumbered from 0, and the
/// recorded version numbers and skipped counts stay in the log.
#[derive(Debug)]
pub struct Replayer {
    log: LogReader,
    writer: RawWriter,
    speed: Speed,
    start: Instant,
    first_time: u64,
    first: Option<Record>,
    records: u64,
    recorded: (u64, u64),
}

impl Replayer {
    /// Reads the log's first record and creates the state file `to` with the log's manifest
    /// and that record's payload as its initial value. A log without a record cannot be
    /// replayed (`LogError::Unfinished` with 0 records).
    pub fn new(log: LogReader, to: &Path, opts: &ReplayOptions) -> Result<Replayer, LogError> {
        let mut log = if opts.require_complete {
            log.require_complete(true)
        } else {
            log
        };
        let Some(first) = log.next_record()? else {
            return Err(LogError::Unfinished {
                path: log.path().to_owned(),
                records: 0,
            });
        };
        let create = opts
            .create
            .clone()
            .slots(opts.slots.unwrap_or(log.header().source_slots));
        let writer =
            RawWriter::create_from_manifest(to, log.header().manifest(), &first.payload, &create)?;
        Ok(Replayer {
            start: Instant::now(),
            first_time: first.commit_time_ns,
            recorded: (first.version, first.version),
            records: 1,
            first: Some(first),
            speed: opts.speed,
            writer,
            log,
        })
    }

    /// The next record, published (after sleeping until it is due at the replay's speed), with
    /// the new file's version that holds it; `Ok(None)` at the end of the log. The first call
    /// returns the first record, already the file's version 0.
    pub fn step(&mut self) -> Result<Option<(u64, Record)>, LogError> {
        if let Some(first) = self.first.take() {
            return Ok(Some((0, first)));
        }
        let Some(rec) = self.log.next_record()? else {
            return Ok(None);
        };
        if let Some(due) = self
            .speed
            .due_after(rec.commit_time_ns.saturating_sub(self.first_time))
        {
            let at = self.start.checked_add(due);
            let wait = at.map_or(due, |at| at.saturating_duration_since(Instant::now()));
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        let v = self.writer.publish_bytes(&rec.payload);
        self.records += 1;
        self.recorded.1 = rec.version;
        Ok(Some((v, rec)))
    }

    /// Publishes every remaining record.
    pub fn run(mut self) -> Result<(ReplaySummary, RawWriter), LogError> {
        while self.step()?.is_some() {}
        let summary = ReplaySummary {
            records: self.records,
            last_version: self.writer.version(),
            recorded_versions: self.recorded,
            end: self.log.end(),
            torn_tail: self.log.torn_tail(),
            elapsed: self.start.elapsed(),
        };
        Ok((summary, self.writer))
    }

    /// The new file's writer.
    pub fn writer(&self) -> &RawWriter {
        &self.writer
    }

    /// The log being replayed.
    pub fn log(&self) -> &LogReader {
        &self.log
    }

    /// The new file's path.
    pub fn path(&self) -> PathBuf {
        self.writer.path().to_owned()
    }
}

/// Replays the log at `log` into a new state file at `to` (see [`Replayer`]), then closes the
/// file (its readers then see the writer gone, as after any writer's exit).
pub fn replay(log: &Path, to: &Path, opts: &ReplayOptions) -> Result<ReplaySummary, LogError> {
    let (summary, writer) = Replayer::new(LogReader::open(log)?, to, opts)?.run()?;
    drop(writer);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_divides_the_recorded_gaps_by_the_factor() {
        assert_eq!(
            Speed::Factor(1.0).due_after(1_500_000_000),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            Speed::Factor(4.0).due_after(2_000_000_000),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            Speed::Factor(0.5).due_after(1_000_000),
            Some(Duration::from_millis(2))
        );
        assert_eq!(Speed::Factor(2.0).due_after(0), Some(Duration::ZERO));
        assert_eq!(Speed::Max.due_after(5_000_000_000), None);
        for nonsense in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Speed::Factor(nonsense).due_after(1), None, "{nonsense}");
        }
        // A hostile log's far-apart times saturate instead of overflowing.
        assert_eq!(
            Speed::Factor(1e-300).due_after(u64::MAX),
            Some(Duration::MAX)
        );
    }
}
