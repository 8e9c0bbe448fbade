//! Every system call the library makes that std does not wrap: `O_NOFOLLOW` opens, preallocation,
//! the cross-process futex, process liveness. Nothing else in the crate talks to the OS directly.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Opens an existing file without following a final symlink and without blocking on a FIFO.
pub(crate) fn open_existing(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_NONBLOCK | libc_flags::O_CLOEXEC)
        .open(path)
}

/// Creates a new file that must not exist (`O_EXCL`, `O_NOFOLLOW`), with permission bits `mode`.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)
}

/// Creates an unnamed regular file in directory `dir` (`O_TMPFILE`), with permission bits
/// `mode`: nothing appears in the directory until it is linked (`link_unnamed`), so a creator
/// killed before that leaves nothing behind. `Ok(None)` where the kernel or filesystem cannot.
pub(crate) fn create_unnamed(dir: &Path, mode: u32) -> io::Result<Option<File>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{Mode, OFlags};
        match rustix::fs::open(
            dir,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode as rustix::fs::RawMode),
        ) {
            Ok(fd) => return Ok(Some(File::from(fd))),
            // No O_TMPFILE here (an old kernel, a filesystem without it): name a temporary.
            Err(e)
                if e == rustix::io::Errno::OPNOTSUPP
                    || e == rustix::io::Errno::ISDIR
                    || e == rustix::io::Errno::NOENT
                    || e == rustix::io::Errno::INVAL =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = (dir, mode);
        Ok(None)
    }
}

/// Gives the unnamed `file` the name `path` (never replacing anything: `EEXIST` if it exists),
/// through `/proc/self/fd`, which needs no privilege (`AT_EMPTY_PATH` would).
pub(crate) fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(io::Error::from)
}

/// Whether an `open` error means the path is a symlink refused by `O_NOFOLLOW`.
pub(crate) fn is_symlink_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Reserves `len` bytes of disk for `file`, so later stores into the mapping cannot fail for lack
/// of space (SIGBUS). Falls back to `set_len` where the filesystem cannot preallocate.
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    file.set_len(len)
}

/// Whether process `pid` exists (it may belong to another user).
pub(crate) fn process_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`), or
/// `None` where it cannot be read: with the pid, it names one process for the life of the boot.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether this system has no `/proc` to read process start times from.
pub(crate) fn proc_unavailable() -> bool {
    !Path::new("/proc/self/stat").exists()
}

/// `O_NOFOLLOW | O_CLOEXEC`, for opens that create.
pub(crate) const NOFOLLOW_CLOEXEC: i32 = libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC;

/// Wakes every process blocked in `futex_wait` on `word`. Shared futex (no `FUTEX_PRIVATE_FLAG`):
/// the kernel keys it by the file's page, so waiters in other processes are found.
/// Returns how many waiters it woke.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn futex_wake_all(word: &AtomicU32) -> usize {
    // A failure here (there is none for a valid address) only delays waiters to their timeout.
    rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), i32::MAX as u32)
        .unwrap_or(0)
}

/// Blocks while `*word == expected`, for at most `timeout`. Returns early on a wake, a signal or a
/// spurious wake-up; callers re-check their condition.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // EAGAIN (value already changed), EINTR and ETIMEDOUT all mean: re-check.
    let _ = rustix::thread::futex::wait(
        word,
        rustix::thread::futex::Flags::empty(),
        expected,
        Some(&ts),
    );
}

/// How often the words past the first `WAITV_MAX` a wait is on are looked at.
pub(crate) const OVERFLOW_POLL: Duration = Duration::from_millis(1);

/// Longest sleep on a single word of several when `futex_waitv` is not available: how late a
/// change of another is noticed.
pub(crate) const FALLBACK_NAP: Duration = Duration::from_millis(2);

/// Most futex words one `futex_waitv` call waits on (the kernel's `FUTEX_WAITV_MAX`).
pub(crate) const WAITV_MAX: usize = 128;

/// Set once `futex_waitv` was found missing (Linux before 5.16), or by a test that wants the
/// fallback: callers then wait on one word at a time.
static NO_WAITV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes `futex_wait_any` report `futex_waitv` as unavailable, to test the fallback.
#[cfg(feature = "test-hooks")]
pub(crate) fn force_no_waitv(yes: bool) {
    NO_WAITV.store(yes, std::sync::atomic::Ordering::Relaxed);
}

/// Blocks while every `(word, expected, private)` still holds its expected value, for at most
/// `timeout`, with one `futex_waitv` (Linux 5.16 and later): a wake of any word, a change of
/// any, a signal or the timeout ends it, and callers re-check their conditions. `private`
/// words are process-local (`FUTEX2_PRIVATE`); the others are shared, keyed by the file page,
/// as in `futex_wait`. At most [`WAITV_MAX`] words. Returns `false`, having waited for
/// nothing, where `futex_waitv` is not available.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn futex_wait_any(words: &[(&AtomicU32, u32, bool)], timeout: Duration) -> bool {
    use rustix::thread::futex::{self, Wait, WaitFlags, WaitPtr, WaitvFlags};
    use std::sync::atomic::Ordering;
    if NO_WAITV.load(Ordering::Relaxed) || words.is_empty() || words.len() > WAITV_MAX {
        return false;
    }
    let list: Vec<Wait> = words
        .iter()
        .map(|&(word, expected, private)| {
            let mut w = Wait::new();
            w.val = u64::from(expected);
            w.uaddr = WaitPtr::new(word.as_ptr().cast());
            w.flags = if private {
                WaitFlags::SIZE_U32 | WaitFlags::PRIVATE
            } else {
                WaitFlags::SIZE_U32
            };
            w
        })
        .collect();
    // `futex_waitv` takes an absolute time, on the monotonic clock here.
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let total = Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
    .saturating_add(timeout);
    let at = rustix::time::Timespec {
        tv_sec: total.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(total.subsec_nanos()),
    };
    match futex::waitv(
        &list,
        WaitvFlags::empty(),
        Some(&at),
        rustix::time::ClockId::Monotonic,
    ) {
        // ENOSYS: an older kernel. Anything else (EAGAIN: a word changed, EINTR, ETIMEDOUT)
        // means: re-check.
        Err(e) if e == rustix::io::Errno::NOSYS => {
            NO_WAITV.store(true, Ordering::Relaxed);
            false
        }
        _ => true,
    }
}

/// No `futex_waitv` here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn futex_wait_any(_words: &[(&AtomicU32, u32, bool)], _timeout: Duration) -> bool {
    false
}

/// Blocks while the process-local `word` holds `expected`, for at most `timeout`
/// (`FUTEX_PRIVATE_FLAG`): how the async waker thread sleeps when it has nothing to watch.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn futex_wait_private(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let _ = rustix::thread::futex::wait(
        word,
        rustix::thread::futex::Flags::PRIVATE,
        expected,
        Some(&ts),
    );
}

/// Wakes the threads of this process blocked on the process-local `word`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn futex_wake_private(word: &AtomicU32) {
    let _ =
        rustix::thread::futex::wake(word, rustix::thread::futex::Flags::PRIVATE, i32::MAX as u32);
}

/// No futex here: the waker thread polls its word.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn futex_wait_private(word: &AtomicU32, expected: u32, timeout: Duration) {
    poll_wait(word, expected, timeout);
}

/// No futex here: the sleeping thread polls its word.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn futex_wake_private(_word: &AtomicU32) {}

/// No cross-process futex here: waiters poll with backoff, so there is nobody to wake.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn futex_wake_all(_word: &AtomicU32) -> usize {
    0
}

/// No cross-process futex here: watch the word with `poll_wait`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    poll_wait(word, expected, timeout);
}

/// Longest nap of `poll_wait`: bounds the wake latency where there is no futex, at the cost of
/// at most 200 wake-ups a second per idle waiter.
pub(crate) const POLL_MAX_NAP: Duration = Duration::from_millis(5);

/// Watches `word` until it differs from `expected` or `timeout` passes, without any way to be
/// woken: spins briefly (a commit already under way lands within nanoseconds), then yields (a
/// writer descheduled on this core gets to finish), then sleeps with exponential backoff from
/// 50 µs up to `POLL_MAX_NAP`. The futex fallback where there is no cross-process futex; built on
/// every target so it is compiled and tested on Linux too.
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
pub(crate) fn poll_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    const SPINS: u32 = 100;
    const YIELDS: u32 = 10;
    // Relaxed: the caller re-checks its condition with its own ordering after we return.
    let changed = || word.load(Ordering::Relaxed) != expected;
    let start = Instant::now();
    for _ in 0..SPINS {
        if changed() {
            return;
        }
        std::hint::spin_loop();
    }
    for _ in 0..YIELDS {
        if changed() || start.elapsed() >= timeout {
            return;
        }
        std::thread::yield_now();
    }
    let mut nap = Duration::from_micros(50);
    loop {
        if changed() {
            return;
        }
        let left = match timeout.checked_sub(start.elapsed()) {
            Some(left) if !left.is_zero() => left,
            _ => return,
        };
        std::thread::sleep(nap.min(left));
        nap = (nap * 2).min(POLL_MAX_NAP);
    }
}

/// Raw `open` flags not exposed by std, spelled through rustix so no libc dependency is needed.
mod libc_flags {
    pub const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    pub const O_NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    pub const O_CLOEXEC: i32 = rustix::fs::OFlags::CLOEXEC.bits() as i32;
}

/// Watches a directory for entries appearing in it (created, linked, renamed in), changing or
/// leaving, with inotify: how a follower learns that the file it waits for was published (a
/// `link` or `rename`). Where inotify or the directory is missing it has no watch, and waits
/// are naps of at most [`DIR_POLL`].
#[derive(Debug)]
pub(crate) struct DirWatch {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: Option<rustix::fd::OwnedFd>,
}

/// Longest nap of a `DirWatch` without inotify: how late a file appearing is noticed then.
pub(crate) const DIR_POLL: Duration = Duration::from_millis(100);

impl DirWatch {
    /// Starts watching `dir`.
    pub(crate) fn new(dir: &Path) -> DirWatch {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
                .ok()
                .filter(|fd| {
                    let what = WatchFlags::CREATE
                        | WatchFlags::MOVED_TO
                        | WatchFlags::MOVED_FROM
                        | WatchFlags::DELETE
                        | WatchFlags::ATTRIB
                        | WatchFlags::CLOSE_WRITE
                        | WatchFlags::DELETE_SELF
                        | WatchFlags::MOVE_SELF
                        | WatchFlags::ONLYDIR;
                    inotify::add_watch(fd, dir, what).is_ok()
                });
            DirWatch { fd }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = dir;
            DirWatch {}
        }
    }

    /// Whether the directory is watched with inotify (else waits are naps).
    pub(crate) fn is_watching(&self) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return self.fd.is_some();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        false
    }

    /// Blocks until something happens in the directory (or has happened since the last wait),
    /// or `timeout` passes. Callers re-check the path.
    pub(crate) fn wait(&self, timeout: Duration) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(fd) = &self.fd {
            use rustix::event::{poll, PollFd, PollFlags};
            let ts = rustix::time::Timespec {
                tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            // EINTR and the timeout both mean: re-check.
            let _ = poll(&mut fds, Some(&ts));
            // Drain the events: their names do not matter, the caller looks at the path.
            let mut buf = [0u8; 4096];
            while matches!(rustix::io::read(fd, &mut buf), Ok(n) if n > 0) {}
            return;
        }
        std::thread::sleep(timeout.min(DIR_POLL));
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn futex_waitv_returns_on_a_changed_word_and_times_out_otherwise() {
        let a = AtomicU32::new(1);
        let b = AtomicU32::new(2);
        // `b` no longer holds 7: returns at once (EAGAIN), having really called futex_waitv.
        assert!(futex_wait_any(
            &[(&a, 1, true), (&b, 7, true)],
            Duration::from_secs(60)
        ));
        let t = Instant::now();
        assert!(futex_wait_any(
            &[(&a, 1, true), (&b, 2, true)],
            Duration::from_millis(20)
        ));
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "nothing changed: waits out the timeout"
        );
        // Woken by another thread's wake on either word.
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                b.store(3, std::sync::atomic::Ordering::Relaxed);
                futex_wake_private(&b);
            });
            assert!(futex_wait_any(
                &[(&a, 1, true), (&b, 2, true)],
                Duration::from_secs(60)
            ));
        });
        assert_eq!(b.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[test]
    fn a_dir_watch_wakes_when_a_file_is_linked_or_renamed_into_its_directory() {
        let dir = std::env::temp_dir().join(format!("ms-dirwatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let watch = DirWatch::new(&dir);
        assert!(watch.is_watching(), "inotify watches the directory");
        let t = Instant::now();
        watch.wait(Duration::from_millis(20));
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "nothing happened: a timeout"
        );
        // What `Writer::create` does: an unnamed file linked in, and a rename over a name.
        let file = create_unnamed(&dir, 0o600)
            .unwrap()
            .expect("O_TMPFILE on the temp dir");
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                link_unnamed(&file, &dir.join("a")).unwrap();
            });
            // Woken by the link (not by anything before it: the name is there), long before
            // the minute.
            watch.wait(Duration::from_secs(60));
            assert!(dir.join("a").exists(), "woken before the link");
        });
        std::fs::write(dir.join("tmp"), b"x").unwrap();
        watch.wait(Duration::from_secs(60)); // the write's own events, drained
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                std::fs::rename(dir.join("tmp"), dir.join("b")).unwrap();
            });
            watch.wait(Duration::from_secs(60));
            assert!(dir.join("b").exists(), "woken before the rename");
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
