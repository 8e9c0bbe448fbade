//! Writer exclusivity and liveness.
//!
//! **Exclusivity** rests on a lock no reader can take: an exclusive `flock` on a lock file beside
//! the state file (`.NAME.lock`, mode 0600, owned by the writer's user), held for the writer's
//! life and dropped by the kernel when it dies. A lock on the state file itself would not do:
//! `flock` works from a read-only descriptor, and a read-only descriptor's POSIX or OFD read lock
//! blocks a writer's write lock, so any reader could keep writers out. The lock file is checked
//! like a state file (no symlink, a regular file) and must be owned by the writer's user and
//! open to nobody else, or the writer refuses it. It is never removed (removing a lock file
//! races with the next writer taking it).
//!
//! **Liveness** takes no lock at all: the writer records its pid and its process's start time in
//! the control block, and flags the file closed when it drops its handle. A reader judges the
//! writer alive while the file is not flagged closed and a process with that pid and that start
//! time exists (a recycled pid has another start time). Readers and writer must share a pid
//! namespace for this to hold (as they share the file).

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, Insecurity};
use crate::format::FLAG_CLOSED;
use crate::map::Mapping;

/// The writer lock of one state file: its lock file, locked exclusively while this lives.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
    /// The lock file, when this lock created it (so a failed create can remove it again).
    created: Option<PathBuf>,
}

impl WriterLock {
    /// Removes the lock file if this lock created it: for a create that failed, so that a
    /// refused path is left exactly as it was. Removed while still locked, so nobody can have
    /// taken it meanwhile.
    pub(crate) fn abandon(self) {
        if let Some(p) = &self.created {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The lock file of the state file at `path`: `.NAME.lock` in the same directory.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

/// Takes the writer lock of the state file at `path` (creating its lock file if needed), or
/// fails with [`Error::WriterActive`] naming the live writer's pid, which `recorded_pid` reads
/// from the state file when there is one.
pub(crate) fn acquire(
    path: &Path,
    recorded_pid: impl Fn() -> Option<u32>,
) -> Result<WriterLock, Error> {
    let lock = lock_path(path);
    let open = |create: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .mode(0o600)
            .custom_flags(crate::os::NOFOLLOW_CLOEXEC)
            .open(&lock)
    };
    let (file, created) = match open(true) {
        Ok(f) => (Ok(f), true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (open(false), false),
        Err(e) => (Err(e), false),
    };
    let file = file.map_err(|e| {
        if crate::os::is_symlink_refusal(&e) {
            Error::Insecure {
                path: lock.clone(),
                why: Insecurity::Symlink,
            }
        } else {
            Error::io(&lock, "open lock file", e)
        }
    })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(&lock, "stat lock file", e))?;
    if !meta.file_type().is_file() {
        return Err(Error::Insecure {
            path: lock,
            why: Insecurity::NotRegularFile,
        });
    }
    let me = rustix::process::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me || mode & 0o077 != 0 {
        // Someone else made it (or may open it): they could hold the lock and keep writers out.
        return Err(Error::Insecure {
            path: lock,
            why: Insecurity::UntrustedLockFile {
                owner: meta.uid(),
                mode,
            },
        });
    }
    let start = Instant::now();
    let mut recorded = None;
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(WriterLock {
                    _file: file,
                    created: created.then_some(lock),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock, "lock", e)),
            Err(std::fs::TryLockError::WouldBlock) => {}
        }
        // Another process holds the lock. A live writer other than this process is reported
        // at once (after a few ms). Otherwise it is most likely a writer that is exiting, or a
        // child being spawned by some thread of a process that held the lock (between fork and
        // exec the child shares the lock's open file description): retry a little longer.
        let pid = *recorded.get_or_insert_with(&recorded_pid);
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

/// How long a starting writer retries the lock while the recorded writer is dead or is this
/// process: a writer exiting, or a fork of a lock holder that has not exec'd yet.
const LOCK_RETRY: Duration = Duration::from_millis(200);
/// How long a starting writer retries when the recorded writer is another live process.
const LIVE_WRITER_GRACE: Duration = Duration::from_millis(5);

/// Records this process as the file's writer: start time first, then the pid (release), so a
/// reader that sees the new pid sees its start time; clears the closed flag.
pub(crate) fn record_writer(map: &Mapping) {
    let pid = std::process::id();
    map.writer_start().store(
        crate::os::process_start(pid).unwrap_or(0),
        Ordering::Relaxed,
    );
    map.writer_pid().store(u64::from(pid), Ordering::Release);
    map.flags().fetch_and(!FLAG_CLOSED, Ordering::Release);
}

/// Flags the file closed by its writer (its handle was dropped), so readers learn at once that
/// nobody writes it even though the process lives on.
pub(crate) fn record_closed(map: &Mapping) {
    map.flags().fetch_or(FLAG_CLOSED, Ordering::Release);
}

/// Whether the writer recorded in the control block is alive: not flagged closed, and a process
/// with its pid and its start time exists. No lock, no write: only `/proc` reads (or `kill(pid,
/// 0)` where there is no `/proc`).
pub(crate) fn writer_alive(map: &Mapping) -> bool {
    let pid = map.writer_pid().load(Ordering::Relaxed);
    // Pairs with the release store of the pid in `record_writer`.
    std::sync::atomic::fence(Ordering::Acquire);
    let start = map.writer_start().load(Ordering::Relaxed);
    if map.flags().load(Ordering::Relaxed) & FLAG_CLOSED != 0 {
        return false;
    }
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    if pid == 0 {
        return false;
    }
    match crate::os::process_start(pid) {
        Some(now) => start == 0 || now == start,
        None => crate::os::proc_unavailable() && crate::os::process_exists(pid),
    }
}
