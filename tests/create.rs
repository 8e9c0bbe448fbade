//! Creating a file leaves nothing behind but the file: a creator killed at any moment of a
//! create leaves no partial file (the new file is built unnamed, `O_TMPFILE`, and linked when
//! complete) and at most the empty writer lock file; a temporary left by a creator that died
//! where unnamed files are not available is removed by the next create of that path.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{spawn_child, TempDir, PATH_ENV};
use mapped_state::{CreateOptions, Reader, Writer};

/// 32 MiB: with 2 slots a create writes 64 MiB, long enough to be killed in the middle.
const WORDS: usize = 4 << 20;

type Huge = [u64; WORDS];

/// Built on the heap: 32 MiB would not fit on a test thread's stack.
fn huge() -> Box<Huge> {
    vec![7u64; WORDS]
        .into_boxed_slice()
        .try_into()
        .expect("length")
}

const CHILD: &str = "child_process";

#[test]
fn child_process() {
    if common::child_role().as_deref() != Some("creator") {
        return;
    }
    let path = PathBuf::from(common::child_env(PATH_ENV));
    let value = huge();
    common::report("creator", &[("creating", "1".into())]);
    let opts = CreateOptions::new().slots(2);
    drop(Writer::<Huge>::create_with(&path, &value, &opts).expect("create"));
    common::report("creator", &[("created", "1".into())]);
}

#[test]
fn a_creator_killed_mid_create_leaves_no_partial_file() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("create-kill");
    let path = dir.join("big.state");
    let mut rng = common::Rng::from_env_or_clock("MS_CREATE_SEED");
    let (mut killed_before, mut finished) = (0, 0);
    for round in 0..8 {
        let _ = std::fs::remove_file(&path);
        let mut c = spawn_child(CHILD, "creator", &[(PATH_ENV, path.display().to_string())]);
        let hard = Instant::now() + Duration::from_secs(60);
        c.next_report(hard).expect("creator started");
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        c.kill9();
        let names = dir.names();
        let done = names.contains(&"big.state".to_string());
        if done {
            finished += 1;
            // A finished create: the file is complete and opens.
            assert!(
                Reader::<Huge>::open(&path).is_ok(),
                "round {round}: {names:?}"
            );
        } else {
            killed_before += 1;
        }
        for n in &names {
            assert!(
                n == "big.state" || n == ".big.state.lock",
                "round {round}: a killed creator left {n:?} behind ({names:?})"
            );
        }
        if let Ok(m) = std::fs::metadata(dir.join(".big.state.lock")) {
            assert_eq!(m.len(), 0, "the lock file is empty");
        }
    }
    println!("{killed_before} creators killed before publishing, {finished} finished");
    assert!(killed_before > 0, "no kill landed inside a create");
}

#[test]
fn a_stale_temporary_is_removed_by_the_next_create() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("create-stale");
    let path = dir.join("s.state");
    // What a creator that died before this release's unnamed files left.
    std::fs::write(
        dir.join(".s.state.4242.00000000deadbeef.tmp"),
        vec![1u8; 4096],
    )
    .unwrap();
    std::fs::write(dir.join(".other.state.4242.00000000deadbeef.tmp"), b"x").unwrap();
    drop(Writer::<[u64; 2]>::create(&path, &[1, 2]).unwrap());
    assert_eq!(
        dir.names(),
        [
            ".other.state.4242.00000000deadbeef.tmp",
            ".s.state.lock",
            "s.state"
        ],
        "only the temporaries of this path are removed"
    );
}
