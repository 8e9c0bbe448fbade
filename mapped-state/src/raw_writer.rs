//! `RawWriter`: the single writer of a state file. Creates files atomically (temp + rename),
//! takes over existing ones (lock, validate, recover), and commits words through the latch.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::error::Error;
use crate::format::{off, Header, FLAG_SUPERSEDED, PAYLOAD_OFFSET};
use crate::map::Mapping;
use crate::open::{open_checked, validate, OpenOptions, Validated};
use crate::schema::{manifest_bytes, TypeDesc};
use crate::updates::WakePolicy;

/// How a new state file is created.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub(crate) mode: u32,
    pub(crate) replace: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            replace: false,
        }
    }
}

impl CreateOptions {
    /// Defaults: mode `0600`, refuse to replace an existing file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the new file (default `0o600`: readers must run as the same user).
    /// `0o644` lets every user read it. Bits `0o022` are accepted but make readers refuse the
    /// file unless they opt in with `OpenOptions::allow_shared_writable`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// Replace an existing state file at the path (default: refuse with `Error::AlreadyExists`).
    ///
    /// The old file must be a state file with no live writer; it is flagged *superseded* so its
    /// readers learn to reopen by path, then atomically renamed over.
    pub fn replace(mut self, yes: bool) -> Self {
        self.replace = yes;
        self
    }
}

/// How long a starting writer retries the lock while the recorded writer is dead: a reader's
/// liveness probe holds a shared lock for a few microseconds.
const LOCK_RETRY: Duration = Duration::from_millis(200);
/// How long a starting writer retries when the recorded writer is alive: long enough to outlast
/// a reader's probe, short enough that a real conflict is reported at once.
const LIVE_WRITER_GRACE: Duration = Duration::from_millis(5);

/// The writer of a state file, with no Rust type attached. Holds the exclusive lock for its life.
#[derive(Debug)]
pub struct RawWriter {
    path: PathBuf,
    /// Holds the exclusive `flock`: closing it would release the lock, so it lives as long as us.
    _lock: File,
    header: Header,
    map: Mapping,
    /// The committed payload, `payload_words * 8` bytes: both copies in the file equal it.
    current: Vec<u8>,
    /// Reused per commit: `(word index, new value)` of the words that change.
    changed: Vec<(usize, u64)>,
    /// Reused per publish: the encoded new payload.
    scratch: Vec<u8>,
    /// When commits wake waiters; see `WakePolicy`.
    wake_policy: WakePolicy,
    /// End of the open coalescing window (wall-clock ns), as published in the control block.
    wake_deadline: u64,
    /// `FUTEX_WAKE` calls made, for tests and benchmarks.
    wakes: u64,
    /// Benchmarks only: skip waking entirely, to measure what the wake costs.
    wake_disabled: bool,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn nonce() -> u64 {
    let t = now_ns();
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    crate::schema::fnv1a64(
        &[
            t.to_ne_bytes(),
            u64::from(std::process::id()).to_ne_bytes(),
            addr.to_ne_bytes(),
        ]
        .concat(),
    )
}

/// Takes the exclusive writer lock on `file`, naming the live writer when another holds it.
fn lock_exclusive(path: &Path, file: &File) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, "lock", e)),
            Err(std::fs::TryLockError::WouldBlock) => {
                // A reader's liveness probe holds a shared lock for microseconds: retry through
                // it. Only a live writer other than this process is worth reporting quickly (this
                // process may be reopening a file it wrote before, so its own pid is no proof).
                let pid = recorded_pid(file);
                let live_other =
                    pid.is_some_and(|p| p != std::process::id() && crate::os::process_exists(p));
                let patience = if live_other {
                    LIVE_WRITER_GRACE
                } else {
                    LOCK_RETRY
                };
                if start.elapsed() > patience {
                    return Err(Error::WriterActive {
                        path: path.to_owned(),
                        pid,
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The writer pid in the control block, read with `pread` (the file may not be validated yet).
fn recorded_pid(file: &File) -> Option<u32> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, off::WRITER_PID as u64).ok()?;
    u32::try_from(u64::from_ne_bytes(b))
        .ok()
        .filter(|&p| p != 0)
}

impl RawWriter {
    /// Creates a state file for a payload described by `ty` with initial bytes `initial`
    /// (`ty.size` long), atomically: it appears at `path` complete or not at all.
    pub fn create(
        path: &Path,
        ty: &TypeDesc,
        initial: &[u8],
        opts: &CreateOptions,
    ) -> Result<Self, Error> {
        let manifest = manifest_bytes(ty);
        let hash = crate::schema::fnv1a64(&manifest);
        let header = Header::for_payload(hash, ty.size, ty.align, manifest.len(), nonce())
            .ok_or_else(|| Error::UnsupportedType {
                path: path.to_owned(),
                name: crate::manifest::Type::from_desc(ty).name(),
                reason: format!(
                    "payload of {} bytes aligned to {} (format v1 takes 1 byte to 1 GiB, alignment up to 64)",
                    ty.size, ty.align
                ),
            })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            Error::io(
                path,
                "create",
                std::io::Error::other("path has no file name"),
            )
        })?;
        let tmp = dir.join(format!(
            ".{}.{}.{:016x}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            header.nonce
        ));
        let file =
            crate::os::create_new(&tmp, opts.mode).map_err(|e| Error::io(&tmp, "create", e))?;
        let built = Self::fill_new(path, &tmp, file, header, &manifest, initial, opts);
        if built.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        built
    }

    fn fill_new(
        path: &Path,
        tmp: &Path,
        file: File,
        header: Header,
        manifest: &[u8],
        initial: &[u8],
        opts: &CreateOptions,
    ) -> Result<Self, Error> {
        let io = |op| move |e| Error::io(tmp, op, e);
        // `create_new`'s mode is filtered by the umask; the caller asked for exactly this mode.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(opts.mode))
            .map_err(io("chmod"))?;
        lock_exclusive(tmp, &file)?;
        crate::os::preallocate(&file, header.file_len).map_err(io("preallocate"))?;
        file.write_all_at(&header.encode(), 0)
            .map_err(io("write header"))?;
        let mut control = [0u8; 64];
        control[off::WRITER_PID - 128..off::WRITER_PID - 120]
            .copy_from_slice(&u64::from(std::process::id()).to_ne_bytes());
        control[off::COMMIT_TIME - 128..off::COMMIT_TIME - 120]
            .copy_from_slice(&now_ns().to_ne_bytes());
        file.write_all_at(&control, 128)
            .map_err(io("write control block"))?;
        let mut slot = vec![0u8; header.slot_stride as usize];
        slot[..initial.len()].copy_from_slice(initial);
        for copy in 0..2u64 {
            file.write_all_at(&slot, PAYLOAD_OFFSET as u64 + copy * header.slot_stride)
                .map_err(io("write payload"))?;
        }
        file.write_all_at(manifest, header.manifest_offset)
            .map_err(io("write manifest"))?;

        if opts.replace {
            let old = Replaced::lock(path)?;
            std::fs::rename(tmp, path).map_err(|e| Error::io(path, "rename", e))?;
            // Flagged only now: a reader told to reopen finds the new file at the path.
            if let Some(old) = old {
                old.mark_superseded();
            }
        } else {
            // `link` fails with EEXIST where `rename` would replace: no existing file is lost.
            std::fs::hard_link(tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::AlreadyExists {
                        path: path.to_owned(),
                    }
                } else {
                    Error::io(path, "link", e)
                }
            })?;
            std::fs::remove_file(tmp).map_err(io("remove temporary"))?;
        }
        let map = Mapping::read_write(&file, &header).map_err(|e| Error::io(path, "mmap", e))?;
        let mut current = vec![0u8; header.payload_words() * 8];
        current[..initial.len()].copy_from_slice(initial);
        Ok(RawWriter {
            path: path.to_owned(),
            _lock: file,
            header,
            map,
            current,
            changed: Vec::new(),
            scratch: Vec::new(),
            wake_policy: WakePolicy::default(),
            wake_deadline: 0,
            wakes: 0,
            wake_disabled: false,
        })
    }

    /// Takes over an existing, valid state file of any schema: locks it, validates it, and
    /// recovers from a writer that died mid-commit by copying the readable copy over the other.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self, Error> {
        Self::open_vetted(path, opts, |_| Ok(()))
    }

    /// `open`, with `check` vetting the validated file before anything is changed (the typed
    /// writer checks the schema here).
    pub(crate) fn open_vetted(
        path: &Path,
        opts: &OpenOptions,
        check: impl FnOnce(&Validated) -> Result<(), Error>,
    ) -> Result<Self, Error> {
        let file = open_checked(path, true, opts)?;
        lock_exclusive(path, &file)?;
        let v = validate(path, file)?;
        check(&v)?;
        let map =
            Mapping::read_write(&v.file, &v.header).map_err(|e| Error::io(path, "mmap", e))?;
        let latch = map.latch();
        latch.recover();
        let mut current = vec![0u8; v.header.payload_words() * 8];
        // We hold the lock: nobody commits, so the first read is consistent.
        latch.read_until_consistent(0, &mut current);
        map.writer_pid()
            .store(u64::from(std::process::id()), Ordering::Relaxed);
        Ok(RawWriter {
            path: path.to_owned(),
            _lock: v.file,
            header: v.header,
            map,
            current,
            changed: Vec::new(),
            scratch: Vec::new(),
            wake_policy: WakePolicy::default(),
            wake_deadline: 0,
            wakes: 0,
            wake_disabled: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits the field of type `F` at payload byte `offset`: stores only that field's words.
    /// Used by the derive's setters.
    #[doc(hidden)]
    pub fn write_field<F: crate::MappedState>(&mut self, offset: usize, value: &F) -> u64 {
        crate::raw_reader::with_scratch(F::TYPE.size, |buf| {
            value.encode(buf);
            self.write_bytes(offset, buf)
        })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The committed payload bytes (`payload_size` long).
    pub fn current(&self) -> &[u8] {
        &self.current[..self.header.payload_size as usize]
    }

    /// Number of commits since the file was created.
    pub fn version(&self) -> u64 {
        self.map.latch().seq() >> 1
    }

    /// Commits `bytes` as the payload from byte `offset` on, storing only the words that change,
    /// then wakes waiting readers. Returns the new version. Every call is one commit, even when
    /// no word changes (the version still advances: a heartbeat).
    pub fn write_bytes(&mut self, offset: usize, bytes: &[u8]) -> u64 {
        let end = offset + bytes.len();
        assert!(
            end <= self.header.payload_size as usize,
            "write past the payload ({end} > {})",
            self.header.payload_size
        );
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        let (first, words, _) = crate::raw_reader::word_span(offset, bytes.len());
        if offset.is_multiple_of(8) && bytes.len().is_multiple_of(8) {
            // Whole words (every publish, most fields): compare and copy word by word.
            diff_words(&mut self.current[offset..end], bytes, first, &mut changed);
        } else {
            for w in first..first + words {
                let old = word_at(&self.current, w);
                let (lo, hi) = ((w * 8).max(offset), (w * 8 + 8).min(end));
                self.current[lo..hi].copy_from_slice(&bytes[lo - offset..hi - offset]);
                let new = word_at(&self.current, w);
                if new != old {
                    changed.push((w, new));
                }
            }
        }
        let version = self.commit(&changed);
        self.changed = changed;
        version
    }

    /// Commits a whole new payload produced by `encode`, which gets a zeroed buffer of
    /// `payload_size` bytes. The buffer is the writer's own and reused, so a publish of any size
    /// allocates nothing; the bytes past `payload_size` up to the next word stay zero, so the
    /// payload is compared and stored in whole words.
    pub(crate) fn publish_with(&mut self, encode: impl FnOnce(&mut [u8])) -> u64 {
        let size = self.header.payload_size as usize;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.resize(self.current.len(), 0);
        encode(&mut buf[..size]);
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        diff_words(&mut self.current, &buf, 0, &mut changed);
        let version = self.commit(&changed);
        self.changed = changed;
        self.scratch = buf;
        version
    }

    /// Stores `(word index, value)` pairs into both copies through the latch, stamps the commit
    /// time and wakes waiters.
    fn commit(&mut self, words: &[(usize, u64)]) -> u64 {
        // Relaxed: published by the latch's release store of `seq`.
        self.map.commit_time().store(now_ns(), Ordering::Relaxed);
        let seq = self.map.latch().commit(|copy| {
            for &(i, v) in words {
                copy[i].store(v, Ordering::Relaxed);
            }
        });
        // Release: a waiter that sees the new futex value also sees the commit.
        self.map.notify().fetch_add(1, Ordering::Release);
        self.wake_waiters();
        seq >> 1
    }

    /// Wakes the waiters of the commit just made, as the wake policy says.
    fn wake_waiters(&mut self) {
        if self.wake_disabled {
            return;
        }
        if let Some(window) = self.wake_policy.window_ns() {
            // The clock is read after the commit is visible: a commit that skips its wake lands
            // before the deadline waiters cap their sleep at, even if we were preempted above.
            let now = crate::updates::wall_ns();
            if crate::updates::inside_window(now, self.wake_deadline, window) {
                return;
            }
            self.wake_deadline = now.saturating_add(window);
            // Relaxed: published by the release increment below.
            self.map
                .wake_deadline()
                .store(self.wake_deadline, Ordering::Relaxed);
            // A second bump, so a waiter that loads `notify` after it also sees the new deadline
            // and caps its next sleep at it; one that loaded it before is woken below.
            self.map.notify().fetch_add(1, Ordering::Release);
        }
        self.wakes += 1;
        crate::os::futex_wake_all(self.map.notify());
    }

    /// Sets when commits wake waiting readers (default: [`WakePolicy::default`], coalescing
    /// wakes within 100 µs). See [`WakePolicy`] for the cost of each policy.
    pub fn set_wake_policy(&mut self, policy: WakePolicy) {
        self.wake_policy = policy;
    }

    /// When commits wake waiting readers.
    pub fn wake_policy(&self) -> WakePolicy {
        self.wake_policy
    }

    /// How many `FUTEX_WAKE` calls this writer has made (tests and benchmarks).
    #[doc(hidden)]
    pub fn wakes_issued(&self) -> u64 {
        self.wakes
    }

    /// Benchmarks only: commit without waking anyone, to measure what waking costs. Waiters then
    /// notice commits only when their sleep ends (liveness probe or timeout).
    #[doc(hidden)]
    pub fn set_wake_disabled_for_benchmarks(&mut self, yes: bool) {
        self.wake_disabled = yes;
    }

    /// Writes the mapping's dirty pages to disk (`msync`), for durability across a machine crash.
    /// Not needed for readers to see commits: they share the page cache.
    pub fn flush(&self) -> Result<(), Error> {
        self.map
            .flush()
            .map_err(|e| Error::io(&self.path, "msync", e))
    }
}

/// Copies `new` over `current` (equal lengths, multiples of 8), recording each word that changes
/// as `(first + index, value)`.
fn diff_words(current: &mut [u8], new: &[u8], first: usize, changed: &mut Vec<(usize, u64)>) {
    for (i, (cur, new)) in current
        .chunks_exact_mut(8)
        .zip(new.chunks_exact(8))
        .enumerate()
    {
        if cur != new {
            cur.copy_from_slice(new);
            let mut w = [0u8; 8];
            w.copy_from_slice(new);
            changed.push((first + i, u64::from_ne_bytes(w)));
        }
    }
}

fn word_at(bytes: &[u8], w: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[w * 8..w * 8 + 8]);
    u64::from_ne_bytes(b)
}

/// The state file about to be replaced at a path: locked (so no writer can take it over between
/// the check and the rename) and mapped, to flag it superseded once the new file is in place.
struct Replaced {
    _lock: File,
    map: Mapping,
}

impl Replaced {
    /// Locks and validates the state file at `path`, if there is one. Refuses a file with a live
    /// writer, a file that is not a state file, and anything `Reader::open` would refuse.
    fn lock(path: &Path) -> Result<Option<Replaced>, Error> {
        let file = match open_checked(path, true, &OpenOptions::new()) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        lock_exclusive(path, &file)?;
        let v = validate(path, file)?;
        let map =
            Mapping::read_write(&v.file, &v.header).map_err(|e| Error::io(path, "mmap", e))?;
        Ok(Some(Replaced { _lock: v.file, map }))
    }

    /// Tells the old file's readers that a newer file stands at its path, and wakes waiters.
    fn mark_superseded(&self) {
        self.map
            .flags()
            .fetch_or(FLAG_SUPERSEDED, Ordering::Release);
        self.map.notify().fetch_add(1, Ordering::Release);
        crate::os::futex_wake_all(self.map.notify());
    }
}
