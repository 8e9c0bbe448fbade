//! The raw shared futex ping-pong's two words: a small mapped file holding `ping` and `pong`
//! (`AtomicU32`, on separate cache lines), waited on with `FUTEX_WAIT` and woken with `FUTEX_WAKE`
//! without `FUTEX_PRIVATE_FLAG`, so the futex is keyed by the file's page and works across
//! processes — what mapped-state's wait/wake does, with nothing around it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use rustix::thread::futex;

/// Byte offsets of the two words.
const PING: usize = 0;
const PONG: usize = 64;
const LEN: usize = 128;

/// Which of the two words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// Written by the side that starts each round trip.
    Ping,
    /// Written by the side that answers.
    Pong,
}

/// The mapped pair of futex words.
#[derive(Debug)]
pub struct FutexPair {
    map: MmapRaw,
}

impl FutexPair {
    /// Creates (or truncates) the file at `path`, both words zero.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(LEN as u64)?;
        Self::map(&file)
    }

    /// Opens the file at `path` made by [`create`](Self::create).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() < LEN as u64 {
            return Err(io::Error::other("futex file too short"));
        }
        Self::map(&file)
    }

    fn map(file: &File) -> io::Result<Self> {
        Ok(FutexPair {
            map: MmapOptions::new().len(LEN).map_raw(file)?,
        })
    }

    fn word(&self, which: Word) -> &AtomicU32 {
        let at = match which {
            Word::Ping => PING,
            Word::Pong => PONG,
        };
        // SAFETY: `at + 4 <= LEN`, the mapping's length; page-aligned base, so 4-aligned; the
        // mapping lives as long as `self`; every process accesses the words only atomically.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(at).cast::<u32>()) }
    }

    /// Stores `value` in `which` and wakes every process waiting on it.
    pub fn post(&self, which: Word, value: u32) {
        let w = self.word(which);
        // Release: the waiter that sees `value` sees what this process did before.
        w.store(value, Ordering::Release);
        // The count of woken waiters is of no interest; an error (none is documented for a
        // valid address) would show as a wait that times out.
        let _ = futex::wake(w, futex::Flags::empty(), i32::MAX as u32);
    }

    /// Waits until `which` no longer holds `old`, for at most about `timeout`; returns its value
    /// then (still `old` after the timeout).
    pub fn wait_while(&self, which: Word, old: u32, timeout: Duration) -> u32 {
        let w = self.word(which);
        let ts = futex::Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // Acquire: pairs with `post`'s release store.
        let v = w.load(Ordering::Acquire);
        if v != old {
            return v;
        }
        // Returns at once (EAGAIN) when the word changed since the load: no lost wake-up.
        // EINTR and ETIMEDOUT end the wait like a wake does; the caller looks again.
        let _ = futex::wait(w, futex::Flags::empty(), old, Some(&ts));
        w.load(Ordering::Acquire)
    }
}
