//! Making a state file appear at a path: built completely where no reader can see it (a
//! temporary name, `O_EXCL | O_NOFOLLOW`, mode 0600 by default, preallocated), then published
//! with `link` (never replacing anything) or, when asked, `rename` over an old state file, which
//! is then flagged *superseded* so that its readers reopen by path.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::Error;
use crate::format::{off, Header, FLAG_SUPERSEDED, PAYLOAD_OFFSET};
use crate::lock::{acquire, WriterLock};
use crate::map::Mapping;
use crate::open::{open_checked, validate, OpenOptions};

/// How a new state file is created.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub(crate) mode: u32,
    pub(crate) replace: bool,
    pub(crate) slots: u64,
    pub(crate) group: Option<u32>,
    pub(crate) allow_shared_writable: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            replace: false,
            slots: crate::format::DEFAULT_SLOTS,
            group: None,
            allow_shared_writable: false,
        }
    }
}

impl CreateOptions {
    /// Defaults: mode `0600`, refuse to replace an existing file, a ring of 4 slots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the new file (default `0o600`: readers must run as the same user).
    /// `0o640` with [`group`](Self::group) shares it with one group, `0o644` with every user.
    /// A mode with group or other *write* bits (`0o022`) is refused with
    /// [`Insecurity::WritableByOthers`](crate::Insecurity::WritableByOthers): every reader would
    /// refuse the file (others could rewrite it under them), unless asked with
    /// [`allow_shared_writable`](Self::allow_shared_writable).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// The group the new file belongs to (default: the creating process's), so that a mode such
    /// as `0o640` shares it with exactly that group. The creator must be allowed to give the
    /// file that group (be a member, or privileged). Readers of another user must still trust
    /// the file's owner ([`OpenOptions::trust_owner`](crate::OpenOptions::trust_owner)).
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Create the file even with a mode that lets group or other users write it (which readers
    /// refuse unless they opt in with `OpenOptions::allow_shared_writable`). Default: refuse.
    pub fn allow_shared_writable(mut self, yes: bool) -> Self {
        self.allow_shared_writable = yes;
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

    /// Slots in the ring: a power of two from 2 to 256 (default 4). A reader is disturbed only
    /// when the writer laps it by `slots - 1` commits during one read, and the last `slots`
    /// versions can be read as history; the file holds `slots` copies of the payload.
    /// `BENCHMARKS.md` has the measurements that chose the default.
    pub fn slots(mut self, slots: u64) -> Self {
        self.slots = slots;
        self
    }
}

/// A new file's random-looking identity: distinguishes files created at the same path.
pub(crate) fn nonce() -> u64 {
    let t = crate::notify::wall_ns();
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

/// A complete new state file published at its path, with its writer lock.
pub(crate) struct Created {
    pub(crate) file: File,
    pub(crate) lock: WriterLock,
}

/// The writer pid recorded in the state file at `path`, if there is one (read with `pread`: the
/// file may not be valid).
pub(crate) fn recorded_pid(path: &Path) -> Option<u32> {
    let file = crate::os::open_existing(path, false).ok()?;
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, off::WRITER_PID as u64).ok()?;
    u32::try_from(u64::from_ne_bytes(b))
        .ok()
        .filter(|&p| p != 0)
}

/// Builds the file for `header` holding `manifest` and `initial` (in every slot) and publishes
/// it at `path`, holding the path's writer lock from before the build (so two creators, or a
/// creator and a writer of the file being replaced, never overlap).
pub(crate) fn create(
    path: &Path,
    header: &Header,
    manifest: &[u8],
    initial: &[u8],
    opts: &CreateOptions,
) -> Result<Created, Error> {
    precheck(path, opts)?;
    let lock = acquire(path, || recorded_pid(path))?;
    build(path, header, manifest, initial, opts, lock)
}

/// The path's writer lock, taken before anything of a new file is built or an old one read.
pub(crate) fn lock_for_create(path: &Path, opts: &CreateOptions) -> Result<WriterLock, Error> {
    precheck(path, opts)?;
    acquire(path, || recorded_pid(path))
}

/// What is refused before the lock is taken: a path without a file name, a mode others could
/// write (unless allowed).
fn precheck(path: &Path, opts: &CreateOptions) -> Result<(), Error> {
    if path.file_name().is_none() {
        return Err(Error::io(
            path,
            "create",
            std::io::Error::other("path has no file name"),
        ));
    }
    if opts.mode & 0o022 != 0 && !opts.allow_shared_writable {
        return Err(Error::Insecure {
            path: path.to_owned(),
            why: crate::error::Insecurity::WritableByOthers { mode: opts.mode },
        });
    }
    Ok(())
}

/// `create`'s build and publication, by a caller that already holds the path's writer `lock`
/// (a migration, which reads the old file's value under it).
pub(crate) fn build(
    path: &Path,
    header: &Header,
    manifest: &[u8],
    initial: &[u8],
    opts: &CreateOptions,
    lock: WriterLock,
) -> Result<Created, Error> {
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
    // Holding the path's lock, no other creator of this path runs: any temporary of it is the
    // leftover of a creator that died (before `O_TMPFILE`, or where it is not supported).
    remove_stale_temporaries(dir, &name.to_string_lossy());
    let tmp = dir.join(format!(
        ".{}.{}.{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        header.nonce
    ));
    let built = match crate::os::create_unnamed(dir, opts.mode) {
        Ok(Some(file)) => fill(&tmp, &file, header, manifest, initial, opts)
            .and_then(|()| publish(path, &tmp, Some(&file), opts))
            .map(|()| file),
        Ok(None) => crate::os::create_new(&tmp, opts.mode)
            .map_err(|e| Error::io(&tmp, "create", e))
            .and_then(|file| {
                let built = fill(&tmp, &file, header, manifest, initial, opts)
                    .and_then(|()| publish(path, &tmp, None, opts));
                if built.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                built.map(|()| file)
            }),
        Err(e) => Err(Error::io(dir, "create", e)),
    };
    match built {
        Ok(file) => Ok(Created { file, lock }),
        Err(e) => {
            lock.abandon();
            Err(e)
        }
    }
}

/// Removes `.NAME.*.tmp` in `dir`: temporaries of creators of `NAME` that died mid-create.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let f = file_name.to_string_lossy();
        if f.starts_with(&prefix) && f.ends_with(".tmp") && f.len() > prefix.len() + 4 {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes header, control block, every slot and the manifest into the new file.
fn fill(
    tmp: &Path,
    file: &File,
    header: &Header,
    manifest: &[u8],
    initial: &[u8],
    opts: &CreateOptions,
) -> Result<(), Error> {
    let io = |op| move |e| Error::io(tmp, op, e);
    // The create's mode is filtered by the umask; the caller asked for exactly this mode.
    use std::os::unix::fs::PermissionsExt;
    if let Some(gid) = opts.group {
        std::os::unix::fs::fchown(file, None, Some(gid)).map_err(io("chown to the group"))?;
    }
    // After the chown, which may clear set-id bits: the caller asked for exactly this mode.
    file.set_permissions(std::fs::Permissions::from_mode(opts.mode))
        .map_err(io("chmod"))?;
    crate::os::preallocate(file, header.file_len).map_err(io("preallocate"))?;
    file.write_all_at(&header.encode(), 0)
        .map_err(io("write header"))?;
    let mut control = [0u8; 128];
    let put = |c: &mut [u8; 128], at: usize, v: u64| {
        c[at - 128..at - 120].copy_from_slice(&v.to_ne_bytes());
    };
    put(&mut control, off::WRITER_PID, u64::from(std::process::id()));
    put(&mut control, off::COMMIT_TIME, crate::notify::wall_ns());
    put(
        &mut control,
        off::WRITER_START,
        crate::os::process_start(std::process::id()).unwrap_or(0),
    );
    file.write_all_at(&control, 128)
        .map_err(io("write control block"))?;
    // Every slot holds the initial value, so the writer knows what each one holds.
    let mut slot = vec![0u8; header.slot_stride as usize];
    slot[..initial.len()].copy_from_slice(initial);
    for i in 0..header.slot_count {
        file.write_all_at(&slot, PAYLOAD_OFFSET as u64 + i * header.slot_stride)
            .map_err(io("write payload"))?;
    }
    file.write_all_at(manifest, header.manifest_offset)
        .map_err(io("write manifest"))
}

/// Makes the complete file appear at `path`: `unnamed` (an `O_TMPFILE` file) is linked there,
/// else the named temporary `tmp` is. Without `replace`, `link` fails with `EEXIST` where
/// `rename` would replace, so no existing file is lost; with it, the old state file is
/// validated, the new one renamed over it, and the old one flagged superseded.
fn publish(
    path: &Path,
    tmp: &Path,
    unnamed: Option<&File>,
    opts: &CreateOptions,
) -> Result<(), Error> {
    let exists = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            Error::io(path, "link", e)
        }
    };
    if opts.replace {
        let old = Replaced::lock(path)?;
        if let Some(file) = unnamed {
            // `rename` needs a name: link the unnamed file to the temporary's, for a moment.
            crate::os::link_unnamed(file, tmp).map_err(|e| Error::io(tmp, "link", e))?;
        }
        if let Err(e) = std::fs::rename(tmp, path) {
            let _ = std::fs::remove_file(tmp);
            return Err(Error::io(path, "rename", e));
        }
        // Flagged only now: a reader told to reopen finds the new file at the path.
        if let Some(old) = old {
            old.mark_superseded();
        }
        Ok(())
    } else if let Some(file) = unnamed {
        crate::os::link_unnamed(file, path).map_err(exists)
    } else {
        std::fs::hard_link(tmp, path).map_err(exists)?;
        std::fs::remove_file(tmp).map_err(|e| Error::io(tmp, "remove temporary", e))
    }
}

/// The state file about to be replaced at a path: validated and mapped, to flag it superseded
/// once the new file is in place. No writer can take it over meanwhile: the creator holds the
/// path's writer lock, which is also the old file's.
struct Replaced {
    map: Mapping,
}

impl Replaced {
    /// Validates the state file at `path`, if there is one. Refuses a file that is not a state
    /// file, and anything `Reader::open` would refuse; a state file of another format version
    /// is replaced without being flagged (its control block is not ours to read).
    fn lock(path: &Path) -> Result<Option<Replaced>, Error> {
        let file = match open_checked(path, true, &OpenOptions::new()) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let v = match validate(path, file) {
            Ok(v) => v,
            Err(Error::UnsupportedVersion { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let map =
            Mapping::read_write(&v.file, &v.header).map_err(|e| Error::io(path, "mmap", e))?;
        Ok(Some(Replaced { map }))
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
