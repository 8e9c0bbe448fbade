//! `Error`: every way opening, reading or writing a state file can fail, each naming the file and
//! what is wrong with it.

use std::path::PathBuf;

use crate::state::DecodeError;

/// Why a file is refused as insecure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Insecurity {
    /// The path is a symbolic link (state files are opened with `O_NOFOLLOW`).
    Symlink,
    /// The path is not a regular file (a directory, a FIFO, a device, ...).
    NotRegularFile,
    /// Users other than the owner may write the file (mode `& 0o022 != 0`).
    WritableByOthers {
        /// The file's permission bits.
        mode: u32,
    },
    /// The writer's lock file beside the state file is owned by another user, or others may
    /// open it: whoever can open it can hold the lock and keep every writer out.
    UntrustedLockFile {
        /// The lock file's owner.
        owner: u32,
        /// The lock file's permission bits.
        mode: u32,
    },
    /// The file is owned by a user that is neither the process's effective user, nor root, nor
    /// named with `OpenOptions::trust_owner`: its owner could truncate it under every reader.
    UntrustedOwner {
        /// The owner's user id.
        uid: u32,
    },
}

impl std::fmt::Display for Insecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Insecurity::Symlink => f.write_str("it is a symbolic link; open the file it points to"),
            Insecurity::NotRegularFile => f.write_str("it is not a regular file"),
            Insecurity::WritableByOthers { mode } => write!(
                f,
                "its mode {mode:o} lets group or other users write it; `chmod go-w` it or opt in with `OpenOptions::allow_shared_writable`"
            ),
            Insecurity::UntrustedLockFile { owner, mode } => write!(
                f,
                "this writer lock file is owned by uid {owner} with mode {mode:o}; it must belong to the writer's user with mode 0600 (remove it if no writer runs)"
            ),
            Insecurity::UntrustedOwner { uid } => write!(
                f,
                "it is owned by uid {uid}, neither this user nor root, and its owner could change or truncate it under this process; trust that owner with `OpenOptions::trust_owner({uid})`"
            ),
        }
    }
}

/// What to do about an [`Error::SchemaMismatch`]; its `Display` says it in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaFix {
    /// The file lacks fields of this program's type that declare no default.
    DeclareDefaults,
    /// The file changed a field this program reads (type, offset or name).
    KeepFields,
    /// Both: fields lack defaults, and a field changed.
    DeclareDefaultsAndKeepFields,
    /// The file is a compatible version, refused only because the reader asked for an exact
    /// match.
    DropExactSchema,
    /// A writer of another version of the type: it must migrate the file or replace it.
    Migrate,
    /// A migration met a field whose type changed: it cannot convert values.
    RenameOrReplace,
    /// A migration would carry nothing over: the file holds unrelated data.
    Replace,
}

const DEFAULTS: &str = "declare a default for each field the file lacks (`#[mapped_state(default)]` or `#[mapped_state(default = ...)]` on the field), so this program reads older files";
const KEEP: &str = "a field may never change type, offset or name: keep the old field (deprecated) and append the new one under another name; or rewrite the file as this type with `Writer::open_migrating` (or `CreateOptions::replace(true)`) and update its other readers";

impl std::fmt::Display for SchemaFix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaFix::DeclareDefaults => write!(
                f,
                "{DEFAULTS}; or have the file's writer migrate it to this type with `Writer::open_migrating`"
            ),
            SchemaFix::KeepFields => f.write_str(KEEP),
            SchemaFix::DeclareDefaultsAndKeepFields => write!(f, "{DEFAULTS}; and {KEEP}"),
            SchemaFix::DropExactSchema => f.write_str(
                "the file is a compatible version of this type: drop `OpenOptions::exact_schema` to read it",
            ),
            SchemaFix::Migrate => f.write_str(
                "a writer must match the file's schema exactly: rewrite the file as this type with `Writer::open_migrating` (carries over the fields both types share), or start afresh with `CreateOptions::replace(true)`",
            ),
            SchemaFix::Replace => f.write_str(
                "if the file's data is not needed, start afresh with `CreateOptions::replace(true)`",
            ),
            SchemaFix::RenameOrReplace => f.write_str(
                "give the new field another name (its value then comes from the value passed to `open_migrating`), or start afresh with `CreateOptions::replace(true)`",
            ),
        }
    }
}

/// Everything that can go wrong with a state file.
///
/// Every variant names the file. Header problems name the header field and its byte offset; value
/// problems name the payload field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`"open"`, `"read header"`, ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the state-file magic.
    #[error("{path}: not a mapped-state file (first bytes {found:02x?}, expected \"MAPSTATE\")")]
    NotAStateFile {
        /// The file.
        path: PathBuf,
        /// The first bytes found (up to 8).
        found: Vec<u8>,
    },

    /// The file's format version is not one this library reads.
    #[error(
        "{path}: format version {found} is not supported (this library reads version {supported})"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this library reads and writes.
        supported: u32,
    },

    /// The file was written on a machine of the other byte order.
    #[error("{path}: written with the other byte order (endian tag {found:#010x}); state files are native-endian and cannot be shared across byte orders")]
    ForeignEndian {
        /// The file.
        path: PathBuf,
        /// The endian tag as read here.
        found: u32,
    },

    /// A header field holds a value that cannot be right.
    #[error(
        "{path}: corrupt header: field `{field}` at byte {offset} is {found}, expected {expected}"
    )]
    CorruptHeader {
        /// The file.
        path: PathBuf,
        /// The header field.
        field: &'static str,
        /// Byte offset of the field in the file.
        offset: usize,
        /// What the field should hold.
        expected: String,
        /// What it holds.
        found: String,
    },

    /// The stored schema manifest is malformed.
    #[error("{path}: corrupt schema manifest at manifest byte {offset}: {reason}")]
    CorruptManifest {
        /// The file.
        path: PathBuf,
        /// Byte offset inside the manifest.
        offset: usize,
        /// What is wrong.
        reason: String,
    },

    /// The file is shorter or longer than its header says.
    #[error("{path}: file is {actual} bytes long, expected {expected}{}", if *actual < *expected { " (truncated?)" } else { "" })]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Length the header (or the format) requires.
        expected: u64,
        /// Length found.
        actual: u64,
    },

    /// The file holds another type than the one it is opened as, and not one it can read (see
    /// the schema evolution rules, `mapped_state::evolve`). Told from the caller's side: what
    /// this program's type has that the file lacks or holds differently, and how to fix it.
    #[error("{path}: schema mismatch: this program's `{expected_name}` (hash {expected_hash:#018x}) cannot use the file's `{found_name}` (hash {found_hash:#018x}){}{}", format_diff(differences), format_fix(fix))]
    SchemaMismatch {
        /// The file.
        path: PathBuf,
        /// Name of the type the file was opened as.
        expected_name: String,
        /// Its schema hash.
        expected_hash: u64,
        /// Name of the type stored in the file.
        found_name: String,
        /// Schema hash stored in the file.
        found_hash: u64,
        /// One line per problem, from the caller's side (``this program's `Config` has
        /// `timeout_ms: u32 @96`, the file has no such field``).
        differences: Vec<String>,
        /// What to do about it (declare a default, migrate, replace).
        fix: SchemaFix,
    },

    /// Another process holds the writer lock.
    #[error("{path}: another writer is active{}; only one writer may hold a state file", match pid { Some(p) => format!(" (pid {p})"), None => String::new() })]
    WriterActive {
        /// The file.
        path: PathBuf,
        /// The live writer's pid, as recorded in the control block.
        pid: Option<u32>,
    },

    /// The file exists and the caller did not ask to replace it.
    #[error("{path}: already exists; open it with `Writer::open`, or replace it with `CreateOptions::replace(true)`")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },

    /// The file is refused for safety.
    #[error("{path}: refused: {why}")]
    Insecure {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: Insecurity,
    },

    /// The writer kept committing while a snapshot was read, more times than the retry budget.
    #[error("{path}: gave up reading a consistent snapshot after {attempts} attempts: the writer commits faster than the value can be copied")]
    Contended {
        /// The file.
        path: PathBuf,
        /// Attempts made.
        attempts: u32,
    },

    /// The payload holds bytes that are not a valid value of the field's type.
    #[error("{path}: invalid value: {source}")]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The field, its offset and the bytes.
        #[source]
        source: DecodeError,
    },

    /// A reader waiting for updates found that no writer holds the file any more (it exited or
    /// was killed), so no update can come until a new writer opens it; or the file was replaced
    /// at its path by a newer one (`superseded`), which will never change again.
    #[error("{path}: {}", gone_message(*pid, *superseded))]
    WriterGone {
        /// The file.
        path: PathBuf,
        /// The pid of the last writer, as recorded in the control block.
        pid: Option<u32>,
        /// Whether the file was superseded (replaced at its path) rather than just abandoned.
        superseded: bool,
    },

    /// The file was truncated while mapped: what a read found can be zeros of the lost bytes,
    /// not a committed value, so it is refused. Reopening the path gives the file's real state.
    #[error("{path}: truncated while open (it was {len} bytes): the value read may be lost bytes, not a committed value; reopen the file")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length when it was opened.
        len: u64,
    },

    /// A version asked for is no longer in the ring: the writer has overwritten its slot (or
    /// was overwriting it during the read), so it can never be read again.
    #[error("{path}: version {version} is gone: the writer has overwritten it (the newest is {newest}; the ring holds as many versions as it has slots, see `CreateOptions::slots`)")]
    VersionGone {
        /// The file.
        path: PathBuf,
        /// The version asked for.
        version: u64,
        /// The newest version when the read was made.
        newest: u64,
    },

    /// A version asked for has not been committed yet.
    #[error("{path}: version {version} is not committed yet (the newest is {newest})")]
    VersionNotYet {
        /// The file.
        path: PathBuf,
        /// The version asked for.
        version: u64,
        /// The newest version when the read was made.
        newest: u64,
    },

    /// The type cannot be stored (its payload is empty or too large for format v2).
    #[error("{path}: type `{name}` cannot be stored: {reason}")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// Schema name of the type.
        name: String,
        /// Why.
        reason: String,
    },
}

fn format_diff(diff: &[String]) -> String {
    if diff.is_empty() {
        String::new()
    } else {
        format!(": {}", diff.join("; "))
    }
}

fn format_fix(fix: &SchemaFix) -> String {
    format!(". Fix: {fix}")
}

fn gone_message(pid: Option<u32>, superseded: bool) -> String {
    if superseded {
        return "superseded by a newer file at the same path; reopen it by path to follow the new one"
            .to_owned();
    }
    let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    format!("the writer{who} is gone: no process holds the file, so no update can come until a writer opens it again")
}

impl Error {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::Io { path, .. }
            | Error::NotAStateFile { path, .. }
            | Error::UnsupportedVersion { path, .. }
            | Error::ForeignEndian { path, .. }
            | Error::CorruptHeader { path, .. }
            | Error::CorruptManifest { path, .. }
            | Error::WrongLength { path, .. }
            | Error::SchemaMismatch { path, .. }
            | Error::WriterActive { path, .. }
            | Error::AlreadyExists { path }
            | Error::Insecure { path, .. }
            | Error::Contended { path, .. }
            | Error::InvalidValue { path, .. }
            | Error::WriterGone { path, .. }
            | Error::VersionGone { path, .. }
            | Error::Truncated { path, .. }
            | Error::VersionNotYet { path, .. }
            | Error::UnsupportedType { path, .. } => path,
        }
    }

    pub(crate) fn io(path: &std::path::Path, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }
}

/// Shorthand for `Result<T, mapped_state::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
