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
//! Beyond reading the current value:
//!
//! - [`Reader::updates`] blocks until each new version, with exact accounting of the versions
//!   skipped; [`Reader::follow`] ([`Follow`]) follows a path through the file's whole life
//!   (waiting for it to appear, writers exiting and coming back, the file being replaced), with
//!   quiet periods reported as items and a separate total deadline; [`wait_any`] waits on
//!   several files at once.
//! - With feature `tokio` (alias `async`, runtime-agnostic): `AsyncUpdates` (`changed().await`
//!   and a `Stream`), `Follow` as a `Stream`, and `wait_any_async`, served by one waker thread
//!   per process that never runs while nothing waits.
//!
//! The file format and the read/write protocols are specified in `docs/FORMAT.md`.
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
pub mod schema;
#[cfg(not(loom))]
mod select;
#[cfg(not(loom))]
mod slots;
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
    error::{Error, Insecurity, Result},
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
    pub use crate::derive_support::{invalid_enum, Align, AlignMarker, ConstMsg, FieldType, Slot};
    pub use crate::schema::{
        align_up, check_type, hex_u64, EnumDesc, FieldDesc, Kind, Prim, StructDesc, TypeDesc,
        VariantDesc,
    };
    pub use crate::state::{DecodeError, InPlace, MappedState, Plain};
    pub use crate::view::{Fields, NoFields, ReadView, WriteView};
    pub use crate::{Error, RawReader, RawWriter};
}
