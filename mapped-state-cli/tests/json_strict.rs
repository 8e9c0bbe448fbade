//! Every kind of JSON line the `mapped-state` command prints, parsed by a strict parser that
//! refuses duplicate object keys at any depth (serde-based consumers reject them; serde_json's own
//! `Value` silently keeps the last). The commands are driven as a user would: `inspect --json` on
//! every kind of field, on a manifest whose names need escaping and on files that fail; `watch
//! --json` through each of its events (start, version, writer_exited, writer_started, superseded,
//! reopened); `check` and `diff`, which print text only. Each JSON line's top-level keys are pinned.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use mapped_state::{CreateOptions, FixedStr, MappedState, RawWriter, Writer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;
use telemetry::{Limits, Mode, Telemetry};

#[path = "../fuzz/corpus.rs"]
mod corpus;

/// A JSON value read through serde_json, refusing an object that names a key twice.
#[derive(Debug)]
struct Strict(serde_json::Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Strict(n.into()))
            .ok_or_else(|| E::custom("a non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(serde_json::Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(items.into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut obj = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if obj.insert(key.clone(), v).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Strict(obj.into()))
    }
}

/// `line` (one JSON document and its newline) parsed strictly, or why not.
fn strict(line: &str) -> Result<serde_json::Value, String> {
    let doc = line
        .strip_suffix('\n')
        .ok_or_else(|| format!("no newline after {line:?}"))?;
    serde_json::from_str::<Strict>(doc)
        .map(|Strict(v)| v)
        .map_err(|e| format!("{e} in {line:?}"))
}

/// The top-level keys of a JSON object.
fn keys(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("every line is an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(ks: &[&'a str]) -> BTreeSet<&'a str> {
    ks.iter().copied().collect()
}

/// The keys that describe a file's live state, in every event that carries the whole state.
const LIVE: [&str; 5] = ["writer", "version", "last_commit", "age_s", "superseded"];

#[test]
fn the_strict_parser_refuses_what_serde_json_value_accepts() {
    let dup = "{\"a\":1,\"b\":{\"c\":[{\"d\":1,\"d\":2}]}}";
    assert!(serde_json::from_str::<serde_json::Value>(dup).is_ok());
    let err = strict(&format!("{dup}\n")).unwrap_err();
    assert!(err.contains("duplicate key \"d\""), "{err}");
    // The shape of a version event before the CLI went through serde: "version" twice.
    let old_event = "{\"event\":\"version\",\"version\":1,\"not_seen\":0,\"changes\":{},\
                     \"writer\":{\"pid\":1,\"alive\":true},\"version\":1}\n";
    assert!(strict(old_event)
        .unwrap_err()
        .contains("duplicate key \"version\""));
    assert!(strict("{\"a\":1}{\"a\":1}\n").is_err(), "two documents");
    assert!(strict("{\"a\":1}").is_err(), "no newline");
    let v = strict("{\"a\":[1,-2,0.5,null,true,\"x\"],\"b\":{}}\n").unwrap();
    assert_eq!(
        v,
        serde_json::json!({"a": [1, -2, 0.5, null, true, "x"], "b": {}})
    );
}

mod common;
use common::Scratch;

fn sample() -> Telemetry {
    Telemetry {
        rpm: 3100,
        temperature_c: 81.5,
        uptime_s: (1 << 53) + 1,
        mode: Mode::Running,
        healthy: true,
        grade: 'B',
        samples: [
            0.5,
            1.5,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            5.0,
            0.1,
            -0.0,
        ],
        limits: Limits {
            min_rpm: 800,
            max_rpm: 7200,
        },
        label: FixedStr::new("quote \" back\\ nl\n é").unwrap(),
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mapped-state"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `inspect --json` of `path`: one strictly valid line with the documented keys.
fn inspect_json(path: &Path) -> serde_json::Value {
    let o = run(&["inspect", "--json", s(path)]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out.lines().count(), 1, "{out}");
    let v = strict(&out).unwrap();
    let mut want = set(&[
        "file",
        "format_version",
        "file_size",
        "slots",
        "schema",
        "value",
    ]);
    want.extend(LIVE);
    assert_eq!(keys(&v), want);
    assert_eq!(keys(&v["schema"]), set(&["name", "hash", "size", "align"]));
    assert_eq!(keys(&v["writer"]), set(&["pid", "alive"]));
    v
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Point {
    x: i16,
    ok: bool,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Wide {
    big: u128,
    small: i128,
    points: [Point; 2],
    modes: [Mode; 2],
    names: [FixedStr<4>; 2],
}

/// A struct whose field names need escaping in JSON, and two leaves whose dotted paths would be
/// the same string (`a.b` the field, and `b` inside the struct `a`).
fn awkward_names_file() -> Vec<u8> {
    let mut m = corpus::Manifest::new(3, 1);
    m.structure("W\"eird", 3, 1, 3);
    m.field("a.b", 0).u8(corpus::U8);
    m.field("a", 1)
        .structure("A", 1, 1, 1)
        .field("b", 0)
        .u8(corpus::U8);
    m.field("q\"\n\\ü\u{1b}", 2).u8(corpus::U8);
    corpus::state_file(&m.0, &[1, 2, 3])
}

#[test]
fn inspect_json_is_strict_for_every_kind_of_value_and_name() {
    let dir = Scratch::new("inspect");

    let path = dir.path("telemetry.state");
    drop(Writer::<Telemetry>::create(&path, &sample()).unwrap());
    let v = inspect_json(&path);
    assert_eq!(v["file"], s(&path));
    assert_eq!(v["value"]["label"], "quote \" back\\ nl\n é");
    assert_eq!(v["value"]["uptime_s"], (1u64 << 53) + 1);
    assert_eq!(
        v["value"]["samples"],
        serde_json::json!([0.5, 1.5, "NaN", "Infinity", "-Infinity", 5.0, 0.1, -0.0])
    );
    assert_eq!(
        v["writer"],
        serde_json::json!({"pid": std::process::id(), "alive": false})
    );

    let path = dir.path("wide.state");
    let wide = Wide {
        big: u128::MAX,
        small: i128::MIN,
        points: [Point { x: -7, ok: true }, Point { x: 9, ok: false }],
        modes: [Mode::Idle, Mode::Fault],
        names: [FixedStr::new("a").unwrap(), FixedStr::EMPTY],
    };
    drop(Writer::<Wide>::create(&path, &wide).unwrap());
    assert_eq!(
        inspect_json(&path)["value"],
        serde_json::json!({
            "big": u128::MAX.to_string(),
            "small": i128::MIN.to_string(),
            "points": [{"x": -7, "ok": true}, {"x": 9, "ok": false}],
            "modes": ["Idle", "Fault"],
            "names": ["a", ""],
        })
    );

    let path = dir.path("array.state");
    drop(Writer::<[u64; 3]>::create(&path, &[1, u64::MAX, 3]).unwrap());
    assert_eq!(
        inspect_json(&path)["value"],
        serde_json::json!([1, u64::MAX, 3])
    );

    let path = dir.path("awkward.state");
    std::fs::write(&path, awkward_names_file()).unwrap();
    let v = inspect_json(&path);
    assert_eq!(v["schema"]["name"], "W\"eird");
    assert_eq!(
        v["value"],
        serde_json::json!({"a.b": 1, "a": {"b": 2}, "q\"\n\\ü\u{1b}": 3})
    );
    assert_eq!(
        v["writer"],
        serde_json::json!({"pid": null, "alive": false})
    );

    let path = dir.path("ordinary.state");
    std::fs::write(&path, corpus::ordinary().bytes).unwrap();
    assert_eq!(inspect_json(&path)["value"]["label"], "hello");
}

/// The failure contract of a JSON command: nothing on stdout (no partial document), one line on
/// stderr naming the file, the documented exit code.
fn assert_fails_without_json(o: &Output, code: i32, path: &Path, words: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("mapped-state: {}: ", path.display())),
        "{err}"
    );
    for w in words {
        assert!(err.contains(w), "{err:?} should mention {w:?}");
    }
}

#[test]
fn failing_json_commands_print_no_json_and_text_commands_print_no_json() {
    let dir = Scratch::new("errors");
    let missing = dir.path("missing.state");
    let o = run(&["inspect", "--json", s(&missing)]);
    assert_fails_without_json(&o, 3, &missing, &["No such file"]);
    // `watch` waits for a missing file, saying so in one strict JSON event, and fails as
    // `inspect` does when its timeout passes first.
    let o = run(&["watch", "--json", "--timeout", "0.3", s(&missing)]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    let v = strict(&out).unwrap();
    assert_eq!(keys(&v), set(&["event", "file"]));
    assert_eq!(
        (v["event"].as_str(), v["file"].as_str()),
        (Some("waiting"), Some(s(&missing)))
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file"));
    let bad = dir.path("bad.state");
    std::fs::write(&bad, corpus::duplicated_names(3).bytes).unwrap();
    for cmd in ["inspect", "watch"] {
        let o = run(&[cmd, "--json", s(&bad)]);
        assert_fails_without_json(&o, 1, &bad, &["appears twice"]);
    }
    let long = dir.path("long.state");
    std::fs::write(&long, corpus::long_names(256).bytes).unwrap();
    let o = run(&["inspect", "--json", s(&long)]);
    assert_fails_without_json(&o, 1, &long, &["JSON rendering would exceed"]);
    let o = run(&["watch", "--json", "--timeout", "5", s(&long)]);
    assert_fails_without_json(&o, 1, &long, &["JSON rendering would exceed"]);

    // `check` and `diff` have no JSON form: their output is text, never a JSON-looking line.
    let a = dir.path("a.state");
    let b = dir.path("b.state");
    drop(Writer::<Telemetry>::create(&a, &sample()).unwrap());
    drop(Writer::<[u64; 3]>::create(&b, &[0; 3]).unwrap());
    for (args, code) in [
        (vec!["check", s(&a)], 0),
        (vec!["check", s(&bad)], 1),
        (vec!["diff", s(&a), s(&a)], 0),
        (vec!["diff", s(&a), s(&b)], 4),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            out.lines()
                .all(|l| !l.starts_with('{') && !l.starts_with('[')),
            "{args:?}: {out}"
        );
    }
}

/// Environment variable that turns `json_child_writer` into a writer process for the file it
/// names.
const CHILD_PATH: &str = "MS_JSON_CHILD_WRITER_PATH";

/// Run as a child process by `watch_json_events_are_strict` (an empty test otherwise): creates
/// the file or takes it over, says `ready`, commits `rpm + 1` for each `commit` line on stdin
/// (answering `done`), and exits when stdin closes.
#[test]
fn json_child_writer() {
    let Some(path) = std::env::var_os(CHILD_PATH) else {
        return;
    };
    let mut w = if Path::new(&path).exists() {
        Writer::<Telemetry>::open(&path).unwrap()
    } else {
        Writer::<Telemetry>::create(&path, &sample()).unwrap()
    };
    println!("MS-CHILD ready");
    for line in std::io::stdin().lock().lines() {
        if line.unwrap() == "commit" {
            w.update(|t| t.rpm += 1);
            println!("MS-CHILD done");
        }
    }
}

/// A `json_child_writer` process holding a file.
struct ChildWriter {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
}

impl ChildWriter {
    fn start(path: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "json_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_PATH, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut w = ChildWriter { child, stdin, out };
        w.wait_for("MS-CHILD ready");
        w
    }

    fn wait_for(&mut self, want: &str) {
        let mut l = String::new();
        while !l.contains(want) {
            l.clear();
            assert_ne!(self.out.read_line(&mut l).unwrap(), 0, "child writer ended");
        }
    }

    fn commit(&mut self) {
        writeln!(self.stdin.as_mut().unwrap(), "commit").unwrap();
        self.wait_for("MS-CHILD done");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exit(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for ChildWriter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `watch --json`, its stdout read line by line; `--timeout` bounds it and the guard
/// kills it if the test fails first.
struct Watch {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Watch {
    fn spawn(path: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mapped-state"))
            .args(["watch", "--json", s(path)])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Watch { child, out }
    }

    /// The next line parsed strictly, with its keys checked against its event's.
    fn event(&mut self) -> serde_json::Value {
        let mut l = String::new();
        if self.out.read_line(&mut l).unwrap() == 0 {
            let mut err = String::new();
            let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("watch ended early: {err}");
        }
        let v = strict(&l).unwrap();
        let full = || {
            let mut k = set(&["event", "file", "schema", "value"]);
            k.extend(LIVE);
            k
        };
        let want = match v["event"].as_str().unwrap() {
            "start" | "reopened" => full(),
            "version" => {
                let mut k = set(&["event", "not_seen", "changes", "value"]);
                k.extend(LIVE);
                k
            }
            "writer_exited" | "writer_started" => set(&["event", "pid"]),
            "superseded" => set(&["event"]),
            other => panic!("unknown event {other:?} in {l}"),
        };
        assert_eq!(keys(&v), want, "{l}");
        if v.get("schema").is_some() {
            assert_eq!(keys(&v["schema"]), set(&["name", "hash"]), "{l}");
            assert_eq!(keys(&v["writer"]), set(&["pid", "alive"]), "{l}");
        }
        v
    }

    fn finish(mut self) -> Option<i32> {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "", "output after the last event");
        self.child.wait().unwrap().code()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_json_events_are_strict() {
    let dir = Scratch::new("watch");
    let path = dir.path("engine.state");
    let mut first = ChildWriter::start(&path);
    let first_pid = first.pid();
    let mut watch = Watch::spawn(&path, &["--count", "2", "--timeout", "30"]);

    let start = watch.event();
    assert_eq!(start["event"], "start");
    assert_eq!(
        start["writer"],
        serde_json::json!({"pid": first_pid, "alive": true})
    );
    assert_eq!(start["version"], 0);

    first.commit();
    let v = watch.event();
    assert_eq!(v["event"], "version");
    assert_eq!(v["version"], 1);
    assert_eq!(v["not_seen"], 0);
    assert_eq!(
        v["changes"],
        serde_json::json!({"rpm": {"old": 3100, "new": 3101}})
    );
    assert_eq!(v["value"]["rpm"], 3101);

    first.exit();
    let e = watch.event();
    assert_eq!(
        e,
        serde_json::json!({"event": "writer_exited", "pid": first_pid})
    );
    let second = ChildWriter::start(&path);
    let second_pid = second.pid();
    let e = watch.event();
    assert_eq!(
        e,
        serde_json::json!({"event": "writer_started", "pid": second_pid})
    );
    second.exit();
    let e = watch.event();
    assert_eq!(
        e,
        serde_json::json!({"event": "writer_exited", "pid": second_pid})
    );

    let mut next = sample();
    next.rpm = 1;
    let mut w = Writer::<Telemetry>::create_with(&path, &next, &CreateOptions::new().replace(true))
        .unwrap();
    assert_eq!(watch.event(), serde_json::json!({"event": "superseded"}));
    let e = watch.event();
    assert_eq!(e["event"], "reopened");
    assert_eq!(e["value"]["rpm"], 1);
    assert_eq!(e["superseded"], false);
    w.set_rpm(2);
    let v = watch.event();
    assert_eq!(v["event"], "version");
    assert_eq!(
        v["changes"],
        serde_json::json!({"rpm": {"old": 1, "new": 2}})
    );
    assert_eq!(watch.finish(), Some(0));
}

#[test]
fn watch_json_change_keys_of_awkward_names_are_distinct() {
    let dir = Scratch::new("watch-awkward");
    let path = dir.path("awkward.state");
    std::fs::write(&path, awkward_names_file()).unwrap();
    let mut watch = Watch::spawn(&path, &["--count", "1", "--timeout", "30"]);
    assert_eq!(watch.event()["event"], "start");
    let mut w = RawWriter::open(&path, &mapped_state::OpenOptions::new()).unwrap();
    // One commit changes all three leaves; the first two would both be `a.b` unescaped.
    w.write_bytes(0, &[10, 20, 30]);
    // The writer taking the file over is reported first (`writer_started`).
    let v = loop {
        let e = watch.event();
        if e["event"] == "version" {
            break e;
        }
        assert_eq!(e["event"], "writer_started", "{e}");
    };
    assert_eq!(
        v["changes"],
        serde_json::json!({
            "a\\.b": {"old": 1, "new": 10},
            "a.b": {"old": 2, "new": 20},
            // A backslash in a name is escaped too.
            "q\"\n\\\\ü\u{1b}": {"old": 3, "new": 30},
        })
    );
    assert_eq!(watch.finish(), Some(0));
}

#[test]
fn inspect_json_of_a_log_is_strict() {
    use mapped_state::record::{EndReason, Recorder};
    let dir = Scratch::new("log");
    let path = dir.path("telemetry.state");
    let mut w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let log = dir.path("telemetry.log");
    let mut rec = Recorder::create(mapped_state::RawReader::open(&path).unwrap(), &log).unwrap();
    rec.capture().unwrap();
    for n in 1..=3u32 {
        let mut v = sample();
        v.rpm = n;
        w.publish(&v);
        rec.capture().unwrap();
    }
    rec.finish(EndReason::Stopped).unwrap();
    let o = run(&["inspect", "--json", s(&log)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    let v = strict(&out).unwrap();
    assert_eq!(
        keys(&v),
        set(&[
            "file",
            "kind",
            "log_format_version",
            "file_size",
            "schema",
            "source",
            "started",
            "records",
            "skipped",
            "first_version",
            "last_version",
            "end",
            "torn_tail",
            "values",
        ])
    );
    let values = v["values"].as_array().unwrap();
    assert_eq!(values.len(), 4);
    for (n, r) in values.iter().enumerate() {
        assert_eq!(
            keys(r),
            set(&["version", "commit_time", "from_history", "skipped", "value"])
        );
        assert_eq!(
            r["value"]["rpm"],
            if n == 0 { sample().rpm } else { n as u32 }
        );
    }
}
