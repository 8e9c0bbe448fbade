//! A file truncated under its readers never yields an uncommitted value: a truncation inside the
//! file's last page (whose lost bytes then read as zeros) makes every read that can report it
//! fail with `Error::Truncated`; a truncation by whole pages makes an access to a lost page raise
//! SIGBUS, the documented limit (only a user allowed to write the file can truncate it).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{spawn_child, TempDir, PATH_ENV};
use mapped_state::format::PAYLOAD_OFFSET;
use mapped_state::{Error, MappedState, Reader, Writer};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Small {
    count: u64,
    ok: bool,
}

const CHILD: &str = "child_process";

#[test]
fn child_process() {
    if common::child_role().as_deref() != Some("bus-reader") {
        return;
    }
    let path = PathBuf::from(common::child_env(PATH_ENV));
    let r = Reader::<Small>::open(&path).expect("open");
    common::report("bus-reader", &[("opened", "1".into())]);
    // Read until the parent truncates the file to nothing: the access to the lost page kills
    // this process with SIGBUS (the test asserts it); a read that returns is never zeros.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(v) = r.load() {
            assert_eq!(v, Small { count: 7, ok: true }, "an uncommitted value");
        }
    }
}

#[test]
fn a_truncation_inside_the_last_page_is_an_error_never_zeros() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("truncate");
    let path = dir.join("s.state");
    let mut w = Writer::<Small>::create(&path, &Small { count: 1, ok: true }).unwrap();
    w.publish(&Small { count: 7, ok: true });
    let r = Reader::<Small>::open(&path).unwrap();
    assert_eq!(r.load().unwrap(), Small { count: 7, ok: true });
    assert!(r.raw().check_intact().is_ok(), "an intact file");
    // The whole file is one page: cut it inside the ring, after the first slot's first word.
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len < 4096, "the test needs a one-page file");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(PAYLOAD_OFFSET as u64 + 8)
        .unwrap();
    let truncated = |e: Error| matches!(e, Error::Truncated { len: l, .. } if l == len);
    assert!(truncated(r.load().unwrap_err()), "load");
    assert!(truncated(r.load_versioned().unwrap_err()), "load_versioned");
    let mut into = Small {
        count: 0,
        ok: false,
    };
    assert!(truncated(r.load_into(&mut into).unwrap_err()), "load_into");
    assert!(truncated(r.ok().unwrap_err()), "a validated field accessor");
    assert!(truncated(r.raw().snapshot().unwrap_err()), "snapshot");
    assert!(truncated(r.load_version(1).unwrap_err()), "load_version");
    assert!(
        truncated(r.raw().check_intact().unwrap_err()),
        "check_intact"
    );
    let e = r.load().unwrap_err();
    assert!(e.to_string().contains("truncated while open"), "{e}");
}

#[test]
fn a_truncation_by_whole_pages_raises_sigbus_in_a_reader_touching_them() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("truncate-bus");
    let path = dir.join("s.state");
    let mut w = Writer::<Small>::create(&path, &Small { count: 1, ok: true }).unwrap();
    w.publish(&Small { count: 7, ok: true });
    // This process must not touch the mapping after the truncation either: no writer stays.
    drop(w);
    let mut c = spawn_child(
        CHILD,
        "bus-reader",
        &[(PATH_ENV, path.display().to_string())],
    );
    let hard = Instant::now() + Duration::from_secs(30);
    c.next_report(hard).expect("the reader opened the file");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let status = c.wait_until(hard);
    assert_eq!(
        status.signal(),
        Some(7),
        "SIGBUS, the documented limit: {status}"
    );
}
