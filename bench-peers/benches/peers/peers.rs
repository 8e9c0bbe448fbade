//! The two peer libraries' handles, made the same way by every row: cloudflare's mmap-sync (its
//! `Synchronizer` over three files) and the iceoryx2 blackboard (one entry holding the whole
//! struct). Settings that are not the libraries' defaults are explained at each constant.

use std::time::Duration;

use bytecheck::CheckBytes;
use iceoryx2::prelude::*;
use mmap_sync::locks::SingleWriter;
use mmap_sync::synchronizer::Synchronizer;
use rkyv::ser::serializers::AllocSerializer;
use rkyv::validation::validators::DefaultValidator;
use rkyv::{Archive, Deserialize, Infallible, Serialize};
use wyhash::WyHash;

use crate::payload::Payload;

/// mmap-sync's serializer scratch space (its default).
const SCRATCH: usize = 1024;
/// How long mmap-sync's writer sleeps between checks while a reader still holds the copy it is
/// about to overwrite. Its default is 1 s, which would turn every such collision into a
/// one-second stall; 10 µs lets the writer go on as soon as the reader is done.
const MMAP_SYNC_SLEEP_NS: u64 = 10_000;
/// How long mmap-sync's writer waits for a reader before it takes the reader for dead and resets
/// the copy's reader count. Reads take microseconds at most, so no reset is expected; any that
/// happens is counted.
const MMAP_SYNC_GRACE: Duration = Duration::from_secs(1);

/// mmap-sync with its single-writer lock (flock, taken on the first write), so that it promises
/// what mapped-state's writer does; readers use the same type and never lock.
pub type Sync = Synchronizer<WyHash, SingleWriter, SCRATCH, MMAP_SYNC_SLEEP_NS>;

pub fn sync_write<T>(s: &mut Sync, value: &T) -> bool
where
    T: Archive + Serialize<AllocSerializer<SCRATCH>>,
    T::Archived: for<'b> CheckBytes<DefaultValidator<'b>>,
{
    s.write(value, MMAP_SYNC_GRACE).expect("mmap-sync write").1
}

pub fn sync_load<T>(s: &mut Sync, check_bytes: bool) -> T
where
    T: Archive,
    T::Archived: for<'b> CheckBytes<DefaultValidator<'b>> + Deserialize<T, Infallible>,
{
    // SAFETY: the guard lives only for this statement, far shorter than MMAP_SYNC_GRACE, after
    // which the writer would reuse the copy it points into.
    let guard = unsafe { s.read::<T>(check_bytes) }.expect("mmap-sync read");
    match <T::Archived as Deserialize<T, Infallible>>::deserialize(&guard, &mut Infallible) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// mmap-sync's path prefix: it makes `<prefix>_state`, `<prefix>_data_0` and `<prefix>_data_1`.
/// Removes them on drop.
#[derive(Debug)]
pub struct SyncFiles {
    pub prefix: String,
}

impl SyncFiles {
    /// A writer on fresh files at `prefix`, holding `T::filled(0)` (readers can only open once
    /// something was written).
    pub fn create<T: Payload>(prefix: String) -> (Self, Sync) {
        let files = SyncFiles { prefix };
        files.remove();
        let mut w = files.open();
        T::sync_write(&mut w, &T::filled(0));
        (files, w)
    }

    /// A reader (or a writer that never wrote) of the files at `prefix`.
    pub fn open(&self) -> Sync {
        Sync::with_params(self.prefix.as_ref())
    }

    fn remove(&self) {
        for suffix in ["_state", "_data_0", "_data_1"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.prefix));
        }
    }
}

impl Drop for SyncFiles {
    fn drop(&mut self) {
        self.remove();
    }
}

pub type IoxNode = Node<ipc::Service>;
pub type IoxService = iceoryx2::service::port_factory::blackboard::PortFactory<ipc::Service, u64>;
pub type IoxReadEntry<T> = iceoryx2::port::reader::EntryHandle<ipc::Service, u64, T>;
pub type IoxWriteEntry<T> = iceoryx2::port::writer::EntryHandleMut<ipc::Service, u64, T>;

/// The blackboard's one entry, key 0, holding the whole struct.
const KEY: u64 = 0;

pub fn iox_node() -> IoxNode {
    NodeBuilder::new()
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

fn iox_service_name(name: &str) -> ServiceName {
    ServiceName::new(name).expect("iceoryx2 service name")
}

/// A new blackboard `name` whose one entry holds `T::filled(0)`.
pub fn iox_create<T: Payload>(node: &IoxNode, name: &str) -> IoxService {
    node.service_builder(&iox_service_name(name))
        .blackboard_creator::<u64>()
        .add::<T>(KEY, T::filled(0))
        .create()
        .expect("iceoryx2 blackboard create")
}

/// The blackboard `name` made by another node (here: another process).
pub fn iox_open(node: &IoxNode, name: &str) -> IoxService {
    node.service_builder(&iox_service_name(name))
        .blackboard_opener::<u64>()
        .open()
        .expect("iceoryx2 blackboard open")
}

/// The blackboard's reader of the one entry. The port and service must outlive it: the caller
/// keeps them.
pub fn iox_reader<T: Payload>(
    service: &IoxService,
) -> (
    iceoryx2::port::reader::Reader<ipc::Service, u64>,
    IoxReadEntry<T>,
) {
    let reader = service.reader_builder().create().expect("iceoryx2 reader");
    let entry = reader.entry::<T>(&KEY).expect("iceoryx2 read entry");
    (reader, entry)
}

/// The blackboard's writer of the one entry (one writer port per blackboard).
pub fn iox_writer<T: Payload>(
    service: &IoxService,
) -> (
    iceoryx2::port::writer::Writer<ipc::Service, u64>,
    IoxWriteEntry<T>,
) {
    let writer = service.writer_builder().create().expect("iceoryx2 writer");
    let entry = writer.entry::<T>(&KEY).expect("iceoryx2 write entry");
    (writer, entry)
}
