//! Mirror a mapped-state file to other machines over [Zenoh](https://zenoh.io).
//!
//! A [`Publisher`] follows a local state file (surviving writer restarts and replacement) and
//! publishes each version it observes — newest wins — on a zenoh key, with a [`Meta`]
//! attachment (source version, schema hash, commit time, versions skipped). A queryable answers
//! late joiners with the manifest and the newest value, and liveliness tokens say that the
//! publisher is reachable and that the source's writer is alive.
//!
//! A [`Follower`] commits every value it receives into a local *replica* state file created
//! from the source's manifest, so local readers — `Reader<T>`, the CLI, Python, C — read remote
//! state with the ordinary API. What the replica cannot say itself (source versions, skipped
//! counts, source writer alive) is in its status file `<replica>.mirror`
//! ([`MirrorStatus`]). A schema change at the source replaces the replica.
//!
//! Both are threads with their own zenoh session; the `mapped-state-mirror` binary (and
//! `mapped-state mirror`) runs them from the command line. Sessions listen and connect only on
//! the endpoints given ([`Network`]), loopback by default, with multicast scouting off.
//!
//! Key expressions used under the key `KEY`: values on `KEY`, the snapshot queryable on
//! `KEY/_mirror/snapshot`, liveliness tokens `KEY/_mirror/publisher` and `KEY/_mirror/writer`.
#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

pub mod cli;
mod follow;
mod net;
mod publish;
pub mod status;
mod task;
pub mod wire;

pub use follow::{FollowOptions, FollowStats, Follower};
pub use net::{Network, DEFAULT_CONNECT, DEFAULT_LISTEN};
pub use publish::{PublishOptions, PublishStats, Publisher};
pub use status::{status_path, MirrorStatus, SourceEntry};
pub use wire::Meta;
/// The zenoh crate this one is built on, for configuration types.
pub use zenoh;

/// Why a mirror could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A state file could not be opened, created or written.
    #[error(transparent)]
    State(#[from] mapped_state::Error),
    /// A file could not be read.
    #[error("{path}: {why}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// The key is not a usable zenoh key expression.
    #[error("key {key:?}: {why}")]
    Key {
        /// The key as given.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The zenoh configuration was refused.
    #[error("{what}: {why}")]
    Config {
        /// The setting or file.
        what: String,
        /// What zenoh said.
        why: String,
    },
    /// A zenoh operation failed.
    #[error("zenoh: {what}: {why}")]
    Zenoh {
        /// The operation.
        what: &'static str,
        /// What zenoh said.
        why: String,
    },
}

impl MirrorError {
    fn zenoh<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> MirrorError {
        move |e| MirrorError::Zenoh {
            what,
            why: e.to_string(),
        }
    }
}

/// Something a publisher or follower wants its user to know (the CLI prints them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The source file was opened (again).
    SourceOpened {
        /// Its path.
        path: PathBuf,
        /// Its schema hash.
        schema_hash: u64,
        /// Its version then.
        version: u64,
    },
    /// The source file cannot be opened or read (missing, invalid); retried.
    SourceUnavailable(String),
    /// The source's writer is gone (publisher: seen in the file; follower: told).
    SourceWriterGone,
    /// The source's writer is alive again.
    SourceWriterAlive,
    /// The follower sees the publisher (again): after a network loss or a publisher restart.
    PublisherUp,
    /// The follower lost the publisher (network loss, publisher stopped); it keeps trying.
    PublisherGone,
    /// The follower created a replica (first value, or the source's schema changed).
    ReplicaCreated {
        /// The replica's path.
        path: PathBuf,
        /// Its schema hash.
        schema_hash: u64,
        /// The schema of the replica it replaced, if it replaced one.
        replaced_schema: Option<u64>,
    },
    /// The follower took over an existing replica of the right schema.
    ReplicaTakenOver {
        /// Its path.
        path: PathBuf,
        /// Its version.
        version: u64,
    },
    /// The source file was recreated (same schema): its versions restart.
    SourceRecreated {
        /// Its schema hash.
        schema_hash: u64,
    },
    /// Bytes from the network were refused (and ignored).
    Refused(String),
    /// A zenoh operation failed (and is retried).
    NetworkError(String),
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::SourceOpened {
                path,
                schema_hash,
                version,
            } => write!(
                f,
                "source {} opened (schema {schema_hash:#018x}, version {version})",
                path.display()
            ),
            Event::SourceUnavailable(why) => {
                write!(f, "source unavailable, retrying: {why}")
            }
            Event::SourceWriterGone => {
                write!(f, "source writer gone (or its publisher unreachable)")
            }
            Event::SourceWriterAlive => write!(f, "source writer alive"),
            Event::PublisherUp => write!(f, "publisher reachable"),
            Event::PublisherGone => write!(
                f,
                "publisher lost (network loss or publisher stopped); reconnecting"
            ),
            Event::ReplicaCreated {
                path,
                schema_hash,
                replaced_schema,
            } => match replaced_schema {
                Some(old) => write!(
                    f,
                    "replica {} replaced: schema {old:#018x} -> {schema_hash:#018x}",
                    path.display()
                ),
                None => write!(
                    f,
                    "replica {} created (schema {schema_hash:#018x})",
                    path.display()
                ),
            },
            Event::ReplicaTakenOver { path, version } => {
                write!(
                    f,
                    "replica {} taken over at version {version}",
                    path.display()
                )
            }
            Event::SourceRecreated { schema_hash } => write!(
                f,
                "source file recreated (schema {schema_hash:#018x}); its versions restart"
            ),
            Event::Refused(why) => write!(f, "refused a message: {why}"),
            Event::NetworkError(why) => write!(f, "network: {why}"),
        }
    }
}

/// Where events go: called on the mirror's thread, so it should be quick.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// The key expressions of one mirrored key.
#[derive(Clone, Debug)]
struct Keys {
    data: String,
    snapshot: String,
    publisher: String,
    writer: String,
}

/// Checks `key` (a concrete zenoh key expression: no wildcards, no `_mirror` chunk) and
/// derives the mirror's keys from it.
fn keys(key: &str) -> Result<Keys, MirrorError> {
    let bad = |why: &str| MirrorError::Key {
        key: key.to_owned(),
        why: why.to_owned(),
    };
    zenoh::key_expr::KeyExpr::try_from(key).map_err(|e| bad(&e.to_string()))?;
    if key.contains('*') || key.contains('$') {
        return Err(bad("wildcards are not allowed: the key names one state"));
    }
    if key.split('/').any(|c| c == "_mirror" || c.starts_with('@')) {
        return Err(bad("the chunks `_mirror` and `@...` are reserved"));
    }
    Ok(Keys {
        data: key.to_owned(),
        snapshot: format!("{key}/_mirror/snapshot"),
        publisher: format!("{key}/_mirror/publisher"),
        writer: format!("{key}/_mirror/writer"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_refuse_wildcards_and_reserved_chunks() {
        assert!(super::keys("demo/engine").is_ok());
        for bad in [
            "demo/*",
            "demo/**",
            "a/_mirror/b",
            "",
            "a//b",
            "@/x",
            "a/$*b",
        ] {
            assert!(super::keys(bad).is_err(), "{bad:?} accepted");
        }
    }
}
