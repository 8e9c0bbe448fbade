//! A writer process SIGKILLed in the middle of publishing, again and again, while reader
//! processes keep reading: readers never see a torn value or go back in time, never wait for the
//! dead writer, and each new writer takes over the file from exactly the last committed value.
//!
//! The payload spans two pages and the writer mixes whole publishes with single-field commits
//! (`set_lo`, on the first page, and `set_hi`, on the second), so kills land inside both kinds,
//! and a slot brought up to date word by word is checked as hard as one written whole.
//!
//! The processes are this test binary re-run as children (see `common`); `child_process` is their
//! entry point and does nothing in a normal test run.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::paged::{commit_progress, Paged, MID};
use common::{field, pread, pread_u64, spawn_child, ChildProc, TempDir, MILLIS_ENV, PATH_ENV};
use mapped_state::format::{off, PAYLOAD_OFFSET};
use mapped_state::{Error, MappedState, Reader, Writer};

/// Distance between two slots in the file (the payload is a multiple of 64 bytes).
const STRIDE: u64 = std::mem::size_of::<Paged>() as u64;
/// Slots of the ring (the default).
const SLOTS: u64 = 4;

/// Kills to perform, and the fewest that count as a pass.
const KILLS: u32 = 60;
const MIN_KILLS: u32 = 50;
/// Kills that must land inside a commit (leaving `seq` odd). Most do not (a commit is a small
/// part of the writer's loop), so the loop goes on (within its bound) until this many have.
const MIN_MID_COMMIT: u32 = 10;
/// Bound on the kill loop, far above its usual length; the test fails if it cannot reach
/// `MIN_KILLS` kills in it.
const KILL_LOOP_LIMIT: Duration = Duration::from_secs(40);
/// Hard bound on the whole test.
const HARD_LIMIT: Duration = Duration::from_secs(90);
/// Each reader must check at least this many snapshots while writers are being killed; the kill
/// loop goes on past `KILLS` (within its bound) until they have.
const MIN_LIVE_READS: u64 = 1_000;
/// After the last kill, each reader takes this many snapshots with no writer alive.
const FINAL_READS: u64 = 1_000;
/// Upper bound of the random delay between a writer starting to publish and its kill.
const MAX_DELAY_MICROS: u64 = 4_000;

const CHILD: &str = "child_process";

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

fn stop_file(path: &Path) -> PathBuf {
    path.with_extension("stop")
}

/// The value in slot `slot`, read with `pread` (bypassing the library).
fn slot_value(path: &Path, slot: u64) -> Paged {
    let bytes = pread(path, PAYLOAD_OFFSET as u64 + slot * STRIDE, STRIDE as usize);
    Paged::decode(&bytes).expect("plain data always decodes")
}

/// Takes the file over, reports what it recovered, then commits with the counter going up (see
/// `Paged`) until it is killed (or, as a bound, `millis` pass).
fn run_writer(path: &Path, millis: u64) {
    let mut w = Writer::<Paged>::open(path).expect("writer open");
    let start = w.get();
    let seq = pread_u64(path, off::SEQ as u64);
    // No commit has happened since `open`: the newest slot holds what the writer recovered.
    let newest = slot_value(path, (seq >> 1) % SLOTS);
    common::report(
        "writer",
        &[
            ("pid", std::process::id().to_string()),
            (
                "progress",
                start.progress().map_or(u64::MAX, |p| p).to_string(),
            ),
            ("version", w.version().to_string()),
            ("seq", seq.to_string()),
            (
                "newest_slot_matches",
                u64::from(newest == start).to_string(),
            ),
        ],
    );
    let deadline = Instant::now() + Duration::from_millis(millis);
    let mut p = start.progress().expect("a recovered value is never torn");
    while Instant::now() < deadline {
        for _ in 0..64 {
            p += 1;
            commit_progress(&mut w, p);
        }
    }
}

/// Reads until `<path>.stop` appears, checking every snapshot; then, with the writer dead, takes
/// `FINAL_READS` more that must all return the same value.
fn run_reader(path: &Path, millis: u64) {
    let r = Reader::<Paged>::open(path).expect("reader open");
    let stop = stop_file(path);
    let deadline = Instant::now() + Duration::from_millis(millis);
    let (mut live_reads, mut contended, mut no_writer_reads, mut generations) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut torn, mut version_back, mut value_back, mut same_version_differs) = (0, 0, 0, 0);
    let (mut last_version, mut last_value) = (0u64, 0u64);
    let mut last_pid = None;
    let mut writer_alive = true;
    let mut check = |v: &Paged, version: u64| {
        let Some(x) = v.progress() else {
            torn += 1;
            eprintln!(
                "torn snapshot at version {version}: lo {} hi {} mid[0] {}",
                v.lo, v.hi, v.mid[0]
            );
            return;
        };
        if version < last_version {
            version_back += 1;
            eprintln!("version {version} after {last_version}");
        }
        if x < last_value {
            value_back += 1;
            eprintln!("value {x} after {last_value}");
        }
        if version == last_version && x != last_value {
            same_version_differs += 1;
            eprintln!("version {version} held {last_value}, now {x}");
        }
        (last_version, last_value) = (version, x);
    };
    let mut i = 0u64;
    loop {
        i += 1;
        if i.is_multiple_of(64) {
            if stop.exists() {
                break;
            }
            assert!(Instant::now() < deadline, "reader ran out of time");
            writer_alive = r.writer_alive();
            if r.writer_pid() != last_pid {
                last_pid = r.writer_pid();
                generations += 1;
            }
        }
        match r.load_versioned() {
            Ok((v, version)) => {
                live_reads += 1;
                no_writer_reads += u64::from(!writer_alive);
                check(&v, version);
                if live_reads.is_multiple_of(256) {
                    common::report("reader", &[("live_reads", live_reads.to_string())]);
                }
            }
            Err(Error::Contended { .. }) => contended += 1,
            Err(e) => panic!("reader: {e}"),
        }
    }
    // The parent has killed the last writer and started none: reads succeed at once and all
    // return the last committed value.
    assert!(!r.writer_alive(), "a writer is alive after the last kill");
    let (first, first_version) = r.load_versioned().expect("final load");
    for _ in 0..FINAL_READS {
        let (v, version) = r.load_versioned().expect("final load");
        assert_eq!((v, version), (first, first_version));
        check(&v, version);
        no_writer_reads += 1;
    }
    common::report(
        "reader",
        &[
            ("live_reads", live_reads.to_string()),
            ("final_reads", FINAL_READS.to_string()),
            ("contended", contended.to_string()),
            ("no_writer_reads", no_writer_reads.to_string()),
            ("generations", generations.to_string()),
            ("torn", torn.to_string()),
            ("version_back", version_back.to_string()),
            ("value_back", value_back.to_string()),
            ("same_version_differs", same_version_differs.to_string()),
            (
                "final_value",
                first.progress().map_or(u64::MAX, |p| p).to_string(),
            ),
            ("final_version", first_version.to_string()),
        ],
    );
}

#[test]
fn writer_sigkilled_mid_commit_many_times() {
    let dir = TempDir::new("kill9");
    let path = dir.join("counter.state");
    drop(Writer::<Paged>::create(&path, &Paged::all(0)).expect("create"));
    let started = Instant::now();
    let hard = started + HARD_LIMIT;
    let env = |millis: u64| {
        vec![
            (PATH_ENV, path.display().to_string()),
            (MILLIS_ENV, millis.to_string()),
        ]
    };
    let mut rng = common::Rng::from_env_or_clock("MS_KILL9_SEED");
    println!("kill9 seed {} (replay with MS_KILL9_SEED)", rng.seed());

    let readers: Vec<ChildProc> = (0..2)
        .map(|_| spawn_child(CHILD, "reader", &env(HARD_LIMIT.as_millis() as u64)))
        .collect();
    // The parent's own reader: what "a reader saw before the kill" means below.
    let observer = Reader::<Paged>::open(&path).expect("observer open");

    // What the next writer must recover: value, version, and the file's `seq` parity.
    let (mut expect_value, mut expect_version) = (0u64, 0u64);
    let (mut kills, mut mid_commit) = (0u32, 0u32);
    let mut commits = 0u64;
    let kill_deadline = started + KILL_LOOP_LIMIT;
    let mut live_reads = vec![0u64; readers.len()];
    while (kills < KILLS
        || mid_commit < MIN_MID_COMMIT
        || live_reads.iter().any(|&n| n < MIN_LIVE_READS))
        && Instant::now() < kill_deadline
    {
        for (n, r) in readers.iter().enumerate() {
            if let Some(p) = r.latest_report() {
                live_reads[n] = field(&p, "live_reads");
            }
        }
        let mut writer = spawn_child(CHILD, "writer", &env(30_000));
        let start = writer
            .next_report(hard)
            .expect("writer did not report its start");
        assert_eq!(field(&start, "pid"), u64::from(writer.id()));
        assert_eq!(
            field(&start, "progress"),
            expect_value,
            "writer {kills} did not resume from the last committed value: {start:?}"
        );
        assert_eq!(field(&start, "version"), expect_version, "{start:?}");
        assert_eq!(
            field(&start, "seq") % 2,
            0,
            "recovery left seq odd: {start:?}"
        );
        assert_eq!(
            field(&start, "newest_slot_matches"),
            1,
            "the newest slot does not hold the recovered value: {start:?}"
        );

        std::thread::sleep(Duration::from_micros(rng.below(MAX_DELAY_MICROS)));
        // The newest value a reader could have seen before the kill.
        let (seen, _) = observer.load_versioned().expect("observer load");
        let status = writer.kill9();
        assert_eq!(
            status.signal(),
            Some(9),
            "writer exited on its own: {status}"
        );
        kills += 1;

        // The writer is dead: look at the file as it left it. A kill between the two `seq`
        // stores of a commit (while it stored words) leaves `seq` odd; the slot readers read,
        // the newest complete one, must be whole whatever the kill interrupted.
        let seq = pread_u64(&path, off::SEQ as u64);
        mid_commit += u32::from(seq & 1 == 1);
        let readable = slot_value(&path, (seq >> 1) % SLOTS);
        let committed = readable.progress().unwrap_or_else(|| {
            panic!("the newest slot is torn after kill {kills} (seq {seq}): {readable:?}")
        });
        let (now, version) = observer.load_versioned().expect("observer load");
        assert_eq!(now, readable);
        assert_eq!(version, seq >> 1);
        let seen = seen
            .progress()
            .expect("the observer never reads a torn value");
        assert!(
            committed >= seen,
            "kill {kills}: readers saw progress {seen} but the file holds {committed}"
        );
        commits += committed - expect_value;
        // A writer killed between its two `seq` stores leaves `seq` odd; recovery completes
        // that commit as one of the unchanged value, so the version moves on by one.
        expect_value = committed;
        expect_version = (seq >> 1) + (seq & 1);
    }
    std::fs::write(stop_file(&path), b"").expect("create stop file");
    let reports: Vec<_> = readers.into_iter().map(|r| r.finish(hard)).collect();

    println!(
        "{kills} kills in {:.1?}: {mid_commit} landed inside a commit (left seq odd: killed \
         while storing words); {commits} commits survived",
        started.elapsed()
    );
    for (n, r) in reports.iter().enumerate() {
        println!(
            "reader {n}: {} snapshots checked during the kills + {} after the last ({} with no writer alive), {} writer generations seen, {} contended, torn {}, version regressions {}, value regressions {}, same-version-different-value {}",
            field(r, "live_reads"),
            field(r, "final_reads"),
            field(r, "no_writer_reads"),
            field(r, "generations"),
            field(r, "contended"),
            field(r, "torn"),
            field(r, "version_back"),
            field(r, "value_back"),
            field(r, "same_version_differs"),
        );
        assert_eq!(field(r, "torn"), 0, "reader {n} saw a torn value");
        assert_eq!(field(r, "version_back"), 0, "reader {n}: version went back");
        assert_eq!(field(r, "value_back"), 0, "reader {n}: value went back");
        assert_eq!(field(r, "same_version_differs"), 0, "reader {n}");
        assert!(
            field(r, "live_reads") >= MIN_LIVE_READS,
            "reader {n}: {r:?}"
        );
        assert!(
            field(r, "no_writer_reads") >= FINAL_READS,
            "reader {n}: {r:?}"
        );
        assert!(
            field(r, "generations") >= 2,
            "reader {n} did not read across a kill: {r:?}"
        );
        assert_eq!(field(r, "final_value"), expect_value, "reader {n}");
        assert_eq!(field(r, "final_version"), observer.version(), "reader {n}");
    }
    assert!(
        kills >= MIN_KILLS,
        "only {kills} kills within {KILL_LOOP_LIMIT:?}"
    );
    assert!(
        mid_commit >= MIN_MID_COMMIT,
        "only {mid_commit} kills landed inside a commit within {KILL_LOOP_LIMIT:?}"
    );
}

/// Writes the state a writer killed mid-commit leaves: `seq` odd, and the slot being written
/// holding `partial` in its first half.
fn simulate_kill(path: &Path, seq: u64, partial: u64) {
    use std::os::unix::fs::FileExt;
    assert_eq!(seq & 1, 1);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for pwrite");
    f.write_all_at(&seq.to_ne_bytes(), off::SEQ as u64)
        .expect("write seq");
    let being_written = ((seq >> 1) + 1) % SLOTS;
    let half = vec![partial.to_ne_bytes(); MID / 2].concat();
    f.write_all_at(&half, PAYLOAD_OFFSET as u64 + being_written * STRIDE)
        .expect("write half a slot");
}

/// A kill inside a commit, set up exactly: readers keep reading the last complete version (and
/// its predecessors in the history) while `seq` is odd; recovery repairs the half-written slot,
/// completes the commit as one of the unchanged value and leaves `seq` even; a kill between
/// commits (even `seq`) needs nothing.
#[test]
fn recovery_after_a_kill_inside_a_commit() {
    let dir = TempDir::new("kill9-sim");
    let path = dir.join("s.state");
    let mut w = Writer::<Paged>::create(&path, &Paged::all(1)).expect("create");
    assert_eq!(w.publish(&Paged::all(2)), 1);
    assert_eq!(w.set_lo(3), 2);
    drop(w);
    assert_eq!(pread_u64(&path, off::SEQ as u64), 4);
    let at2 = Paged {
        lo: 3,
        ..Paged::all(2)
    };

    // Killed while writing version 3 into slot 3: readers read version 2, and version 1 from
    // the history.
    simulate_kill(&path, 5, 9);
    let r = Reader::<Paged>::open(&path).expect("reader");
    assert_eq!(r.load_versioned().unwrap(), (at2, 2));
    assert_eq!(r.load_version(1).unwrap(), Paged::all(2));
    assert!(matches!(
        r.load_version(3),
        Err(Error::VersionNotYet { .. })
    ));
    let mut w = Writer::<Paged>::open(&path).expect("writer takes over");
    assert_eq!(w.get(), at2);
    assert_eq!(
        slot_value(&path, 3),
        at2,
        "recovery did not repair the half-written slot"
    );
    // `seq` even again: the interrupted commit counts as a commit of the unchanged value, so
    // version 3 names exactly one value, and the history before it is intact.
    assert_eq!(pread_u64(&path, off::SEQ as u64), 6);
    assert_eq!(r.load_versioned().unwrap(), (at2, 3));
    assert_eq!(r.load_version(2).unwrap(), at2);
    assert_eq!(r.load_version(1).unwrap(), Paged::all(2));
    // The new writer's first commit into each slot is a whole rewrite: the slot it writes next
    // (slot 0, still holding version 0) gets every word.
    assert_eq!(w.set_hi(5), 4);
    let want = Paged { hi: 5, ..at2 };
    assert_eq!(r.load_versioned().unwrap(), (want, 4));
    assert_eq!(slot_value(&path, 0), want);
    drop(w);

    // Killed between commits: nothing to repair, nothing to count.
    let w = Writer::<Paged>::open(&path).expect("writer takes over");
    assert_eq!(w.get(), want);
    assert_eq!(pread_u64(&path, off::SEQ as u64), 8);
    assert_eq!(r.load_versioned().unwrap(), (want, 4));
}
