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
