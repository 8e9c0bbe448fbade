//! The library API in one process, on loopback: a late joiner gets the newest value from the
//! snapshot queryable; the source writer's liveness reaches the status file; a schema change
//! at the source replaces the replica (its old readers learn they are superseded).

use std::path::Path;
use std::time::{Duration, Instant};

use mapped_state::{CreateOptions, MappedState, Reader, Writer};
use mapped_state_zenoh::{
    status_path, FollowOptions, Follower, MirrorStatus, Network, PublishOptions, Publisher,
};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct First {
    pub a: u64,
    pub b: u32,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Second {
    pub a: u64,
    pub name: mapped_state::FixedStr<16>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, for at most 15 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn status(replica: &Path) -> Option<MirrorStatus> {
    Reader::<MirrorStatus>::open(status_path(replica))
        .ok()?
        .load()
        .ok()
}

#[test]
fn late_joiner_liveness_and_schema_change() {
    let dir = std::env::temp_dir().join(format!("msz-lib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (source, replica) = (dir.join("source.state"), dir.join("replica.state"));
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let key = format!("msz-lib/{}", std::process::id());

    let mut w = Writer::<First>::create(&source, &First { a: 1, b: 2 }).unwrap();
    for i in 0..10 {
        w.publish(&First { a: i, b: 7 });
    }
    let publisher = Publisher::spawn(
        &source,
        &key,
        PublishOptions {
            network: Network::listen(&endpoint),
            ..PublishOptions::new()
        },
    )
    .unwrap();
    // Joins after the last commit: only the snapshot queryable can give it the value.
    let follower = Follower::spawn(
        &key,
        &replica,
        FollowOptions {
            network: Network::connect(&endpoint),
            events: Some(std::sync::Arc::new(|e| eprintln!("follower: {e}"))),
            ..FollowOptions::new()
        },
    )
    .unwrap();
    let old = eventually("the replica", || Reader::<First>::open(&replica).ok());
    eventually("the newest value", || {
        (old.load().ok()? == First { a: 9, b: 7 }).then_some(())
    });
    let st = eventually("the status", || {
        status(&replica).filter(|s| s.source_writer_alive && s.publisher_alive)
    });
    assert_eq!(st.source_version, 10);
    assert_eq!(st.source_schema_hash, First::SCHEMA_HASH);
    let e = st
        .source_of(old.raw().header().nonce, old.version())
        .expect("the replica's version is in the status file");
    assert_eq!(e.source_version, 10);

    // Streaming after the join.
    w.publish(&First { a: 100, b: 7 });
    eventually("a streamed value", || {
        (old.load().ok()?.a == 100).then_some(())
    });

    // The writer goes: the status file says so.
    drop(w);
    eventually("the writer gone", || {
        status(&replica).filter(|s| !s.source_writer_alive)
    });

    // A schema change at the source replaces the replica.
    let mut w2 = Writer::<Second>::create_with(
        &source,
        &Second {
            a: 5,
            name: "second".try_into().unwrap(),
        },
        &CreateOptions::new().replace(true),
    )
    .unwrap();
    eventually("the old replica superseded", || {
        old.superseded().then_some(())
    });
    let new = Reader::<Second>::open(&replica).expect("the replica has the new schema");
    eventually("the new value", || (new.load().ok()?.a == 5).then_some(()));
    w2.update(|s| s.a = 6);
    eventually("a value of the new schema", || {
        (new.load().ok()?.a == 6).then_some(())
    });
    let st = eventually("the status of the new replica", || {
        status(&replica).filter(|s| s.source_writer_alive && s.source_version == 1)
    });
    assert_eq!(st.source_schema_hash, Second::SCHEMA_HASH);
    assert!(
        follower
            .stats()
            .replicas
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );

    follower.stop().unwrap();
    publisher.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The untyped create a replica is made with: a manifest's bytes and payload bytes, checked.
#[test]
fn create_from_manifest_checks_its_input() {
    use mapped_state::{Error, RawWriter};
    let dir = std::env::temp_dir().join(format!("msz-untyped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("u.state");
    let manifest = mapped_state::schema::manifest_bytes(First::TYPE);
    let value = First { a: 3, b: 4 };
    let mut bytes = vec![0u8; First::TYPE.size];
    bytes[..8].copy_from_slice(&3u64.to_ne_bytes());
    bytes[8..12].copy_from_slice(&4u32.to_ne_bytes());

    let mut bad = manifest.clone();
    bad[0] = b'X';
    match RawWriter::create_from_manifest(&path, &bad, &bytes, &CreateOptions::new()) {
        Err(Error::CorruptManifest { offset: 0, .. }) => {}
        other => panic!("a corrupt manifest gave {other:?}"),
    }
    match RawWriter::create_from_manifest(&path, &manifest, &bytes[..4], &CreateOptions::new()) {
        // The value is judged against the manifest's type, naming what it should be.
        Err(Error::InvalidValue { source, .. }) => {
            assert!(
                source.to_string().contains("a value of 16 bytes"),
                "{source}"
            )
        }
        other => panic!("a short value gave {other:?}"),
    }
    assert!(!path.exists(), "a refused create left a file");

    let mut w = RawWriter::create_from_manifest(&path, &manifest, &bytes, &CreateOptions::new())
        .expect("create from the manifest");
    let r = Reader::<First>::open(&path).expect("the typed reader opens it");
    assert_eq!(r.load().unwrap(), value);
    w.write_bytes(8, &9u32.to_ne_bytes());
    assert_eq!(r.load().unwrap(), First { a: 3, b: 9 });
    let _ = std::fs::remove_dir_all(&dir);
}
