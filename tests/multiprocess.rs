//! One writer process and several reader processes share a state file: every snapshot any reader
//! takes must be untorn (all words equal) and versions must never go backwards.
//!
//! The processes are this test binary re-run as children (see `common`); `child_process` is their
//! entry point and does nothing in a normal test run.

mod common;

use std::time::{Duration, Instant};

use common::{field, spawn_child, ChildProc, TempDir, MILLIS_ENV, PATH_ENV};
use mapped_state::{Error, Reader, Writer};

/// Words of the payload: 4 KiB, so a snapshot copy takes long enough to overlap commits often.
const WORDS: usize = 512;
type Payload = [u64; WORDS];

/// How long the readers read at least. They read on (up to `READ_LIMIT_MILLIS`) until they
/// have checked `MIN_READS` snapshots and seen `MIN_VERSIONS_SEEN` versions, so a loaded
/// machine makes the test slower, not failing; the counts are what the test asserts, not speed.
const READ_MILLIS: u64 = 2_000;
const READ_LIMIT_MILLIS: u64 = 30_000;
/// Hard bound on the whole test; children still running then are killed.
const HARD_LIMIT: Duration = Duration::from_secs(90);
/// Each reader must check at least this many snapshots, or the test proves nothing.
const MIN_READS: u64 = 1_000;
/// Each reader must see the value change at least this often while it reads.
const MIN_VERSIONS_SEEN: u64 = 10;

const CHILD: &str = "child_process";

/// Entry point of the child processes; returns at once in a normal test run.
#[test]
fn child_process() {
    let Some(role) = common::child_role() else {
        return;
    };
    let path = std::path::PathBuf::from(common::child_env(PATH_ENV));
    let millis: u64 = common::child_env(MILLIS_ENV).parse().expect("millis");
    match role.as_str() {
        "writer" => run_writer(&path, millis),
        "reader" => run_reader(&path, millis),
        other => panic!("unknown role {other}"),
    }
}

/// Publishes `[c; WORDS]` for c = 1, 2, ... until the parent creates `<path>.stop` or `millis`
/// pass.
fn run_writer(path: &std::path::Path, millis: u64) {
    let mut w = Writer::<Payload>::open(path).expect("writer open");
    let start = w.get()[0];
    common::report(
        "writer",
        &[
            ("event", "ready".into()),
            ("pid", std::process::id().to_string()),
            ("value", start.to_string()),
        ],
    );
    let stop = stop_file(path);
    let deadline = Instant::now() + Duration::from_millis(millis);
    let mut c = start;
    loop {
        c += 1;
        w.publish(&[c; WORDS]);
        if c.is_multiple_of(256) && (stop.exists() || Instant::now() >= deadline) {
            break;
        }
    }
    common::report(
        "writer",
        &[
            ("event", "done".into()),
            ("commits", (c - start).to_string()),
            ("value", c.to_string()),
            ("version", w.version().to_string()),
        ],
    );
}

fn stop_file(path: &std::path::Path) -> std::path::PathBuf {
    path.with_extension("stop")
}

/// Reads for `millis` (or longer, see `READ_MILLIS`), checking every snapshot: whole-value loads (`load_versioned`) and
/// 8-word field reads (`read_plain`) at moving offsets.
fn run_reader(path: &std::path::Path, millis: u64) {
    let r = Reader::<Payload>::open(path).expect("reader open");
    #[cfg(target_os = "linux")]
    {
        let perms = common::mapping_perms(path);
        assert!(
            !perms.is_empty() && perms.iter().all(|p| p.starts_with("r-")),
            "reader mapping of {} is not read-only: {perms:?}",
            path.display()
        );
    }
    let started = Instant::now();
    let limit = started + Duration::from_millis(READ_LIMIT_MILLIS);
    let enough = |reads: u64, versions_seen: u64| {
        started.elapsed() >= Duration::from_millis(millis)
            && reads >= MIN_READS
            && versions_seen >= MIN_VERSIONS_SEEN
    };
    let (mut reads, mut field_reads, mut contended, mut versions_seen) = (0u64, 0u64, 0u64, 0u64);
    let (mut torn, mut version_back, mut value_back, mut same_version_differs) = (0, 0, 0, 0);
    // `last_*`: the previous whole snapshot; `max_seen`: the largest value any read returned.
    let (mut last_version, mut last_value, mut max_seen) = (0u64, 0u64, 0u64);
    let mut first_value = None;
    let mut i = 0usize;
    while !enough(reads, versions_seen) && Instant::now() < limit {
        i += 1;
        match r.load_versioned() {
            Ok((v, version)) => {
                reads += 1;
                let x = v[0];
                if v.iter().any(|&w| w != x) {
                    torn += 1;
                    eprintln!("torn snapshot at version {version}: {:?}", distinct(&v));
                }
                if version < last_version {
                    version_back += 1;
                }
                if x < max_seen {
                    value_back += 1;
                }
                if version == last_version && x != last_value && first_value.is_some() {
                    same_version_differs += 1;
                }
                if version != last_version {
                    versions_seen += 1;
                }
                first_value.get_or_insert(x);
                (last_version, last_value) = (version, x);
                max_seen = max_seen.max(x);
            }
            // The retry budget ran out while the writer kept committing: not a torn read, and
            // the next call starts afresh.
            Err(Error::Contended { .. }) => contended += 1,
            Err(e) => panic!("reader: {e}"),
        }
        // A field read of 8 words at an offset that walks the payload: untorn, and never older
        // than the snapshot before it (the counter only grows).
        let word = (i * 7) % (WORDS - 8);
        let f: [u64; 8] = r.raw().read_plain(word * 8);
        field_reads += 1;
        if f.iter().any(|&w| w != f[0]) {
            torn += 1;
            eprintln!("torn field read at word {word}: {f:?}");
        }
        if f[0] < max_seen {
            value_back += 1;
        }
        max_seen = max_seen.max(f[0]);
    }
    common::report(
        "reader",
        &[
            ("reads", reads.to_string()),
            ("field_reads", field_reads.to_string()),
            ("contended", contended.to_string()),
            ("versions_seen", versions_seen.to_string()),
            ("torn", torn.to_string()),
            ("version_back", version_back.to_string()),
            ("value_back", value_back.to_string()),
            ("same_version_differs", same_version_differs.to_string()),
            ("first_value", first_value.unwrap_or(0).to_string()),
            ("max_seen", max_seen.to_string()),
        ],
    );
}

/// The distinct values in a torn snapshot, for the failure message.
fn distinct(v: &[u64]) -> Vec<u64> {
    let mut d = v.to_vec();
    d.sort_unstable();
    d.dedup();
    d
}

#[test]
fn one_writer_process_many_reader_processes_never_tear() {
    let dir = TempDir::new("multiprocess");
    let path = dir.join("counter.state");
    drop(Writer::<Payload>::create(&path, &[0; WORDS]).expect("create"));
    let hard = Instant::now() + HARD_LIMIT;
    let env = |millis: u64| {
        vec![
            (PATH_ENV, path.display().to_string()),
            (MILLIS_ENV, millis.to_string()),
        ]
    };

    // The writer runs until told to stop (or, as a bound, much longer than the readers).
    let writer = spawn_child(CHILD, "writer", &env(READ_LIMIT_MILLIS * 2));
    let ready = writer
        .next_report(hard)
        .expect("writer did not report ready");
    assert_eq!(ready["event"], "ready");
    assert_eq!(field(&ready, "pid"), u64::from(writer.id()));

    // A second writer is refused while the first one lives, and told who holds the file.
    match Writer::<Payload>::open(&path) {
        Err(e @ Error::WriterActive { pid, .. }) => {
            assert_eq!(pid, Some(writer.id()), "{e}");
            assert!(
                e.to_string().contains(&format!("pid {}", writer.id())),
                "{e}"
            );
        }
        other => panic!("second writer: expected WriterActive, got {other:?}"),
    }
    let probe = Reader::<Payload>::open(&path).expect("reader open");
    assert!(probe.writer_alive());
    assert_eq!(probe.writer_pid(), Some(writer.id()));

    let readers: Vec<ChildProc> = (0..2)
        .map(|_| spawn_child(CHILD, "reader", &env(READ_MILLIS)))
        .collect();
    let reports: Vec<_> = readers.into_iter().map(|r| r.finish(hard)).collect();
    std::fs::write(stop_file(&path), b"").expect("create stop file");
    let done = writer.finish(hard);
    assert_eq!(done["event"], "done");

    let commits = field(&done, "commits");
    let final_value = field(&done, "value");
    println!("writer: {commits} commits, final value {final_value}");
    for (n, r) in reports.iter().enumerate() {
        println!(
            "reader {n}: {} snapshots + {} field reads checked, {} versions seen, {} contended, torn {}, version regressions {}, value regressions {}, same-version-different-value {}",
            field(r, "reads"),
            field(r, "field_reads"),
            field(r, "versions_seen"),
            field(r, "contended"),
            field(r, "torn"),
            field(r, "version_back"),
            field(r, "value_back"),
            field(r, "same_version_differs"),
        );
        assert_eq!(field(r, "torn"), 0, "reader {n} saw torn values");
        assert_eq!(field(r, "version_back"), 0, "reader {n}: version went back");
        assert_eq!(field(r, "value_back"), 0, "reader {n}: value went back");
        assert_eq!(field(r, "same_version_differs"), 0, "reader {n}");
        assert!(
            field(r, "reads") >= MIN_READS,
            "reader {n} checked too few snapshots to mean anything: {r:?}"
        );
        assert!(
            field(r, "versions_seen") >= MIN_VERSIONS_SEEN,
            "reader {n} never saw the writer make progress: {r:?}"
        );
        assert!(field(r, "max_seen") <= final_value);
    }

    // After the writer exits, every reader sees its last commit and no live writer.
    assert!(!probe.writer_alive());
    let (v, version) = probe.load_versioned().expect("final load");
    assert_eq!(v, [final_value; WORDS]);
    assert_eq!(version, field(&done, "version"));
}
