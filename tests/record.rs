//! Record and replay (`mapped_state::record`): a writer's burst recorded from another thread and
//! replayed value for value into a new file; the recorder's accounting exact (records + skipped
//! = commits); and logs of unknown origin (truncated, bad magic, lying lengths, random damage)
//! refused with typed errors that name the byte, never a panic.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Rng, TempDir};
use mapped_state::record::{
    EndReason, LogError, LogReader, RecordLimits, Recorder, ReplayOptions, Replayer, Speed,
    TornTail, END_LEN, LOG_HEADER_LEN, RECORD_HEADER_LEN,
};
use mapped_state::schema::fnv1a64;
use mapped_state::{CreateOptions, Error, MappedState, RawReader, RawWriter, Reader, Writer};

/// Most commits the burst writer makes, and the longest it runs.
const BURST_COMMITS: u64 = 400_000;
const BURST_TIME: Duration = Duration::from_millis(1500);
/// A bound on any wait of these tests (never reached when they pass).
const PATIENCE: Duration = Duration::from_secs(60);

/// The value of version `v`: every word a function of `v`, so a record holding another
/// version's bytes (or a mix) is caught.
fn value_at(v: u64) -> [u64; 4] {
    [
        v,
        v.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        !v,
        v ^ 0xdead_beef,
    ]
}

fn bytes_of(words: &[u64; 4]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

/// Records a writer thread's burst (commits flat out, with a short pause every few thousand so
/// the recorder both falls behind and catches up), then checks the log record by record.
/// Returns the number of commits.
fn record_burst(state: &Path, log: &Path) -> u64 {
    let w = Writer::<[u64; 4]>::create(state, &value_at(0)).expect("create");
    let mut rec = Recorder::create(RawReader::open(state).expect("open"), log).expect("log");
    assert_eq!(
        rec.capture().expect("first capture"),
        1,
        "version 0 recorded"
    );
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut w = w;
        go_rx.recv().expect("go");
        let start = Instant::now();
        let mut v = 0;
        while v < BURST_COMMITS && start.elapsed() < BURST_TIME {
            v = w.publish(&value_at(v + 1));
            if v % 5_000 == 0 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        v
        // The writer is dropped here: the recording ends with `WriterGone`.
    });
    go_tx.send(()).expect("start the writer");
    let summary = rec
        .run(&RecordLimits {
            count: None,
            duration: Some(PATIENCE),
        })
        .expect("record");
    let commits = writer.join().expect("writer thread");
    assert_eq!(summary.reason, Some(EndReason::WriterGone));
    assert_eq!(summary.first_version, Some(0));
    assert_eq!(
        summary.last_version,
        Some(commits),
        "the last commit is recorded"
    );
    assert_eq!(
        summary.records + summary.skipped,
        commits + 1,
        "every version from 0 to the last is recorded or counted as skipped"
    );
    assert!(
        summary.records > 1,
        "the recorder kept up at least a little"
    );
    println!(
        "{commits} commits: {} recorded, {} skipped ({:.1}%)",
        summary.records,
        summary.skipped,
        100.0 * summary.skipped as f64 / (commits + 1) as f64
    );

    let mut reader = LogReader::open(log)
        .expect("open log")
        .require_complete(true);
    assert_eq!(reader.header().schema_hash, <[u64; 4]>::SCHEMA_HASH);
    let (mut n, mut skipped, mut prev) = (0u64, 0u64, None::<u64>);
    for r in reader.by_ref() {
        let r = r.expect("a valid record");
        assert_eq!(
            r.payload,
            bytes_of(&value_at(r.version)),
            "payload of version {}",
            r.version
        );
        assert_eq!(r.skipped, prev.map_or(0, |p| r.version - p - 1));
        skipped += r.skipped;
        prev = Some(r.version);
        n += 1;
    }
    assert_eq!((n, skipped), (summary.records, summary.skipped));
    assert_eq!(reader.end(), Some(EndReason::WriterGone));
    commits
}

#[test]
fn a_recorded_burst_replays_value_for_value() {
    let dir = TempDir::new("record-burst");
    let (state, log, copy) = (
        dir.join("burst.state"),
        dir.join("burst.log"),
        dir.join("copy.state"),
    );
    let commits = record_burst(&state, &log);

    let opts = ReplayOptions::new().speed(Speed::Max);
    let mut replay = Replayer::new(LogReader::open(&log).unwrap(), &copy, &opts).expect("replay");
    // The same schema: the typed reader's schema check passes.
    let r = Reader::<[u64; 4]>::open(&copy).expect("the replayed file has the recorded schema");
    let (mut steps, mut last_recorded) = (0u64, 0u64);
    while let Some((v, rec)) = replay.step().expect("step") {
        assert_eq!(v, steps, "record {steps} is the new file's version {steps}");
        let want = value_at(rec.version);
        assert_eq!(
            r.load_versioned().expect("load"),
            (want, v),
            "the replayed version {v} holds recorded version {}",
            rec.version
        );
        assert_eq!(r.load_version(v).expect("history"), want);
        last_recorded = rec.version;
        steps += 1;
    }
    assert_eq!(
        last_recorded, commits,
        "the replay ends with the last commit"
    );
    let (summary, writer) = replay.run().expect("nothing left");
    assert_eq!(summary.records, steps);
    assert_eq!(summary.last_version, steps - 1);
    assert_eq!(summary.recorded_versions, (0, commits));
    assert_eq!(summary.end, Some(EndReason::WriterGone));
    drop(writer);
    assert!(!r.writer_alive(), "the replay closed its file");
}

#[test]
fn a_paced_replay_publishes_every_record_in_order() {
    let dir = TempDir::new("record-paced");
    let (state, log, copy) = (dir.join("s.state"), dir.join("s.log"), dir.join("c.state"));
    let mut w = Writer::<[u64; 4]>::create(&state, &value_at(0)).unwrap();
    let mut rec = Recorder::create(RawReader::open(&state).unwrap(), &log).unwrap();
    rec.capture().unwrap();
    for v in 1..=5 {
        std::thread::sleep(Duration::from_millis(20));
        w.publish(&value_at(v));
        assert_eq!(rec.capture().unwrap(), 1, "one record per commit");
    }
    let s = rec.finish(EndReason::Stopped).unwrap();
    assert_eq!((s.records, s.skipped), (6, 0));
    // 100 ms of recorded gaps at 20 times the pace: the sleeping path, briefly.
    let opts = ReplayOptions::new().speed(Speed::Factor(20.0)).slots(8);
    let summary = mapped_state::record::replay(&log, &copy, &opts).expect("replay");
    assert_eq!(summary.records, 6);
    assert_eq!(summary.end, Some(EndReason::Stopped));
    let r = Reader::<[u64; 4]>::open(&copy).unwrap();
    assert_eq!(r.raw().header().slot_count, 8, "the slot count asked for");
    let history: Vec<_> = r.load_history().map(|h| h.unwrap()).collect();
    let want: Vec<_> = (0..=5).rev().map(|v| (v, value_at(v))).collect();
    assert_eq!(history, want, "all six versions, newest first");
    // Replaying onto an existing file is refused unless asked to replace it.
    match mapped_state::record::replay(&log, &copy, &ReplayOptions::new().speed(Speed::Max)) {
        Err(LogError::State(Error::AlreadyExists { .. })) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    drop(r);
    let again = ReplayOptions::new()
        .speed(Speed::Max)
        .create(CreateOptions::new().replace(true));
    assert_eq!(
        mapped_state::record::replay(&log, &copy, &again)
            .unwrap()
            .records,
        6
    );
}

#[test]
fn a_recording_stops_at_its_count_or_duration() {
    let dir = TempDir::new("record-limits");
    let (state, log, log2) = (dir.join("s.state"), dir.join("a.log"), dir.join("b.log"));
    let mut w = Writer::<[u64; 4]>::create(&state, &value_at(0)).unwrap();
    w.publish(&value_at(1));
    let rec = Recorder::create(RawReader::open(&state).unwrap(), &log).unwrap();
    // No commits while it runs: the current version only, then the duration passes.
    let s = rec
        .run(&RecordLimits {
            count: None,
            duration: Some(Duration::from_millis(50)),
        })
        .unwrap();
    assert_eq!(s.reason, Some(EndReason::Duration));
    assert_eq!((s.records, s.first_version), (1, Some(1)));
    // A count of 1 ends right after the first record.
    let rec = Recorder::create(RawReader::open(&state).unwrap(), &log2).unwrap();
    let s = rec
        .run(&RecordLimits {
            count: Some(1),
            duration: Some(PATIENCE),
        })
        .unwrap();
    assert_eq!((s.reason, s.records), (Some(EndReason::Count), 1));
    // The log is a file of its own: an existing path (the state file itself) is refused.
    match Recorder::create(RawReader::open(&state).unwrap(), &state) {
        Err(LogError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        Reader::<[u64; 4]>::open(&state).unwrap().load().unwrap(),
        value_at(1),
        "the state file is untouched"
    );
}

// ---- Hostile logs ----

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub n: u64,
    pub ok: bool,
}

const SAMPLE_RECORD: usize = RECORD_HEADER_LEN + 16;

/// A valid log of `Sample`: records of versions 0, 1, 4, 5, 6, 7 (2 and 3 skipped: six
/// commits between two captures overflow a 4-slot ring) and an end record. Returns the bytes
/// and the offset of the first record.
fn sample_log(dir: &TempDir) -> (Vec<u8>, usize) {
    let (state, log) = (dir.join("sample.state"), dir.join("sample.log"));
    let mut w = Writer::<Sample>::create(&state, &Sample { n: 0, ok: true }).unwrap();
    let mut rec = Recorder::create(RawReader::open(&state).unwrap(), &log).unwrap();
    rec.capture().unwrap();
    w.publish(&Sample { n: 1, ok: false });
    rec.capture().unwrap();
    for n in 2..=7 {
        w.publish(&Sample { n, ok: n % 2 == 0 });
    }
    assert_eq!(rec.capture().unwrap(), 4, "the ring's four newest versions");
    let s = rec.finish(EndReason::Stopped).unwrap();
    assert_eq!((s.records, s.skipped), (6, 2));
    let bytes = std::fs::read(&log).unwrap();
    let manifest_len = u64::from_ne_bytes(bytes[48..56].try_into().unwrap()) as usize;
    (bytes, LOG_HEADER_LEN + manifest_len)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Rewrites the header checksum, so a lying field is judged by its own check.
fn fix_checksum(b: &mut [u8]) {
    let sum = fnv1a64(&b[..88]);
    put64(b, 88, sum);
}

/// Reads every record of the log `bytes` (written to a file): the versions read, and how it
/// ended.
fn read_all(dir: &TempDir, bytes: &[u8], strict: bool) -> Result<(Vec<u64>, LogReader), LogError> {
    let path = dir.join("hostile.log");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, bytes).unwrap();
    let mut log = LogReader::open(&path)?.require_complete(strict);
    let mut versions = Vec::new();
    for r in log.by_ref() {
        versions.push(r?.version);
    }
    Ok((versions, log))
}

fn err(dir: &TempDir, bytes: &[u8], strict: bool) -> LogError {
    match read_all(dir, bytes, strict) {
        Ok((v, _)) => panic!("accepted, read versions {v:?}"),
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "one line: {text}");
            e
        }
    }
}

#[test]
fn a_valid_log_reads_back_with_its_totals() {
    let dir = TempDir::new("record-valid");
    let (bytes, _) = sample_log(&dir);
    let (versions, log) = read_all(&dir, &bytes, true).expect("valid");
    assert_eq!(versions, [0, 1, 4, 5, 6, 7]);
    let s = log.summary();
    assert_eq!(
        (s.records, s.skipped, s.reason),
        (6, 2, Some(EndReason::Stopped))
    );
    assert_eq!((s.first_version, s.last_version), (Some(0), Some(7)));
    assert_eq!(log.torn_tail(), None);
}

#[test]
fn hostile_headers_give_typed_errors_naming_the_byte() {
    let dir = TempDir::new("record-hostile-header");
    let (good, r0) = sample_log(&dir);
    let manifest_len = r0 - LOG_HEADER_LEN;

    let mut b = good.clone();
    b[0] = b'X';
    assert!(matches!(err(&dir, &b, false), LogError::NotALog { found, .. } if found[0] == b'X'));
    assert!(matches!(err(&dir, &[], false), LogError::NotALog { found, .. } if found.is_empty()));
    assert!(matches!(
        err(&dir, &good[..50], false),
        LogError::TruncatedHeader {
            len: 50,
            need: 96,
            ..
        }
    ));
    let cut = r0 - 1;
    assert!(matches!(
        err(&dir, &good[..cut], false),
        LogError::TruncatedHeader { len, need, .. } if len == cut as u64 && need == r0 as u64
    ));

    let mut b = good.clone();
    put32(&mut b, 12, 0x0102_0304u32.swap_bytes());
    assert!(matches!(
        err(&dir, &b, false),
        LogError::ForeignEndian { .. }
    ));
    let mut b = good.clone();
    put32(&mut b, 8, 2);
    assert!(matches!(
        err(&dir, &b, false),
        LogError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }
    ));

    // A changed field without its checksum: the checksum names byte 88.
    let mut b = good.clone();
    b[64] ^= 1;
    let e = err(&dir, &b, false);
    assert!(
        matches!(
            e,
            LogError::CorruptHeader {
                field: "checksum",
                offset: 88,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("byte 88"), "{e}");

    // Lying lengths, with the checksum made right so each is judged by its own check.
    let lie = |at: usize, v: u64| {
        let mut b = good.clone();
        put64(&mut b, at, v);
        fix_checksum(&mut b);
        b
    };
    assert!(matches!(
        err(&dir, &lie(48, 1 << 21), false),
        LogError::CorruptHeader {
            field: "manifest_len",
            offset: 48,
            ..
        }
    ));
    assert!(matches!(
        err(&dir, &lie(48, good.len() as u64), false),
        LogError::TruncatedHeader { need, .. } if need == (96 + good.len()) as u64
    ));
    // One byte more of "manifest" (the first record's): no longer the hashed manifest.
    assert!(matches!(
        err(&dir, &lie(48, manifest_len as u64 + 1), false),
        LogError::CorruptManifest {
            offset: 96,
            manifest_offset: 0,
            ..
        }
    ));
    assert!(matches!(
        err(&dir, &lie(32, 0), false),
        LogError::CorruptHeader {
            field: "payload_size",
            offset: 32,
            ..
        }
    ));
    let e = err(&dir, &lie(32, 24), false);
    assert!(
        matches!(
            e,
            LogError::CorruptManifest {
                manifest_offset: 5,
                ..
            }
        ),
        "a payload size the manifest's type does not have: {e}"
    );
    assert!(matches!(
        err(&dir, &lie(40, 3), false),
        LogError::CorruptHeader {
            field: "payload_align",
            offset: 40,
            ..
        }
    ));
    assert!(matches!(
        err(&dir, &lie(56, 3), false),
        LogError::CorruptHeader {
            field: "source_slots",
            offset: 56,
            ..
        }
    ));
    assert!(matches!(
        err(&dir, &lie(24, 0x1234), false),
        LogError::CorruptManifest { offset: 96, .. }
    ));
    let mut b = good.clone();
    put32(&mut b, 20, 41);
    fix_checksum(&mut b);
    assert!(matches!(
        err(&dir, &b, false),
        LogError::CorruptHeader {
            field: "record_header_len",
            offset: 20,
            ..
        }
    ));
    // A damaged manifest names its byte: the hash first, then (hash made right) the decoder.
    let mut b = good.clone();
    b[96] = b'X';
    let sum = fnv1a64(&b[96..r0]);
    put64(&mut b, 24, sum);
    fix_checksum(&mut b);
    assert!(matches!(
        err(&dir, &b, false),
        LogError::CorruptManifest { offset: 96, manifest_offset: 0, reason, .. } if reason.contains("MSMF")
    ));
}

#[test]
fn hostile_records_give_typed_errors_naming_the_byte() {
    let dir = TempDir::new("record-hostile-records");
    let (good, r0) = sample_log(&dir);
    let rec = |i: usize| r0 + i * SAMPLE_RECORD;
    let end = rec(6);
    assert_eq!(good.len(), end + END_LEN);

    // Torn inside a record's header, inside its payload, and inside the end record: tolerated
    // by default (the records before it are read, the tail reported), an error when strict.
    for (cut, at, need) in [
        (rec(2) + 30, rec(2), SAMPLE_RECORD),
        (rec(3) + 45, rec(3), SAMPLE_RECORD),
        (end + 10, end, END_LEN),
    ] {
        let (versions, log) = read_all(&dir, &good[..cut], false).expect("torn tail tolerated");
        let complete = (at - r0) / SAMPLE_RECORD;
        assert_eq!(versions.len(), complete);
        assert_eq!(
            log.torn_tail(),
            Some(TornTail {
                offset: at as u64,
                have: (cut - at) as u64,
                need: need as u64
            })
        );
        assert_eq!(log.end(), None);
        let e = err(&dir, &good[..cut], true);
        assert!(
            matches!(&e, LogError::TornTail { tail, records, .. } if tail.offset == at as u64 && *records == complete as u64),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("byte {at}")), "{e}");
    }
    // Cut at a record boundary: a shorter log without its end record.
    let (versions, log) = read_all(&dir, &good[..rec(3)], false).unwrap();
    assert_eq!(
        (versions.len(), log.end(), log.torn_tail()),
        (3, None, None)
    );
    assert!(matches!(
        err(&dir, &good[..rec(3)], true),
        LogError::Unfinished { records: 3, .. }
    ));

    let corrupt = |b: &[u8], record: u64, offset: usize, field: &str| {
        let e = err(&dir, b, false);
        match &e {
            LogError::CorruptRecord {
                record: r,
                offset: o,
                field: f,
                ..
            } if *r == record && *o == offset as u64 && *f == field => {}
            other => panic!("expected record {record} field {field} at {offset}, got {other}"),
        }
        assert!(e.to_string().contains(&format!("byte {offset}")), "{e}");
    };
    // A lying payload length: the field is named even though the rest is intact.
    let mut b = good.clone();
    put32(&mut b, rec(1) + 32, 17);
    corrupt(&b, 1, rec(1) + 32, "payload_len");
    let mut b = good.clone();
    put32(&mut b, rec(1) + 32, u32::MAX);
    corrupt(&b, 1, rec(1) + 32, "payload_len");
    let mut b = good.clone();
    b[rec(2)] = b'Q';
    corrupt(&b, 2, rec(2), "tag");
    let mut b = good.clone();
    put32(&mut b, rec(2) + 4, 0x80);
    corrupt(&b, 2, rec(2) + 4, "flags");
    let mut b = good.clone();
    put64(&mut b, rec(2) + 8, 1);
    corrupt(&b, 2, rec(2) + 8, "version");
    let mut b = good.clone();
    put64(&mut b, rec(2) + 24, 0);
    corrupt(&b, 2, rec(2) + 24, "skipped");
    let mut b = good.clone();
    b[rec(2) + 36] = 1;
    corrupt(&b, 2, rec(2) + 36, "reserved");
    // The end record: its checksum, then (checksum made right) its totals.
    let mut b = good.clone();
    put64(&mut b, end + 8, 5);
    corrupt(&b, 6, end + 32, "end checksum");
    let sum = fnv1a64(&b[end..end + 32]);
    put64(&mut b, end + 32, sum);
    corrupt(&b, 6, end + 8, "end records");
    let mut b = good.clone();
    b.extend_from_slice(b"abc");
    assert!(matches!(
        err(&dir, &b, false),
        LogError::TrailingBytes { offset, len: 3, .. } if offset == (end + END_LEN) as u64
    ));
    // A payload that is no value of the schema: the field and its byte.
    let mut b = good.clone();
    b[rec(1) + RECORD_HEADER_LEN + 8] = 2;
    let e = err(&dir, &b, false);
    match &e {
        LogError::InvalidValue {
            record: 1,
            version: 1,
            offset,
            source,
            ..
        } => {
            assert_eq!(*offset, (rec(1) + RECORD_HEADER_LEN + 8) as u64);
            assert_eq!(source.field, "ok");
        }
        other => panic!("expected InvalidValue, got {other}"),
    }
}

/// Random damage (a byte changed, a length rewritten, the file cut anywhere) to a valid log:
/// every case reads to a typed end, never a panic, and reads nothing but whole records.
#[test]
fn randomly_damaged_logs_never_panic() {
    let dir = TempDir::new("record-fuzz");
    let (good, r0) = sample_log(&dir);
    let mut rng = Rng::from_env_or_clock("MS_RECORD_SEED");
    println!("seed {} (MS_RECORD_SEED replays it)", rng.seed());
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..1500 {
        let mut b = good.clone();
        match case % 3 {
            0 => {
                let at = rng.below(b.len() as u64) as usize;
                b[at] = rng.below(256) as u8;
            }
            1 => {
                // A length or count field anywhere, rewritten with a boundary value.
                let at = rng.below(b.len() as u64 - 8) as usize & !3;
                let v =
                    [0, 1, u64::MAX, 1 << 30, 1 << 31, rng.below(u64::MAX)][rng.below(6) as usize];
                put64(&mut b, at, v);
                if rng.below(2) == 0 {
                    fix_checksum(&mut b);
                }
            }
            _ => b.truncate(rng.below(b.len() as u64 + 1) as usize),
        }
        let strict = rng.below(2) == 0;
        match read_all(&dir, &b, strict) {
            Ok((versions, log)) => {
                accepted += 1;
                assert!(
                    versions.windows(2).all(|w| w[0] < w[1]),
                    "versions increase: {versions:?}"
                );
                assert!(b.len() >= r0 || versions.is_empty());
                let _ = log.summary();
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    println!("{accepted} damaged logs read to a typed end, {refused} refused");
    assert!(refused > 0, "damage is noticed");
}

#[test]
fn an_untyped_create_checks_its_manifest_and_initial_value() {
    let dir = TempDir::new("record-create");
    let manifest = mapped_state::schema::manifest_bytes(Sample::TYPE);
    let good: Vec<u8> = [7u64.to_ne_bytes(), [1, 0, 0, 0, 0, 0, 0, 0]].concat();
    let opts = CreateOptions::new();
    let path = dir.join("a.state");
    let w = RawWriter::create_from_manifest(&path, &manifest, &good, &opts).expect("create");
    assert_eq!(
        Reader::<Sample>::open(&path).unwrap().load().unwrap(),
        Sample { n: 7, ok: true }
    );
    assert_eq!(RawReader::open(&path).unwrap().manifest(), &manifest[..]);
    drop(w);

    let mut bad = manifest.clone();
    bad[0] = b'X';
    match RawWriter::create_from_manifest(&dir.join("b.state"), &bad, &good, &opts) {
        Err(Error::CorruptManifest { offset: 0, .. }) => {}
        other => panic!("expected CorruptManifest, got {other:?}"),
    }
    match RawWriter::create_from_manifest(&dir.join("c.state"), &manifest, &good[..9], &opts) {
        Err(Error::InvalidValue { .. }) => {}
        other => panic!("expected InvalidValue for a short value, got {other:?}"),
    }
    let mut invalid = good.clone();
    invalid[8] = 2;
    match RawWriter::create_from_manifest(&dir.join("d.state"), &manifest, &invalid, &opts) {
        Err(Error::InvalidValue { source, .. }) => assert_eq!(source.field, "ok"),
        other => panic!("expected InvalidValue for ok = 2, got {other:?}"),
    }
    assert_eq!(
        dir.names(),
        [".a.state.lock", "a.state"],
        "nothing else created"
    );
}
