//! Following a state file by its path through its whole life: waiting for it to appear,
//! writers exiting and starting again, the file being replaced. [`Follow`] is a blocking
//! iterator, and (feature `async`) a `Stream`, of [`Event`]s.
//!
//! The logic is one state machine (`Follow::step`) that either produces an item or says what
//! to wait for (`Need`): the blocking iterator waits for it on the calling thread (the file's
//! futex, inotify on the directory), the stream arms the process's waker thread with it
//! (`waker.rs`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::map::Mapping;
use crate::notify::{notify_acquire, Liveness};
use crate::os::DirWatch;
use crate::{Fields, OpenOptions, RawReader, Reader, Update};

/// What a blocked wait waits for: a change of any of `words` (each with the value seen before
/// the version was checked), `until`, and, with `path`, a change in the followed path's
/// directory.
#[derive(Debug)]
pub(crate) struct Need {
    pub(crate) words: Vec<(Arc<Mapping>, u32)>,
    pub(crate) until: Option<Instant>,
    pub(crate) path: bool,
}

/// An item, or what to wait for before asking again.
pub(crate) enum Step<I> {
    Ready(I),
    Wait(Need),
}

/// Blocks the calling thread until `need` may be met (callers re-check).
pub(crate) fn block(need: &Need, dir: Option<&DirWatch>) {
    let left = need.until.map_or(Duration::from_secs(3600), |u| {
        u.saturating_duration_since(Instant::now())
    });
    if left.is_zero() {
        return;
    }
    if need.path {
        match dir {
            Some(d) => d.wait(left),
            None => std::thread::sleep(left.min(crate::os::DIR_POLL)),
        }
        return;
    }
    match need.words.as_slice() {
        [] => std::thread::sleep(left),
        [(m, seen)] => crate::os::futex_wait(m.notify(), *seen, left),
        many => {
            let max = crate::os::WAITV_MAX;
            let list: Vec<_> = many
                .iter()
                .take(max)
                .map(|(m, s)| (m.notify(), *s, false))
                .collect();
            let left = if many.len() > max {
                left.min(crate::os::OVERFLOW_POLL)
            } else {
                left
            };
            if !crate::os::futex_wait_any(&list, left) {
                // No `futex_waitv`: sleep on the first word for a short while, then re-check all.
                let (m, seen) = &many[0];
                crate::os::futex_wait(m.notify(), *seen, left.min(crate::os::FALLBACK_NAP));
            }
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl<T: crate::Fields> Sealed for crate::Reader<T> {}
    impl Sealed for crate::RawReader {}
}

/// A reader that a [`Follow`] opens at its path: [`Reader<T>`] (its values are `T`s) or
/// [`RawReader`] (its values are the payload's bytes, validated against the file's schema).
pub trait FollowReader: sealed::Sealed + Sized {
    /// What the follow's updates carry.
    type Value;
    /// Opens the file at `path` as this reader.
    #[doc(hidden)]
    fn open_for_follow(path: &Path, opts: &OpenOptions) -> Result<Self, Error>;
    /// The untyped reader.
    #[doc(hidden)]
    fn raw_reader(&self) -> &RawReader;
    /// The newest value and its version.
    #[doc(hidden)]
    fn load_value(&self) -> Result<(Self::Value, u64), Error>;
}

impl<T: Fields> FollowReader for Reader<T> {
    type Value = T;
    fn open_for_follow(path: &Path, opts: &OpenOptions) -> Result<Self, Error> {
        Reader::open_with(path, opts)
    }
    fn raw_reader(&self) -> &RawReader {
        self.raw()
    }
    fn load_value(&self) -> Result<(T, u64), Error> {
        self.load_versioned()
    }
}

impl FollowReader for RawReader {
    type Value = Vec<u8>;
    fn open_for_follow(path: &Path, opts: &OpenOptions) -> Result<Self, Error> {
        RawReader::open_with(path, opts)
    }
    fn raw_reader(&self) -> &RawReader {
        self
    }
    fn load_value(&self) -> Result<(Vec<u8>, u64), Error> {
        let (bytes, version) = self.snapshot()?;
        crate::dynamic::validate(self.schema(), &bytes).map_err(|source| Error::InvalidValue {
            path: self.path().to_owned(),
            source,
        })?;
        Ok((bytes, version))
    }
}

/// What a [`Follow`] reports: the values of the file at its path, and what happens to the file
/// and its writer.
///
/// # Accounting
///
/// Every item that carries an [`Update`] (`Opened`, `Replaced`, `Update`) accounts for
/// `1 + skipped` versions of the file it was read from, and no version is counted twice:
/// for each file followed, summed over its items, `1 + skipped` equals the number of versions
/// it went through from version 0 (its initial value, written at create) to the last one
/// delivered. So yielded + skipped = commits + 1 per file, exactly: `Opened` and `Replaced`
/// carry the file's current version `v` with `skipped == v` (versions `0..v` were not seen),
/// and each `Update` after them `version == previous + 1 + skipped`, as from
/// [`Reader::updates`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event<V> {
    /// No file is at the path (yet): the follow waits for one to be published there (with
    /// `link` or `rename`, as `Writer::create` does), watching the directory with inotify.
    /// Reported once per wait.
    Missing,
    /// A file was opened at the path (the one there when the follow started, or one that
    /// appeared later): its current value.
    Opened(Update<V>),
    /// The file followed was replaced at its path by a newer one (superseded by
    /// `CreateOptions::replace`, or a new file created where the old was removed while it had no
    /// writer), which is followed from now on: the new file's current value. Its versions start
    /// again from 0.
    Replaced(Update<V>),
    /// A new version of the file followed.
    Update(Update<V>),
    /// The file's writer exited or was killed (found within the liveness interval, 100 ms by
    /// default, after any commit it made before it died). The follow goes on: it reports the
    /// next writer with `WriterBack`, or a replacement of the file.
    WriterGone {
        /// The pid of the writer that is gone.
        pid: Option<u32>,
    },
    /// A writer holds the file again (found within the liveness interval, or at once by its
    /// first commit).
    WriterBack {
        /// The new writer's pid.
        pid: Option<u32>,
    },
    /// Nothing was reported for the quiet period set with [`Follow::quiet`]: the follow goes
    /// on, and reports another `Quiet` after each further quiet period.
    Quiet {
        /// The quiet period.
        after: Duration,
    },
}

/// A step of a follow: its next item (`None` at the deadline), or what to wait for.
pub(crate) type FollowStep<R> = Step<Option<Result<Event<<R as FollowReader>::Value>, Error>>>;

/// How often a follow whose file was superseded retries opening the new one while the path
/// does not hold it yet.
const SUPERSEDED_RETRY: Duration = Duration::from_millis(10);

/// A follower of the state file at a path: a blocking iterator (and, with feature `async`, a
/// `Stream`) of [`Event`]s that never ends on its own.
///
/// It waits for the file to appear (inotify on the directory), reports its current value
/// ([`Event::Opened`]) and every new version ([`Event::Update`], with the exact accounting of
/// [`Reader::updates`]), the writer exiting ([`Event::WriterGone`]) and a writer holding the
/// file again ([`Event::WriterBack`]), and the file being replaced at its path, which it then
/// reopens ([`Event::Replaced`]).
///
/// # Time
///
/// - [`quiet(d)`](Self::quiet): after `d` without any item, [`Event::Quiet`] is yielded and the
///   follow goes on. Nothing else makes a wait end early.
/// - [`deadline(t)`](Self::deadline) / [`run_for(d)`](Self::run_for): a total deadline; at it
///   the iterator (or stream) ends with `None`, for good (it is fused).
/// - Without either, `next` blocks until something happens.
///
/// # Errors
///
/// An error is an item, and the follow goes on after it: a value that does not decode
/// (`Error::InvalidValue`, counted as skipped in the next update), a contended read, or a file
/// at the path that cannot be opened (`Error::SchemaMismatch`, `Error::Insecure`, ...:
/// reported once; the follow waits for another file to be published there).
///
/// ```
/// # use mapped_state::{Event, Reader, Writer};
/// # use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("ms-doc-follow-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("late.state");
/// let mut follow = Reader::<u64>::follow(&path).run_for(Duration::from_secs(10));
/// assert!(matches!(follow.next(), Some(Ok(Event::Missing))));
/// let mut w = Writer::<u64>::create(&path, &7)?;
/// match follow.next() {
///     Some(Ok(Event::Opened(u))) => assert_eq!((u.value, u.version), (7, 0)),
///     other => panic!("{other:?}"),
/// }
/// w.publish(&8);
/// match follow.next() {
///     Some(Ok(Event::Update(u))) => assert_eq!((u.value, u.version, u.skipped), (8, 1, 0)),
///     other => panic!("{other:?}"),
/// }
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mapped_state::Error>(())
/// ```
pub struct Follow<R: FollowReader> {
    path: PathBuf,
    opts: OpenOptions,
    reader: Option<R>,
    /// The newest version of the current file accounted for.
    last: u64,
    /// A version whose value failed to decode: the next update is a newer one.
    invalid: Option<u64>,
    /// The file was opened but its value could not be read: the next value read reports it
    /// (as `Replaced` if this is true, else `Opened`).
    unreported: Option<bool>,
    alive: bool,
    pid: Option<u32>,
    live: Liveness,
    interval: Duration,
    quiet: Option<Duration>,
    deadline: Option<Instant>,
    /// When the last item was yielded (or the follow started): quiet periods count from here.
    last_item: Instant,
    queue: VecDeque<Result<Event<R::Value>, Error>>,
    /// A file was opened before: the next one opened replaces it.
    had_file: bool,
    missing_told: bool,
    /// The last attempt to open the path failed with an error other than "not found", which
    /// was reported: wait for a change before reporting another.
    open_failed: bool,
    dir: Option<DirWatch>,
    ended: bool,
    #[cfg(feature = "async")]
    pub(crate) slot: Option<crate::waker::Slot>,
}

impl<R: FollowReader> std::fmt::Debug for Follow<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow")
            .field("path", &self.path)
            .field("open", &self.reader.is_some())
            .field("last_version", &self.last)
            .field("writer_alive", &self.alive)
            .field("quiet", &self.quiet)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<T: Fields> Reader<T> {
    /// Follows the state file at `path` through its whole life: see [`Follow`]. Opens nothing
    /// yet; the first item is [`Event::Opened`] (or [`Event::Missing`] first, if there is no
    /// file there yet).
    pub fn follow(path: impl AsRef<Path>) -> Follow<Reader<T>> {
        Follow::new(path)
    }

    /// Waits until `path` holds a valid state file of `T`, and opens it: at once if it does;
    /// else as soon as one is published there (inotify on the directory). `Ok(None)` when
    /// `timeout` (`None`: none) passes first. A file that is there but cannot be opened (not a
    /// state file, another type, refused as insecure) is an error at once: a published state
    /// file is complete from the moment it appears.
    pub fn open_when_ready(
        path: impl AsRef<Path>,
        opts: &OpenOptions,
        timeout: Option<Duration>,
    ) -> Result<Option<Self>, Error> {
        open_when_ready(path.as_ref(), opts, timeout)
    }

    /// Blocks until a writer holds the file: `Ok(true)` at once if one does; found within the
    /// [liveness interval](Self::set_liveness_interval), or at once by a new writer's first
    /// commit. `Ok(false)` when `timeout` (`None`: none) passes first;
    /// [`Error::WriterGone`] with `superseded` if the file was replaced at its path (open the
    /// new one, or use [`follow`](Self::follow)).
    pub fn wait_for_writer(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        wait_for_writer(self.raw(), timeout)
    }
}

impl RawReader {
    /// [`Reader::follow`] for any state file: updates carry the payload's bytes, validated
    /// against the file's schema.
    pub fn follow(path: impl AsRef<Path>) -> Follow<RawReader> {
        Follow::new(path)
    }

    /// [`Reader::open_when_ready`] for any state file.
    pub fn open_when_ready(
        path: impl AsRef<Path>,
        opts: &OpenOptions,
        timeout: Option<Duration>,
    ) -> Result<Option<Self>, Error> {
        open_when_ready(path.as_ref(), opts, timeout)
    }

    /// [`Reader::wait_for_writer`].
    pub fn wait_for_writer(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        wait_for_writer(self, timeout)
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// The directory of `path`, for inotify.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn open_when_ready<R: FollowReader>(
    path: &Path,
    opts: &OpenOptions,
    timeout: Option<Duration>,
) -> Result<Option<R>, Error> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    // Watch before looking: a file published after the look is reported by the watch.
    let dir = DirWatch::new(parent_of(path));
    loop {
        match R::open_for_follow(path, opts) {
            Ok(r) => return Ok(Some(r)),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return Ok(None),
            },
            None => Duration::from_secs(3600),
        };
        dir.wait(left);
    }
}

fn wait_for_writer(raw: &RawReader, timeout: Option<Duration>) -> Result<bool, Error> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let map = raw.mapping();
    loop {
        let seen = notify_acquire(map);
        if raw.superseded() {
            return Err(raw.writer_gone(true));
        }
        if raw.writer_alive() {
            return Ok(true);
        }
        let mut nap = raw.liveness_interval();
        if let Some(d) = deadline {
            match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => nap = nap.min(left),
                _ => return Ok(false),
            }
        }
        crate::os::futex_wait(map.notify(), seen, nap);
    }
}

impl<R: FollowReader> Follow<R> {
    /// Follows the file at `path` with default options (see [`Reader::follow`]).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Follow {
            path: path.as_ref().to_owned(),
            opts: OpenOptions::new(),
            reader: None,
            last: 0,
            invalid: None,
            unreported: None,
            alive: false,
            pid: None,
            live: Liveness::new(),
            interval: crate::raw_reader::DEFAULT_LIVENESS_INTERVAL,
            quiet: None,
            deadline: None,
            last_item: Instant::now(),
            queue: VecDeque::new(),
            had_file: false,
            missing_told: false,
            open_failed: false,
            dir: None,
            ended: false,
            #[cfg(feature = "async")]
            slot: None,
        }
    }

    /// Opens every file with `opts` (trusted owners, shared-writable files).
    pub fn options(mut self, opts: OpenOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Yields [`Event::Quiet`] after `period` without any item, and goes on.
    pub fn quiet(mut self, period: Duration) -> Self {
        self.quiet = Some(period);
        self
    }

    /// Ends the follow (`None`, for good) at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Ends the follow (`None`, for good) `total` from now.
    pub fn run_for(mut self, total: Duration) -> Self {
        self.deadline = Instant::now().checked_add(total);
        self
    }

    /// How often the writer's liveness is checked while waiting (default 100 ms, at least
    /// 1 ms): a writer exiting, a writer holding the file again without committing yet, and a
    /// file created where one without a writer was removed, are reported within this interval.
    pub fn liveness_interval(mut self, every: Duration) -> Self {
        self.interval = every.max(Duration::from_millis(1));
        self
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The reader of the file followed now, if one is open.
    pub fn reader(&self) -> Option<&R> {
        self.reader.as_ref()
    }

    /// Whether the follow last found a writer holding the file.
    pub fn writer_alive(&self) -> bool {
        self.alive
    }

    /// The pid of the file's writer, as last reported.
    pub fn writer_pid(&self) -> Option<u32> {
        self.pid
    }

    /// The newest version of the current file accounted for.
    pub fn last_version(&self) -> u64 {
        self.last
    }

    fn item(&mut self, item: Result<Event<R::Value>, Error>, now: Instant) -> FollowStep<R> {
        self.last_item = now;
        Step::Ready(Some(item))
    }

    /// Takes `new` as the file followed; its current value is the item that reports it.
    fn install(&mut self, new: R) -> Result<Event<R::Value>, Error> {
        let raw = new.raw_reader();
        self.alive = raw.writer_alive();
        self.pid = raw.writer_pid();
        self.live = Liveness::new();
        self.invalid = None;
        self.open_failed = false;
        self.missing_told = false;
        self.dir = None;
        let replaced = std::mem::replace(&mut self.had_file, true);
        // While unreported, `last` is only the version seen (a commit after it is a writer's
        // sign of life); the item that reports the file counts every version before it.
        self.last = raw.version();
        self.unreported = Some(replaced);
        self.reader = Some(new);
        self.load()
    }

    /// The lowest version worth reading: the one after the last delivered, after any that
    /// failed to decode; any version (the current) while the file is unreported.
    fn wanted(&self) -> u64 {
        let base = if self.unreported.is_some() {
            0
        } else {
            self.last.saturating_add(1)
        };
        self.invalid.map_or(base, |i| base.max(i.saturating_add(1)))
    }

    /// Reads the newest value: the item reporting the file if it was not yet, else an update.
    fn load(&mut self) -> Result<Event<R::Value>, Error> {
        let Some(reader) = &self.reader else {
            // Not reached: `install` and `step` load only with a file open.
            return Ok(Event::Missing);
        };
        let v = reader.raw_reader().version();
        match reader.load_value() {
            Ok((value, version)) => {
                self.invalid = None;
                let opened = self.unreported.take();
                let u = match opened {
                    // Versions `0..version` were not seen.
                    Some(_) => Update {
                        value,
                        version,
                        skipped: version,
                    },
                    None => Update::after(value, version, self.last),
                };
                self.last = version;
                Ok(match opened {
                    Some(true) => Event::Replaced(u),
                    Some(false) => Event::Opened(u),
                    None => Event::Update(u),
                })
            }
            Err(e) => {
                // An invalid value stays invalid until the next commit: wait for one (and
                // count it as skipped then). A contended read is retried at once.
                if matches!(e, Error::InvalidValue { .. }) {
                    self.invalid = Some(v);
                }
                Err(e)
            }
        }
    }

    /// A file at the path other than the one followed, if there is one, taken as the file
    /// followed (an error opening it is reported once).
    fn other_file(&mut self, now: Instant) -> Option<FollowStep<R>> {
        let nonce = self.reader.as_ref()?.raw_reader().header().nonce;
        match R::open_for_follow(&self.path, &self.opts) {
            Ok(new) if new.raw_reader().header().nonce != nonce => {
                // A file is replaced only once its writer is gone (the replacer holds its
                // lock): report that first if it was not yet.
                let gone = self.alive.then_some(Event::WriterGone { pid: self.pid });
                let item = self.install(new);
                Some(match gone {
                    Some(gone) => {
                        self.queue.push_back(item);
                        self.item(Ok(gone), now)
                    }
                    None => self.item(item, now),
                })
            }
            Ok(_) => None,
            Err(e) if is_not_found(&e) => None,
            Err(e) => {
                if std::mem::replace(&mut self.open_failed, true) {
                    None
                } else {
                    Some(self.item(Err(e), now))
                }
            }
        }
    }

    /// When a wait must end at the latest: the deadline, or the end of the quiet period.
    fn wait_until(&self, mut until: Option<Instant>) -> Option<Instant> {
        let mut at = |t: Instant| until = Some(until.map_or(t, |u| u.min(t)));
        if let Some(d) = self.deadline {
            at(d);
        }
        if let Some(q) = self.quiet {
            if let Some(t) = self.last_item.checked_add(q) {
                at(t);
            }
        }
        until
    }

    /// One step of the state machine: the next item, or what to wait for.
    pub(crate) fn step(&mut self) -> FollowStep<R> {
        loop {
            if self.ended {
                return Step::Ready(None);
            }
            let now = Instant::now();
            if let Some(item) = self.queue.pop_front() {
                return self.item(item, now);
            }
            if self.deadline.is_some_and(|d| now >= d) {
                self.ended = true;
                return Step::Ready(None);
            }
            let Some(reader) = &self.reader else {
                return self.step_missing(now);
            };
            let raw = reader.raw_reader();
            let map = Arc::clone(raw.mapping());
            let seen = notify_acquire(&map);
            let v = raw.version();
            if v >= self.wanted() {
                if !self.alive && v > self.last {
                    // A commit while no writer was known: a writer holds the file again.
                    self.alive = true;
                    self.pid = raw.writer_pid();
                    self.live.probed(now);
                    let pid = self.pid;
                    return self.item(Ok(Event::WriterBack { pid }), now);
                }
                let pid = raw.writer_pid();
                if pid != self.pid {
                    // Another writer committed: the one known exited and a new one started
                    // since the last probe (one load of the mapping, no system call).
                    let old = std::mem::replace(&mut self.pid, pid);
                    self.queue.push_back(Ok(Event::WriterBack { pid }));
                    return self.item(Ok(Event::WriterGone { pid: old }), now);
                }
                let item = self.load();
                return self.item(item, now);
            }
            if raw.superseded() {
                if let Some(step) = self.other_file(now) {
                    return step;
                }
                // The new file is not at the path yet (it is flagged only once it is), or it
                // cannot be opened (reported once): look again soon, or at the next probe.
                let retry = if self.open_failed {
                    self.interval
                } else {
                    SUPERSEDED_RETRY
                };
                let until = self.wait_until(now.checked_add(retry));
                return Step::Wait(Need {
                    words: Vec::new(),
                    until,
                    path: false,
                });
            }
            if self.live.due(now, self.interval) {
                let alive = raw.writer_alive();
                let pid = raw.writer_pid();
                if self.alive && (!alive || pid != self.pid) && raw.version() >= self.wanted() {
                    // The writer's last commits come before its exit.
                    continue;
                }
                self.live.probed(now);
                if self.alive && (!alive || pid != self.pid) {
                    let old = self.pid;
                    self.alive = alive;
                    if alive {
                        // Restarted between two probes: a new pid.
                        self.pid = pid;
                        self.queue.push_back(Ok(Event::WriterBack { pid }));
                    }
                    return self.item(Ok(Event::WriterGone { pid: old }), now);
                }
                if !self.alive && alive {
                    self.alive = true;
                    self.pid = pid;
                    return self.item(Ok(Event::WriterBack { pid }), now);
                }
                if !self.alive {
                    // No writer: a new file may have been created at the path.
                    if let Some(step) = self.other_file(now) {
                        return step;
                    }
                }
            }
            if let Some(q) = self.quiet {
                if now.saturating_duration_since(self.last_item) >= q {
                    return self.item(Ok(Event::Quiet { after: q }), now);
                }
            }
            let probe = now.checked_add(self.live.until_due(now, self.interval));
            return Step::Wait(Need {
                words: vec![(map, seen)],
                until: self.wait_until(probe),
                path: false,
            });
        }
    }

    /// No file is open: look at the path, else wait for the directory to change.
    fn step_missing(&mut self, now: Instant) -> FollowStep<R> {
        if self.dir.is_none() {
            // Before looking: a file published after the look is reported by the watch.
            self.dir = Some(DirWatch::new(parent_of(&self.path)));
        }
        match R::open_for_follow(&self.path, &self.opts) {
            Ok(new) => {
                let item = self.install(new);
                return self.item(item, now);
            }
            Err(e) if is_not_found(&e) => {
                self.open_failed = false;
                if !std::mem::replace(&mut self.missing_told, true) {
                    return self.item(Ok(Event::Missing), now);
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut self.open_failed, true) {
                    return self.item(Err(e), now);
                }
            }
        }
        if let Some(q) = self.quiet {
            if now.saturating_duration_since(self.last_item) >= q {
                return self.item(Ok(Event::Quiet { after: q }), now);
            }
        }
        let watching = self.dir.as_ref().is_some_and(DirWatch::is_watching);
        let poll = (!watching)
            .then(|| now.checked_add(crate::os::DIR_POLL))
            .flatten();
        Step::Wait(Need {
            words: Vec::new(),
            until: self.wait_until(poll),
            path: true,
        })
    }

    /// The directory watch, for a blocking wait.
    pub(crate) fn dir_watch(&self) -> Option<&DirWatch> {
        self.dir.as_ref()
    }
}

impl<R: FollowReader> Iterator for Follow<R> {
    type Item = Result<Event<R::Value>, Error>;

    /// Blocks until the next event (see [`Follow`]); `None` only at the deadline.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.step() {
                Step::Ready(item) => return item,
                Step::Wait(need) => block(&need, self.dir_watch()),
            }
        }
    }
}

impl<R: FollowReader> std::iter::FusedIterator for Follow<R> {}
