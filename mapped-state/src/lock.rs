//! Writer exclusivity and liveness: the exclusive lock a writer holds for its life (dropped by
//! the kernel when it dies), the error naming the live writer when a second one tries, and the
//! probe readers use to tell whether a writer still holds the file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::format::off;

/// How long a starting writer retries the lock while the recorded writer is dead: a reader's
/// liveness probe holds a shared lock for a few microseconds.
const LOCK_RETRY: Duration = Duration::from_millis(200);
/// How long a starting writer retries when the recorded writer is alive: long enough to outlast
/// a reader's probe, short enough that a real conflict is reported at once.
const LIVE_WRITER_GRACE: Duration = Duration::from_millis(5);

/// Takes the exclusive writer lock on `file`, naming the live writer when another holds it.
pub(crate) fn lock_exclusive(path: &Path, file: &File) -> Result<(), Error> {
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

/// Whether a writer holds `file`'s lock: a non-blocking shared `flock`, released at once.
pub(crate) fn writer_holds(file: &File) -> bool {
    match file.try_lock_shared() {
        Ok(()) => {
            // Dropping our probe lock at once keeps the window in which a starting writer could
            // see it tiny; writers retry briefly when the recorded pid is dead.
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}
