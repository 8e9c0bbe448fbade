//! Share a typed struct between processes through a memory-mapped file.
//!
//! One process publishes with a [`Writer<T>`]; any number of processes read with a
//! [`Reader<T>`], without locks or system calls, and never see a half-written value. The type's
//! layout is fixed at compile time by `#[derive(MappedState)]` and its schema is stored in the
//! file, so a reader opening the file as the wrong type gets an error listing the differing
//! fields, and tools (the `mapped-state` CLI) can print any state file by field name.
//!
//! ```
//! use mapped_state::{MappedState, Reader, Writer};
//!
//! #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
//! pub struct Status {
//!     pub requests: u64,
//!     pub healthy: bool,
//! }
//!
//! # let dir = std::env::temp_dir().join(format!("ms-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("status.state");
//! let mut w = Writer::<Status>::create(&path, &Status { requests: 0, healthy: true })?;
//! w.set_requests(41);                         // one field, one commit
//! w.update(|s| s.requests += 1);              // several fields, one atomic commit
//!
//! let r = Reader::<Status>::open(&path)?;     // checks header and schema
//! assert_eq!(r.requests(), 42);               // reads that field's words from the mapping
//! assert_eq!(r.load()?, Status { requests: 42, healthy: true });
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mapped_state::Error>(())
//! ```
//!
//! # Waiting for updates
//!
//! A reader can sleep until the next commit instead of polling, across processes, on its
//! read-only mapping (a shared futex on Linux, polling with backoff elsewhere):
//! [`Reader::wait_for_update`], [`Reader::wait_for_update_after`], and the blocking iterator
//! [`Reader::updates`]. A slow reader conflates: it gets the newest value and the exact number
//! of versions it skipped, never a torn or older one. The writer's [`WakePolicy`] decides when
//! commits wake sleepers.
//!
//! ```
//! # use mapped_state::{MappedState, Reader, Writer};
//! # use std::time::Duration;
//! # #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
//! # pub struct Status { pub requests: u64, pub healthy: bool }
//! # let dir = std::env::temp_dir().join(format!("ms-doc-wait-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("status.state");
//! # let mut w = Writer::<Status>::create(&path, &Status { requests: 0, healthy: true })?;
//! let r = Reader::<Status>::open(&path)?;
//! let (_, seen) = r.load_versioned()?;
//! w.set_requests(1); // in another process, typically
//! // Returns at once: a version newer than `seen` exists. Otherwise it would sleep.
//! let update = r.wait_for_update_after(seen, Duration::from_secs(5))?.expect("a new version");
//! assert_eq!((update.value.requests, update.skipped), (1, 0));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mapped_state::Error>(())
//! ```
//!
//! Beyond these: [`Reader::follow`] ([`Follow`]) follows a path through the file's whole life
//! (waiting for it to appear, writers exiting and coming back, the file being replaced), with
//! quiet periods reported as items and a separate total deadline; [`wait_any`] waits on
//! several files at once. With feature `tokio` (alias `async`, runtime-agnostic):
//! `AsyncUpdates` (`changed().await` and a `Stream`), `Follow` as a `Stream`, and
//! `wait_any_async`, served by one waker thread per process that never runs while nothing
//! waits.
//!
//! # Restarts
//!
//! A writer that exits or is killed, even in the middle of a commit, leaves readers on the last
//! complete value; [`Reader::writer_alive`] turns false and a blocked wait ends with
//! [`Error::WriterGone`] within its liveness interval. A restarted writer takes the same file
//! over with [`Writer::open`] (or [`Writer::open_or_create`]), completing a commit the dead one
//! left half done, and readers that kept the file open see its commits with no reopen. A writer
//! that needs a new layout creates a new file over the old one with
//! [`CreateOptions::replace`]; readers of the old file see [`Reader::superseded`] and reopen the
//! path.
//!
//! ```
//! # use mapped_state::{MappedState, Reader, Writer};
//! # #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
//! # pub struct Status { pub requests: u64, pub healthy: bool }
//! # let dir = std::env::temp_dir().join(format!("ms-doc-restart-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("status.state");
//! let w = Writer::<Status>::open_or_create(&path, &Status { requests: 0, healthy: true })?;
//! let r = Reader::<Status>::open(&path)?;
//! drop(w);                                    // the writer exits
//! assert!(!r.writer_alive());
//! let mut w = Writer::<Status>::open(&path)?; // its successor takes the file over
//! w.set_requests(7);
//! assert_eq!(r.requests(), 7);                // the same reader sees it
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mapped_state::Error>(())
//! ```
//!
//! # Permissions
//!
//! Readers open the file read-only, map it read-only and never write it: read permission is
//! all they need. Since a file's owner can rewrite or truncate it under every reader, readers
//! and writers open only files owned by their own user or root that no group or other user may
//! write; trust another owner with [`OpenOptions::trust_owner`], and accept group- or
//! world-writable files with [`OpenOptions::allow_shared_writable`]. Files are created `0600`
//! (readers must run as the same user); share one with a group through [`CreateOptions::mode`]
//! (`0o640`) and [`CreateOptions::group`], or with every user (`0o644`). The
//! single writer holds a lock on a `0600` lock file beside the state file, which readers never
//! touch. Refusals are [`Error::Insecure`] with the reason ([`Insecurity`]).
//!
//! # The `mapped-state` command
//!
//! Every file stores its schema, so the CLI (crate `mapped-state-cli`, `cargo install
//! mapped-state-cli`) prints any state file by field name with no Rust code:
//! `mapped-state inspect FILE` (or `--json`), `mapped-state watch FILE` (each new version with
//! the fields that changed), `mapped-state check FILE` (exit code for scripts) and
//! `mapped-state diff OLD NEW` (schema differences). Its JSON is the [`serde`](#features) form
//! of [`dynamic::Value`].
//!
//! # Other languages and untyped readers
//!
//! The format and protocols are specified byte by byte in the [`spec`] module (the
//! repository's `docs/FORMAT.md`), precisely enough to write a reader in another language;
//! `docs/read_state.py` is one, written from the specification alone and tested against this
//! crate's writer. In Rust, [`RawReader`] with [`dynamic`] reads any file through its stored
//! schema, without its type.
//!
//! # Features
//!
//! - `derive` (default): `#[derive(MappedState)]`.
//! - `tokio` (alias `async`): async waits, runtime-agnostic (only `futures-core`).
//! - `serde`: `Serialize`/`Deserialize` for [`FixedStr`] (a string; deserializing one longer
//!   than its capacity is an error, never a silent cut), and `Serialize` for
//!   [`dynamic::Value`] and `dynamic::ValueRef` in the CLI's JSON form. With it,
//!   `serde_json::to_string(&reader.load()?)` works for a type that derives both
//!   `MappedState` and `Serialize`.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(not(unix))]
compile_error!("mapped-state supports Unix-like systems only (it needs flock and shared mmap)");

mod sync;

/// The ring protocol, public only for the loom model (`tests/loom.rs`).
#[cfg(loom)]
pub mod ring;
#[cfg(not(loom))]
mod ring;

#[cfg(all(feature = "async", not(loom)))]
mod asynch;
#[cfg(not(loom))]
mod create;
#[cfg(not(loom))]
mod derive_support;
#[cfg(not(loom))]
pub mod dynamic;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
pub mod evolve;
#[cfg(not(loom))]
mod fixed_str;
#[cfg(not(loom))]
mod follow;
#[cfg(not(loom))]
pub mod format;
#[cfg(not(loom))]
mod lock;
#[cfg(not(loom))]
pub mod manifest;
#[cfg(not(loom))]
mod map;
#[cfg(not(loom))]
mod notify;
#[cfg(not(loom))]
mod open;
#[cfg(not(loom))]
mod os;
#[cfg(not(loom))]
mod raw_reader;
#[cfg(not(loom))]
mod raw_writer;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
pub mod record;
#[cfg(not(loom))]
pub mod schema;
#[cfg(not(loom))]
mod select;
#[cfg(all(feature = "serde", not(loom)))]
mod serde_impls;
#[cfg(not(loom))]
mod slots;
#[cfg(not(loom))]
pub mod spec;
#[cfg(not(loom))]
mod state;
#[cfg(not(loom))]
mod updates;
#[cfg(not(loom))]
mod view;
#[cfg(all(feature = "async", not(loom)))]
mod waker;
#[cfg(not(loom))]
mod words;
#[cfg(not(loom))]
mod writer;

#[cfg(not(loom))]
pub use crate::{
    create::CreateOptions,
    error::{Error, Insecurity, Result, SchemaFix},
    fixed_str::{FixedStr, TooLong},
    follow::{Event, Follow, FollowReader},
    notify::{WakePolicy, BURST_GAP},
    open::OpenOptions,
    raw_reader::RawReader,
    raw_writer::RawWriter,
    reader::Reader,
    select::wait_any,
    state::{DecodeError, InPlace, MappedState, Plain},
    updates::{Update, Updates},
    view::{Fields, NoFields, ReadView, WriteView},
    writer::Writer,
};

#[cfg(all(feature = "async", not(loom)))]
pub use crate::{
    asynch::{AsyncUpdates, Changed, ASYNC_PATH_POLL},
    select::{wait_any_async, WaitAny},
};
/// The stream trait the async waits implement (feature `async`), re-exported from
/// `futures-core`; use it with `futures::StreamExt` or `tokio_stream::StreamExt`.
#[cfg(all(feature = "async", not(loom)))]
pub use futures_core::Stream;

/// Hooks for the project's own tests (feature `test-hooks`). Not a public API.
#[cfg(all(feature = "test-hooks", not(loom)))]
#[doc(hidden)]
pub mod test_hooks {
    /// How many async waker threads run (0 or 1).
    #[cfg(feature = "async")]
    pub fn async_waker_threads() -> usize {
        crate::waker::threads()
    }

    /// Makes waits on several words behave as where `futex_waitv` is missing.
    pub fn force_no_waitv(yes: bool) {
        crate::os::force_no_waitv(yes);
    }
}

/// `#[derive(MappedState)]` (feature `derive`, on by default): the C layout it computes and
/// checks at compile time, the accessors and setters it generates, and its attributes.
#[cfg(all(feature = "derive", not(loom)))]
pub use mapped_state_derive::MappedState;

/// Items the derive's generated code uses. Not a public API: names and signatures may change in
/// any release.
#[doc(hidden)]
#[cfg(not(loom))]
pub mod __private {
    pub use crate::derive_support::{
        explain_pin, invalid_enum, Align, AlignMarker, ConstMsg, FieldType, Slot,
    };
    pub use crate::schema::{
        align_up, check_type, hex_u64, EnumDesc, FieldDesc, Kind, Prim, StructDesc, TypeDesc,
        VariantDesc,
    };
    pub use crate::state::{DecodeError, InPlace, MappedState, Plain};
    pub use crate::view::{Fields, NoFields, ReadView, WriteView};
    pub use crate::{Error, RawReader, RawWriter};
}
