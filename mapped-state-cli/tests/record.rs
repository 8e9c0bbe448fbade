//! End-to-end tests of `mapped-state record`, `replay` and `inspect` of a log: a `Writer` in this
//! process is recorded by the CLI in another process, the log is inspected (text and JSON) and
//! replayed into a new file whose values are the recorded ones; hostile logs give one-line
//! errors naming the byte, and the documented exit codes.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use mapped_state::{FixedStr, MappedState, Reader, Writer};

#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;
use telemetry::{Limits, Mode, Telemetry};

mod common;
use common::Scratch;

fn value(n: u64) -> Telemetry {
    Telemetry {
        rpm: 1000 + n as u32,
        temperature_c: 80.0 + n as f32 / 4.0,
        uptime_s: n,
        mode: if n.is_multiple_of(2) {
            Mode::Running
        } else {
            Mode::Idle
        },
        healthy: !n.is_multiple_of(3),
        grade: 'B',
        samples: [n as f32; 8],
        limits: Limits {
            min_rpm: 800,
            max_rpm: 7200,
        },
        label: FixedStr::new(&format!("engine-{n}")).unwrap(),
    }
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mapped-state"))
}

fn run(args: &[&str]) -> Output {
    cli().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The failure contract: the exit code, nothing on stdout, one stderr line about `file` that
/// contains every one of `words`.
fn assert_fails(o: &Output, code: i32, file: &Path, words: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(stdout(o), "", "stdout of a failure");
    assert_eq!(err.lines().count(), 1, "one-line error: {err:?}");
    let prefix = format!("mapped-state: {}: ", file.display());
    assert!(
        err.starts_with(&prefix),
        "{err:?} should start with {prefix:?}"
    );
    for w in words {
        assert!(err.contains(w), "{err:?} should mention {w:?}");
    }
}

/// A running `record`, its stdout read line by line; `--duration` bounds it, the guard kills
/// it if the test fails first.
struct Recording {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Recording {
    fn spawn(file: &Path, log: &Path, extra: &[&str]) -> Self {
        let mut child = cli()
            .args(["record", s(file), "--out", s(log)])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Recording { child, out }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l
    }

    /// The rest of stdout, stderr and the exit code.
    fn finish(mut self) -> (String, String, Option<i32>) {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (rest, err, self.child.wait().unwrap().code())
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records versions 0 ..= 4 of a writer in this process with `record --count 5` in another,
/// and returns the log's path.
fn record_five(dir: &Scratch) -> PathBuf {
    let (file, log) = (dir.path("engine.state"), dir.path("engine.log"));
    let mut w = Writer::<Telemetry>::create(&file, &value(0)).unwrap();
    let mut rec = Recording::spawn(&file, &log, &["--count", "5", "--duration", "60"]);
    let first = rec.line();
    assert!(
        first.starts_with(&format!("recording {} (Telemetry (hash ", s(&file))),
        "{first}"
    );
    assert!(first.contains("from version 0 into"), "{first}");
    // Four commits fit in the 4-slot ring: recorded even if the recorder lags behind them.
    for n in 1..=4 {
        std::thread::sleep(Duration::from_millis(10));
        w.publish(&value(n));
    }
    let (rest, err, code) = rec.finish();
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(
        rest.trim_end(),
        "recorded 5 versions (0 ..= 4), 0 skipped; ended: the count asked for was recorded"
    );
    log
}

#[test]
fn record_inspect_and_replay_a_log() {
    let dir = Scratch::new("roundtrip");
    let log = record_five(&dir);

    let o = run(&["inspect", s(&log)]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    println!("{text}");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{text}"))
            .to_owned()
    };
    assert!(line("format").contains("mapped-state log, version 1"));
    assert!(line("schema").contains(&format!(
        "Telemetry (hash {:#018x})",
        Telemetry::SCHEMA_HASH
    )));
    assert_eq!(line("records"), "records   5, versions 0 ..= 4, 0 skipped");
    assert!(
        line("end").contains("the count asked for was recorded"),
        "{text}"
    );
    // Every record's fields by name, with the recorded values.
    for n in 0..=4u64 {
        let at = text
            .find(&format!("record {n}: version {n}, committed "))
            .unwrap_or_else(|| panic!("no record {n} in:\n{text}"));
        let rest = &text[at..];
        let field = |name: &str| {
            rest.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap()
                .to_owned()
        };
        assert!(field("rpm").ends_with(&(1000 + n).to_string()), "{rest}");
        assert!(
            field("label").ends_with(&format!("\"engine-{n}\"")),
            "{rest}"
        );
    }

    let o = run(&["inspect", "--json", s(&log)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one JSON object: {out}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(j["kind"], "log");
    assert_eq!(j["records"], 5);
    assert_eq!(j["skipped"], 0);
    assert_eq!(
        (j["first_version"].as_u64(), j["last_version"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(j["end"]["reason"], "count");
    assert_eq!(j["torn_tail"], serde_json::Value::Null);
    assert_eq!(
        j["schema"]["hash"],
        format!("{:#018x}", Telemetry::SCHEMA_HASH)
    );
    let values = j["values"].as_array().unwrap();
    assert_eq!(values.len(), 5);
    for (n, v) in values.iter().enumerate() {
        assert_eq!(v["version"], n as u64);
        assert_eq!(v["skipped"], 0);
        assert_eq!(v["value"]["rpm"], 1000 + n as u64);
        assert_eq!(v["value"]["uptime_s"], n as u64);
        assert_eq!(v["value"]["label"], format!("engine-{n}"));
        assert_eq!(
            v["value"]["mode"],
            if n.is_multiple_of(2) {
                "Running"
            } else {
                "Idle"
            }
        );
    }

    // Replay as fast as possible: the new file's versions 0 ..= 4 are the recorded values.
    let copy = dir.path("copy.state");
    let o = run(&["replay", s(&log), "--to", s(&copy), "--speed", "max"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "a finished log replays without a note");
    assert!(
        stdout(&o).starts_with(&format!(
            "replayed 5 records (recorded versions 0 ..= 4) into {} as versions 0 ..= 4 in ",
            s(&copy)
        )),
        "{}",
        stdout(&o)
    );
    let r = Reader::<Telemetry>::open(&copy).expect("the replayed file has the schema");
    let history: Vec<_> = r.load_history().map(|h| h.unwrap()).collect();
    let want: Vec<_> = (1..=4).rev().map(|n| (n, value(n))).collect();
    assert_eq!(
        history, want,
        "the ring's four newest versions, newest first"
    );

    // The file exists now: refused (exit 1), then replaced when asked.
    let o = run(&["replay", s(&log), "--to", s(&copy), "--speed", "0"]);
    assert_fails(&o, 1, &copy, &["already exists"]);
    drop(r);
    let o = run(&[
        "replay",
        s(&log),
        "--to",
        s(&copy),
        "--speed",
        "50",
        "--replace",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn record_ends_when_the_writer_exits_or_the_duration_passes() {
    let dir = Scratch::new("ends");
    let (file, log, log2) = (dir.path("a.state"), dir.path("a.log"), dir.path("b.log"));
    let mut w = Writer::<Telemetry>::create(&file, &value(0)).unwrap();
    let mut rec = Recording::spawn(&file, &log, &["--duration", "60"]);
    assert!(rec.line().contains("from version 0"));
    w.publish(&value(1));
    w.publish(&value(2));
    drop(w);
    let (rest, err, code) = rec.finish();
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(
        rest.contains("recorded")
            && rest.contains("(0 ..= 2)")
            && rest.contains("the writer is gone"),
        "{rest}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["inspect", "--json", s(&log)]))).unwrap();
    assert_eq!(j["end"]["reason"], "writer_gone");
    assert_eq!(
        j["records"].as_u64().unwrap() + j["skipped"].as_u64().unwrap(),
        3,
        "records + skipped = versions 0 ..= 2"
    );

    // No writer and no commits: the current version, then the duration.
    let o = run(&["record", s(&file), "--out", s(&log2), "--duration", "0.1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("recorded 1 version (2 ..= 2)"),
        "{}",
        stdout(&o)
    );

    // The log must be new: an existing path is refused (exit 3), the state file untouched.
    let o = run(&["record", s(&file), "--out", s(&file), "--count", "1"]);
    assert_fails(&o, 3, &file, &["create log", "exists"]);
    assert_eq!(
        Reader::<Telemetry>::open(&file).unwrap().load().unwrap(),
        value(2)
    );
    let o = run(&[
        "replay",
        s(&log),
        "--to",
        s(&dir.path("x")),
        "--speed",
        "fast",
    ]);
    assert_eq!(o.status.code(), Some(2), "a bad --speed is a usage error");
}

#[test]
fn hostile_logs_fail_with_one_line_errors() {
    let dir = Scratch::new("hostile");
    let log = record_five(&dir);
    let good = std::fs::read(&log).unwrap();
    let bad = dir.path("bad.log");
    let write = |bytes: &[u8]| {
        let _ = std::fs::remove_file(&bad);
        std::fs::write(&bad, bytes).unwrap();
    };
    let manifest_len = u64::from_ne_bytes(good[48..56].try_into().unwrap()) as usize;
    let r0 = 96 + manifest_len;

    // Only the magic: a truncated header.
    write(b"MSRECLOG");
    let o = run(&["inspect", s(&bad)]);
    assert_fails(&o, 1, &bad, &["8 bytes long", "need 96"]);
    // A lying payload length in the second record.
    let mut b = good.clone();
    let rec_len = 40 + Telemetry::TYPE.size;
    b[r0 + rec_len + 32..r0 + rec_len + 36].copy_from_slice(&7u32.to_ne_bytes());
    write(&b);
    let at = r0 + rec_len + 32;
    let o = run(&["inspect", "--json", s(&bad)]);
    assert_fails(
        &o,
        1,
        &bad,
        &["record 1", &format!("byte {at}"), "payload_len"],
    );
    let copy = dir.path("copy.state");
    let o = run(&["replay", s(&bad), "--to", s(&copy), "--speed", "max"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("byte {at}")), "{}", stderr(&o));
    // A torn tail: inspect reports it, replay replays the complete records with a note.
    let cut = r0 + 3 * rec_len + 10;
    write(&good[..cut]);
    let o = run(&["inspect", s(&bad)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("records   3, versions 0 ..= 2"), "{text}");
    assert!(
        text.contains(&format!(
            "torn tail: the last record, at byte {}, has 10 of its {rec_len} bytes",
            r0 + 3 * rec_len
        )),
        "{text}"
    );
    let o = run(&[
        "replay",
        s(&bad),
        "--to",
        s(&copy),
        "--speed",
        "max",
        "--replace",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("note: torn tail"), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("replayed 3 records"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        Reader::<Telemetry>::open(&copy).unwrap().load().unwrap(),
        value(2)
    );
    // A state file is still inspected as one; garbage is neither.
    let o = run(&["inspect", s(&dir.path("engine.state"))]);
    assert!(stdout(&o).contains("writer"), "{}", stdout(&o));
    write(b"hello");
    let o = run(&["replay", s(&bad), "--to", s(&dir.path("y.state"))]);
    assert_fails(&o, 1, &bad, &["not a mapped-state log"]);
}

#[test]
fn a_killed_recording_leaves_a_log_that_inspects_and_replays() {
    let dir = Scratch::new("killed");
    let (file, log, copy) = (
        dir.path("k.state"),
        dir.path("k.log"),
        dir.path("copy.state"),
    );
    let mut w = Writer::<Telemetry>::create(&file, &value(0)).unwrap();
    let mut rec = Recording::spawn(&file, &log, &["--duration", "60"]);
    assert!(rec.line().contains("from version 0"));
    for n in 1..=3 {
        std::thread::sleep(Duration::from_millis(10));
        w.publish(&value(n));
    }
    // A caught-up recorder writes what it holds before it sleeps: wait until the four records
    // are in the file, then kill it (SIGKILL: no chance to finish).
    let manifest_len = {
        let b = std::fs::read(&log).unwrap();
        u64::from_ne_bytes(b[48..56].try_into().unwrap())
    };
    let want = 96 + manifest_len + 4 * (40 + Telemetry::TYPE.size as u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&log).unwrap().len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "the recorder never wrote its records"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    rec.child.kill().unwrap();
    let (_, _, code) = rec.finish();
    assert_eq!(code, None, "killed by a signal");

    let o = run(&["inspect", s(&log)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("records   4, versions 0 ..= 3, 0 skipped"),
        "{text}"
    );
    assert!(text.contains("end       no end record"), "{text}");
    let j: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["inspect", "--json", s(&log)]))).unwrap();
    assert_eq!(j["end"], serde_json::Value::Null);
    let o = run(&["replay", s(&log), "--to", s(&copy), "--speed", "max"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("note: the log has no end record"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        Reader::<Telemetry>::open(&copy).unwrap().load().unwrap(),
        value(3)
    );
}
