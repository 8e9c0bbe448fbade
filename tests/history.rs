//! The ring as history, across processes: a writer process commits flat out (single-field
//! commits on each of two pages and whole publishes), lapping the ring over and over, while
//! reader processes read the newest version and the versions before it. Every value a reader
//! gets is whole and is exactly the value of the version it is returned under; a version the
//! writer has overwritten is reported gone, never returned torn or under the wrong version.
//!
//! The processes are this test binary re-run as children (see `common`); `child_process` is their
//! entry point and does nothing in a normal test run.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::paged::{commit_progress, Paged};
use common::{field, spawn_child, TempDir, MILLIS_ENV, PATH_ENV};
use mapped_state::{Error, Reader, Writer};

const CHILD: &str = "child_process";
/// How long the readers read at least; they go on (up to the limit) until their counts are met.
const READ_MILLIS: u64 = 1_500;
const READ_LIMIT: Duration = Duration::from_secs(30);
/// Each reader must have had this many history reads accepted and this many refused as gone.
const MIN_OK: u64 = 1_000;
const MIN_GONE: u64 = 100;

#[test]
fn child_process() {
    let Some(role) = common::child_role() else {
        return;
    };
    let path = PathBuf::from(common::child_env(PATH_ENV));
    let millis: u64 = common::child_env(MILLIS_ENV).parse().expect("millis");
    match role.as_str() {
        "writer" => run_writer(&path, millis),
        "reader" => run_reader(&path, millis),
        other => panic!("unknown role {other}"),
    }
}

/// Commits progress 1, 2, ... (version `p` holds `Paged::at(p)`) until `<path>.stop` appears.
fn run_writer(path: &Path, millis: u64) {
    let mut w = Writer::<Paged>::open(path).expect("writer open");
    let stop = path.with_extension("stop");
    let deadline = Instant::now() + Duration::from_millis(millis);
    let mut p = 0;
    loop {
        p += 1;
        assert_eq!(commit_progress(&mut w, p), p);
        if p.is_multiple_of(256) && (stop.exists() || Instant::now() >= deadline) {
            break;
        }
    }
    common::report("writer", &[("commits", p.to_string())]);
}

fn run_reader(path: &Path, millis: u64) {
    let r = Reader::<Paged>::open(path).expect("reader open");
    let slots = r.raw().header().slot_count;
    let started = Instant::now();
    let (mut newest, mut ok, mut gone, mut not_yet) = (0u64, 0u64, 0u64, 0u64);
    let (mut torn, mut mislabelled, mut back) = (0u64, 0u64, 0u64);
    let mut last = 0u64;
    let mut i = 0u64;
    while started.elapsed() < Duration::from_millis(millis) || ok < MIN_OK || gone < MIN_GONE {
        assert!(
            started.elapsed() < READ_LIMIT,
            "reader ran out of time: ok {ok} gone {gone}"
        );
        i += 1;
        match r.load_versioned() {
            Ok((v, version)) => {
                newest += 1;
                match v.progress() {
                    None => torn += 1,
                    Some(p) if p != version => mislabelled += 1,
                    Some(_) => {}
                }
                back += u64::from(version < last);
                last = version;
            }
            Err(Error::Contended { .. }) => {}
            Err(e) => panic!("reader: {e}"),
        }
        // The versions the ring should still hold, and one past it: the older ones are lapped
        // while they are read, the newest ones are the writer's next targets.
        let h = last.saturating_sub(i % (slots + 1));
        match r.load_version(h) {
            Ok(v) => {
                ok += 1;
                if v != Paged::at(h) {
                    if v.progress().is_none() {
                        torn += 1;
                    } else {
                        mislabelled += 1;
                    }
                    eprintln!("version {h} returned {:?}", v.progress());
                }
            }
            Err(Error::VersionGone { .. }) => gone += 1,
            Err(Error::VersionNotYet { .. }) => not_yet += 1,
            Err(e) => panic!("history read: {e}"),
        }
    }
    common::report(
        "reader",
        &[
            ("newest", newest.to_string()),
            ("ok", ok.to_string()),
            ("gone", gone.to_string()),
            ("not_yet", not_yet.to_string()),
            ("torn", torn.to_string()),
            ("mislabelled", mislabelled.to_string()),
            ("back", back.to_string()),
        ],
    );
}

#[test]
fn history_reads_never_return_a_torn_or_mislabelled_version_while_the_writer_laps_them() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("history");
    let path = dir.join("paged.state");
    drop(Writer::<Paged>::create(&path, &Paged::all(0)).expect("create"));
    let env = |millis: u64| {
        vec![
            (PATH_ENV, path.display().to_string()),
            (MILLIS_ENV, millis.to_string()),
        ]
    };
    let hard = Instant::now() + Duration::from_secs(60);
    let writer = spawn_child(CHILD, "writer", &env(60_000));
    let readers: Vec<_> = (0..2)
        .map(|_| spawn_child(CHILD, "reader", &env(READ_MILLIS)))
        .collect();
    let reports: Vec<_> = readers.into_iter().map(|r| r.finish(hard)).collect();
    std::fs::write(path.with_extension("stop"), b"").expect("stop file");
    let w = writer.finish(hard);
    println!("writer: {} commits", field(&w, "commits"));
    for (n, r) in reports.iter().enumerate() {
        println!("reader {n}: {r:?}");
        assert_eq!(field(r, "torn"), 0, "reader {n}");
        assert_eq!(field(r, "mislabelled"), 0, "reader {n}");
        assert_eq!(field(r, "back"), 0, "reader {n}");
        assert!(
            field(r, "ok") >= MIN_OK && field(r, "gone") >= MIN_GONE,
            "reader {n}: {r:?}"
        );
    }
}
