//! Validated opening shared by readers and writers: refuse unsafe paths, read the header and the
//! manifest with `pread`, and check every field before anything is mapped.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::error::{Error, Insecurity};
use crate::format::{Header, HEADER_LEN};
use crate::manifest::Type;
use crate::schema::fnv1a64;

/// How a state file may be opened.
///
/// # Trust
///
/// A reader trusts the file's owner as it trusts the writer: the owner can rewrite or truncate
/// the file under every reader (a truncation while mapped raises SIGBUS). So by default a file is
/// opened only if it is owned by the process's effective user or by root, and no group or other
/// user may write it. [`trust_owner`](Self::trust_owner) names further owners to accept and
/// [`allow_shared_writable`](Self::allow_shared_writable) accepts group/other write permission.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub(crate) allow_shared_writable: bool,
    pub(crate) trusted_owners: Vec<u32>,
    pub(crate) exact_schema: bool,
}

impl OpenOptions {
    /// Default options: refuse files owned by anyone but this user or root, and files that group
    /// or other users can write.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accept files owned by user `uid` (may be called several times). The effective user
    /// and root are always trusted.
    ///
    /// Trust `uid` only as far as you trust it to write the state: its owner can change or
    /// truncate the file under a running reader.
    pub fn trust_owner(mut self, uid: u32) -> Self {
        if !self.trusted_owners.contains(&uid) {
            self.trusted_owners.push(uid);
        }
        self
    }

    /// Demand that the file's schema be exactly the reader's type (default: accept a file whose
    /// schema is a compatible version of it, see [`evolve`](crate::evolve)). With it, a file
    /// written by a newer writer that appended fields is refused with `Error::SchemaMismatch`.
    /// Writers always demand an exact match.
    pub fn exact_schema(mut self, yes: bool) -> Self {
        self.exact_schema = yes;
        self
    }

    /// Whether a file owned by `uid` may be opened by a process whose effective user is `euid`.
    fn trusts(&self, uid: u32, euid: u32) -> bool {
        uid == euid || uid == 0 || self.trusted_owners.contains(&uid)
    }

    /// Accept a file that users other than its owner may write (mode `& 0o022 != 0`).
    ///
    /// Off by default: such a user could change the header's meaning under a running reader, or
    /// truncate the file. Readers stay memory-safe either way for values (everything is
    /// validated), but a truncation while mapped raises SIGBUS.
    pub fn allow_shared_writable(mut self, yes: bool) -> Self {
        self.allow_shared_writable = yes;
        self
    }
}

/// A state file whose header and manifest have been read and validated.
#[derive(Debug)]
pub(crate) struct Validated {
    pub(crate) file: File,
    pub(crate) header: Header,
    pub(crate) schema: Type,
    /// The manifest's bytes, as validated (a recorder copies them into its log's header).
    pub(crate) manifest: Vec<u8>,
    /// The manifest's first 8 bytes (zero past its end), as validated: the word a reader checks
    /// to notice that the file was truncated under its mapping (`Mapping::intact`).
    pub(crate) canary: u64,
}

/// Opens `path` (read-only unless `write`) refusing symlinks, non-regular files, files owned by
/// an untrusted user and, unless allowed, files others can write.
pub(crate) fn open_checked(path: &Path, write: bool, opts: &OpenOptions) -> Result<File, Error> {
    let file = crate::os::open_existing(path, write).map_err(|e| {
        if crate::os::is_symlink_refusal(&e) {
            Error::Insecure {
                path: path.to_owned(),
                why: Insecurity::Symlink,
            }
        } else if e.kind() == io::ErrorKind::IsADirectory
            || e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error())
        {
            // A directory cannot be opened for writing (EISDIR), and a Unix socket cannot be
            // opened at all (ENXIO; so can a FIFO with no reader, opened `O_NONBLOCK` for
            // writing): the same refusal a reader of any other non-regular file gets from the
            // `fstat` check below. A regular file never gives either.
            Error::Insecure {
                path: path.to_owned(),
                why: Insecurity::NotRegularFile,
            }
        } else {
            Error::io(path, "open", e)
        }
    })?;
    let meta = file.metadata().map_err(|e| Error::io(path, "stat", e))?;
    if !meta.file_type().is_file() {
        return Err(Error::Insecure {
            path: path.to_owned(),
            why: Insecurity::NotRegularFile,
        });
    }
    let (uid, euid) = (meta.uid(), rustix::process::geteuid().as_raw());
    if !opts.trusts(uid, euid) {
        return Err(Error::Insecure {
            path: path.to_owned(),
            why: Insecurity::UntrustedOwner { uid },
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && !opts.allow_shared_writable {
        return Err(Error::Insecure {
            path: path.to_owned(),
            why: Insecurity::WritableByOthers { mode },
        });
    }
    Ok(file)
}

/// Reads as much of `buf` as the file holds from `offset`; returns the number of bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads and validates the header and manifest of an opened file.
pub(crate) fn validate(path: &Path, file: File) -> Result<Validated, Error> {
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "stat", e))?
        .len();
    let mut head = [0u8; HEADER_LEN];
    let n = read_full_at(&file, &mut head, 0).map_err(|e| Error::io(path, "read header", e))?;
    let header = Header::parse(path, &head[..n], len)?;

    let mut manifest = vec![0u8; header.manifest_len as usize];
    let n = read_full_at(&file, &mut manifest, header.manifest_offset)
        .map_err(|e| Error::io(path, "read manifest", e))?;
    if n != manifest.len() {
        return Err(Error::WrongLength {
            path: path.to_owned(),
            expected: header.file_len,
            actual: header.manifest_offset + n as u64,
        });
    }
    let schema = schema_from_manifest(path, &header, &manifest)?;
    let mut head = [0u8; 8];
    let n = manifest.len().min(8);
    head[..n].copy_from_slice(&manifest[..n]);
    Ok(Validated {
        file,
        header,
        schema,
        manifest,
        canary: u64::from_ne_bytes(head),
    })
}

/// Checks the manifest against the header's schema hash and payload geometry and decodes it.
pub(crate) fn schema_from_manifest(
    path: &Path,
    header: &Header,
    manifest: &[u8],
) -> Result<Type, Error> {
    let corrupt = |offset, reason: String| Error::CorruptManifest {
        path: path.to_owned(),
        offset,
        reason,
    };
    let hash = fnv1a64(manifest);
    if hash != header.schema_hash {
        return Err(corrupt(
            0,
            format!(
                "FNV-1a 64 of the manifest is {hash:#018x}, the header's schema_hash is {:#018x}",
                header.schema_hash
            ),
        ));
    }
    let schema = Type::from_manifest(manifest).map_err(|e| corrupt(e.offset, e.reason))?;
    if schema.size as u64 != header.payload_size || schema.align as u64 != header.payload_align {
        return Err(corrupt(
            5,
            format!(
                "manifest type has size {} align {}, header says payload_size {} payload_align {}",
                schema.size, schema.align, header.payload_size, header.payload_align
            ),
        ));
    }
    Ok(schema)
}
