//! The follower's status file, `<replica>.mirror`: what the replica's readers need to know about
//! the remote source that the replica file itself cannot say (its format has no field for it).
//! An ordinary state file of the fixed type [`MirrorStatus`], written by the follower, so every
//! reader — `Reader<MirrorStatus>`, the CLI, Python, C — reads it with the ordinary API.

use std::path::{Path, PathBuf};

use mapped_state::MappedState;

/// Replica versions whose source version the status file remembers.
pub const HISTORY: usize = 16;

/// The path of the status file of the replica at `replica`: the same path with `.mirror`
/// appended (`engine.state` → `engine.state.mirror`).
pub fn status_path(replica: &Path) -> PathBuf {
    let mut s = replica.as_os_str().to_owned();
    s.push(".mirror");
    PathBuf::from(s)
}

/// Contents of a replica's status file (see `docs/FORMAT.md`, "Mirrors").
///
/// The follower commits the entry for a replica version into this file *before* it commits that
/// version into the replica, so a reader that has read replica version `v` finds `v` here with
/// [`source_of`](Self::source_of) (unless the follower has since committed [`HISTORY`] more
/// versions). The one exception is version 0 of a newly created replica: that file's nonce is
/// known only once it exists, so its entry follows it by a moment; wait for it.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct MirrorStatus {
    /// Header nonce of the replica file the entries describe (changes when it is replaced).
    pub replica_nonce: u64,
    /// Per replica version `v`, at index `v % HISTORY`: `v + 1` (0: no entry).
    pub replica_versions: [u64; HISTORY],
    /// The source version committed as that replica version.
    pub source_versions: [u64; HISTORY],
    /// Source versions not committed to the replica just before it (publisher conflation, lost
    /// samples), as the mirror counted them.
    pub skipped: [u64; HISTORY],
    /// The source's commit time of it, ns since the Unix epoch, source machine clock.
    pub source_commit_ns: [u64; HISTORY],
    /// Schema hash of the source (and of the replica).
    pub source_schema_hash: u64,
    /// Identity (header nonce) of the source file; source versions restart when it changes.
    pub source_nonce: u64,
    /// The newest source version the follower has committed.
    pub source_version: u64,
    /// Values committed into replicas by followers of this path, in all.
    pub received: u64,
    /// Source versions skipped, in all (sum of the per-version `skipped`).
    pub skipped_total: u64,
    /// When the follower last heard from the publisher (a value, a snapshot or a liveliness
    /// change), ns since the Unix epoch, follower clock.
    pub heard_ns: u64,
    /// The pid of the follower writing this file.
    pub follower_pid: u64,
    /// Whether the source file's writer is alive, as the publisher last said.
    pub source_writer_alive: bool,
    /// Whether the publisher is reachable (its liveliness token is seen).
    pub publisher_alive: bool,
}

/// What the mirror knows of one replica version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// The source version it holds.
    pub source_version: u64,
    /// Source versions skipped just before it.
    pub skipped: u64,
    /// The source's commit time, ns since the Unix epoch.
    pub source_commit_ns: u64,
}

impl MirrorStatus {
    /// An empty status for the replica with nonce `replica_nonce`.
    pub fn empty(replica_nonce: u64) -> Self {
        MirrorStatus {
            replica_nonce,
            replica_versions: [0; HISTORY],
            source_versions: [0; HISTORY],
            skipped: [0; HISTORY],
            source_commit_ns: [0; HISTORY],
            source_schema_hash: 0,
            source_nonce: 0,
            source_version: 0,
            received: 0,
            skipped_total: 0,
            heard_ns: 0,
            follower_pid: u64::from(std::process::id()),
            source_writer_alive: false,
            publisher_alive: false,
        }
    }

    /// The source version held by version `replica_version` of the replica file whose header
    /// nonce is `replica_nonce`, if this status still remembers it.
    pub fn source_of(&self, replica_nonce: u64, replica_version: u64) -> Option<SourceEntry> {
        let i = (replica_version % HISTORY as u64) as usize;
        (self.replica_nonce == replica_nonce
            && self.replica_versions[i] == replica_version.wrapping_add(1))
        .then(|| SourceEntry {
            source_version: self.source_versions[i],
            skipped: self.skipped[i],
            source_commit_ns: self.source_commit_ns[i],
        })
    }

    /// Records that replica version `replica_version` holds `entry`.
    pub(crate) fn record(&mut self, replica_version: u64, entry: SourceEntry) {
        let i = (replica_version % HISTORY as u64) as usize;
        self.replica_versions[i] = replica_version.wrapping_add(1);
        self.source_versions[i] = entry.source_version;
        self.skipped[i] = entry.skipped;
        self.source_commit_ns[i] = entry.source_commit_ns;
        self.source_version = entry.source_version;
        self.skipped_total += entry.skipped;
        self.received += 1;
    }
}
