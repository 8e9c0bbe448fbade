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
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub(crate) allow_shared_writable: bool,
}

impl OpenOptions {
    /// Default options: refuse files that group or other users can write.
    pub fn new() -> Self {
        Self::default()
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
}

/// Opens `path` (read-only unless `write`) refusing symlinks, non-regular files and, unless
/// allowed, files others can write.
pub(crate) fn open_checked(path: &Path, write: bool, opts: &OpenOptions) -> Result<File, Error> {
    let file = crate::os::open_existing(path, write).map_err(|e| {
        if crate::os::is_symlink_refusal(&e) {
            Error::Insecure {
                path: path.to_owned(),
                why: Insecurity::Symlink,
            }
        } else if e.kind() == io::ErrorKind::IsADirectory {
            // A directory cannot be opened for writing (EISDIR): the same refusal a reader gets
            // from the `fstat` check below.
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
    Ok(Validated {
        file,
        header,
        schema,
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

/// `Ok` when the file's schema is `T`'s; otherwise the field-level mismatch error.
pub(crate) fn check_schema<T: crate::MappedState>(path: &Path, v: &Validated) -> Result<(), Error> {
    if v.header.schema_hash == T::SCHEMA_HASH {
        return Ok(());
    }
    let want = Type::from_desc(T::TYPE);
    Err(Error::SchemaMismatch {
        path: path.to_owned(),
        expected_name: want.name(),
        expected_hash: T::SCHEMA_HASH,
        found_name: v.schema.name(),
        found_hash: v.header.schema_hash,
        differences: v.schema.diff(&want),
    })
}
