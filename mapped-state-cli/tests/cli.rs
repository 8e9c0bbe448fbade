//! End-to-end tests of the `mapped-state` binary: files written by a `Writer` in this process are
//! inspected, checked, diffed and watched by the CLI in another process; corrupted and garbage
//! files must give one-line errors and the documented exit codes, never a panic.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use mapped_state::{CreateOptions, FixedStr, MappedState, Writer};

/// The quickstart's types: the CLI is tested on the files a user's first program writes.
#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;
use telemetry::{Limits, Mode, Telemetry};

mod common;
use common::Scratch;

/// 2^53 + 1: the first integer a double cannot hold, to show JSON integers stay exact.
const BIG: u64 = (1 << 53) + 1;

fn sample() -> Telemetry {
    Telemetry {
        rpm: 3100,
        temperature_c: 81.5,
        uptime_s: BIG,
        mode: Mode::Running,
        healthy: true,
        grade: 'B',
        samples: [0.5, 1.5, 2.5, 3.5, -4.25, 5.0, 0.1, 7.75],
        limits: Limits {
            min_rpm: 800,
            max_rpm: 7200,
        },
        label: FixedStr::new("engine-1").unwrap(),
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

/// The failure contract: the expected exit code (so not a panic's 101), nothing on stdout, and
/// exactly one stderr line `mapped-state: <file>: ...` that contains every one of `words`.
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The line of `text` that mentions field `name` (first column), for per-field assertions.
fn field_line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for field `{name}` in:\n{text}"))
}

#[test]
fn inspect_prints_header_writer_and_every_field() {
    let dir = Scratch::new("inspect");
    let path = dir.path("engine.state");
    let mut w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    w.publish(&sample());
    let o = run(&["inspect", s(&path)]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    println!("{out}");

    let header = [
        ("file", s(&path).to_string()),
        ("format", "version 2, native-endian".into()),
        (
            "schema",
            format!("Telemetry (hash {:#018x})", Telemetry::SCHEMA_HASH),
        ),
        ("payload", format!("{} bytes", Telemetry::TYPE.size)),
        ("writer", format!("pid {}, alive", std::process::id())),
        ("version", "1, committed ".into()),
    ];
    for (key, want) in header {
        let line = field_line(&out, key);
        assert!(
            line.contains(&want),
            "{key}: {line:?} should contain {want:?}"
        );
    }
    let fields = [
        ("rpm", "u32", "3100"),
        ("temperature_c", "f32", "81.5"),
        ("uptime_s", "u64", "9007199254740993"),
        ("mode", "Mode", "Running"),
        ("healthy", "bool", "true"),
        ("grade", "char", "'B'"),
        (
            "samples",
            "[f32; 8]",
            "[0.5, 1.5, 2.5, 3.5, -4.25, 5.0, 0.1, 7.75]",
        ),
        ("limits.min_rpm", "u32", "800"),
        ("limits.max_rpm", "u32", "7200"),
        ("label", "FixedStr<32>", "\"engine-1\""),
    ];
    for (name, ty, value) in fields {
        let line = field_line(&out, name);
        let rest: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(
            rest.join(" "),
            format!("{ty} {value}"),
            "line of `{name}`: {line:?}"
        );
    }
}

#[test]
fn inspect_json_holds_the_same_values() {
    let dir = Scratch::new("json");
    let path = dir.path("engine.state");
    let _w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let o = run(&["inspect", "--json", s(&path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one object on one line: {out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["file"], s(&path));
    assert_eq!(j["format_version"], 2);
    assert_eq!(j["slots"], 4);
    assert_eq!(j["schema"]["name"], "Telemetry");
    assert_eq!(
        j["schema"]["hash"],
        format!("{:#018x}", Telemetry::SCHEMA_HASH)
    );
    assert_eq!(j["writer"]["pid"], std::process::id());
    assert_eq!(j["writer"]["alive"], true);
    assert_eq!(j["version"], 0);
    assert_eq!(j["superseded"], false);
    let v = &j["value"];
    assert_eq!(v["rpm"], 3100);
    assert_eq!(v["temperature_c"], 81.5);
    // Exact beyond 2^53: read as u64, not through a double.
    assert_eq!(v["uptime_s"].as_u64(), Some(BIG));
    assert_eq!(v["mode"], "Running");
    assert_eq!(v["healthy"], true);
    assert_eq!(v["grade"], "B");
    let samples: Vec<f64> = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    // f32 values printed in their shortest form: 0.1f32 reads back as the double 0.1.
    assert_eq!(samples, [0.5, 1.5, 2.5, 3.5, -4.25, 5.0, 0.1, 7.75]);
    assert_eq!(v["limits"]["min_rpm"], 800);
    assert_eq!(v["limits"]["max_rpm"], 7200);
    assert_eq!(v["label"], "engine-1");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
}

#[test]
fn check_accepts_a_good_file_and_its_schema_hash() {
    let dir = Scratch::new("check-ok");
    let path = dir.path("engine.state");
    let _w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let o = run(&["check", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(": ok: Telemetry"), "{}", stdout(&o));

    let hash = format!("{:#018x}", Telemetry::SCHEMA_HASH);
    let o = run(&["check", "-q", "--schema-hash", &hash, s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");

    let wrong = format!("{:x}", Telemetry::SCHEMA_HASH ^ 1);
    let o = run(&["check", "--schema-hash", &wrong, s(&path)]);
    assert_fails(&o, 1, &path, &["schema hash is", &hash, "expected"]);
}

/// A copy of `src` with `edit` applied, mode 0600 (readers refuse group-writable files, and the
/// umask may not be 022).
fn corrupted_copy(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(src).unwrap();
    edit(&mut bytes);
    std::fs::write(dst, &bytes).unwrap();
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn check_rejects_a_corrupt_header_and_an_invalid_bool_in_one_line() {
    let dir = Scratch::new("check-bad");
    let good = dir.path("good.state");
    drop(Writer::<Telemetry>::create(&good, &sample()).unwrap());

    // Byte 41 is inside `payload_align` (offset 40): 8 becomes 0x4008, not a power of two.
    let bad_header = dir.path("header.state");
    corrupted_copy(&good, &bad_header, |b| b[41] ^= 0x40);
    let o = run(&["check", s(&bad_header)]);
    assert_fails(
        &o,
        1,
        &bad_header,
        &["corrupt header", "`payload_align` at byte 40", "16392"],
    );

    // `healthy` (payload byte 17) set to 2 in both payload copies.
    let stride = Telemetry::TYPE.size.div_ceil(64) * 64;
    let bad_bool = dir.path("bool.state");
    corrupted_copy(&good, &bad_bool, |b| {
        b[256 + 17] = 2;
        b[256 + stride + 17] = 2;
    });
    for cmd in ["check", "inspect", "watch"] {
        let o = run(&[cmd, s(&bad_bool)]);
        assert_fails(
            &o,
            1,
            &bad_bool,
            &[
                "invalid value",
                "`healthy`",
                "byte 17",
                "[02]",
                "bool (0 or 1)",
            ],
        );
    }

    // Each invalid value (bool, enum, char, string length, UTF-8) is reported by the CLI, which
    // knows only the manifest, exactly as the typed reader reports it.
    let cases: [(usize, &[u8], &str); 5] = [
        (17, &[2], "`healthy`"),
        (
            16,
            &[9],
            "enum `Mode` (one of Idle = 0, Running = 1, Fault = 2)",
        ),
        (20, &0xD800u32.to_ne_bytes(), "`grade`"),
        (64, &33u32.to_ne_bytes(), "string length at most 32"),
        (69, &[0xC3], "UTF-8 text"),
    ];
    let bad = dir.path("bad.state");
    for (at, bytes, word) in cases {
        corrupted_copy(&good, &bad, |b| {
            for copy in [256, 256 + stride] {
                b[copy + at..copy + at + bytes.len()].copy_from_slice(bytes);
            }
        });
        let typed = mapped_state::Reader::<Telemetry>::open(&bad)
            .unwrap()
            .load()
            .unwrap_err()
            .to_string();
        assert!(typed.contains(word), "{typed}");
        let o = run(&["check", s(&bad)]);
        assert_fails(&o, 1, &bad, &[word]);
        assert_eq!(stderr(&o), format!("mapped-state: {typed}\n"));
    }
}

#[test]
fn no_byte_flip_makes_the_cli_panic() {
    let dir = Scratch::new("flips");
    let good = dir.path("good.state");
    drop(Writer::<Telemetry>::create(&good, &sample()).unwrap());
    let len = std::fs::metadata(&good).unwrap().len() as usize;
    let stride = Telemetry::TYPE.size.div_ceil(64) * 64;
    let manifest = 256 + 4 * stride;
    // Every header byte and every byte of the slot readers use (version 0: slot 0); every 8th
    // byte of the control block, the other slots and the manifest (all covered by a hash, so
    // one flip is as good as another). About 300 runs of the binary.
    let offsets =
        (0..len).filter(|&at| at < 128 || (256..256 + stride).contains(&at) || at % 8 == 0);
    // Bounded in time too: a loaded machine checks fewer bytes rather than stalling the suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let flipped = dir.path("flipped.state");
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for at in offsets {
        if std::time::Instant::now() > deadline {
            println!("time budget spent: stopped before byte {at}");
            break;
        }
        corrupted_copy(&good, &flipped, |b| b[at] ^= 0xff);
        let o = run(&["check", "-q", s(&flipped)]);
        match o.status.code() {
            Some(0) => {
                assert_eq!(stderr(&o), "", "byte {at}");
                valid.push(at);
            }
            Some(1) => {
                assert_fails(&o, 1, &flipped, &[]);
                invalid.push(at);
            }
            other => panic!("byte {at}: exit {other:?}, stderr {}", stderr(&o)),
        }
    }
    // Header and manifest are checksummed; in the payload, the bool, enum, char and string
    // length reject a flipped byte, numbers (`rpm` at 256..260) take any bits.
    for at in valid.iter() {
        assert!(
            (128..manifest).contains(at),
            "flipped byte {at} was accepted"
        );
    }
    // (`grade` is checked by its high byte: a flipped low byte is still a valid char.)
    for at in [0, 127, 256 + 16, 256 + 17, 256 + 23, 256 + 64, manifest] {
        assert!(invalid.contains(&at) || !valid.contains(&at), "byte {at}");
    }
    assert!(
        invalid.contains(&(256 + 17)),
        "the budget covers the payload"
    );
    assert!(
        valid.contains(&256),
        "a flipped number is still a valid file"
    );
}

#[test]
fn garbage_files_fail_with_one_line_and_the_documented_code() {
    let dir = Scratch::new("garbage");
    let empty = dir.path("empty.state");
    std::fs::write(&empty, b"").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let random = dir.path("random.state");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            // xorshift64: deterministic noise, so a failure reproduces.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    std::fs::set_permissions(&random, std::fs::Permissions::from_mode(0o600)).unwrap();
    let magic = dir.path("magic.state");
    let mut m = b"MAPSTATE".to_vec();
    m.extend_from_slice(&bytes[..500]);
    std::fs::write(&magic, &m).unwrap();
    std::fs::set_permissions(&magic, std::fs::Permissions::from_mode(0o600)).unwrap();
    let good = dir.path("good.state");
    drop(Writer::<Telemetry>::create(&good, &sample()).unwrap());
    let truncated = dir.path("truncated.state");
    corrupted_copy(&good, &truncated, |b| b.truncate(300));
    let subdir = dir.path("a-directory");
    std::fs::create_dir(&subdir).unwrap();
    let missing = dir.path("missing.state");
    let shared = dir.path("shared.state");
    std::fs::copy(&good, &shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();

    let cases: [(&Path, i32, &[&str]); 7] = [
        (&empty, 1, &["not a mapped-state file"]),
        (&random, 1, &["not a mapped-state file"]),
        (&magic, 1, &["corrupt header"]),
        (&truncated, 1, &["truncated"]),
        (&subdir, 3, &["not a regular file"]),
        (&missing, 3, &["open", "No such file"]),
        (&shared, 3, &["666", "--allow-shared-writable"]),
    ];
    for (path, code, words) in cases {
        for args in [
            &["inspect", s(path)][..],
            &["check", s(path)],
            &["watch", s(path), "--timeout", "1"],
        ] {
            if args[0] == "watch" && path == missing.as_path() {
                // `watch` waits for a missing file to appear (says so on stdout first):
                // `watch_on_a_file_that_never_appears_ends_with_code_3_at_its_timeout`.
                continue;
            }
            assert_fails(&run(args), code, path, words);
        }
        let o = run(&["diff", s(&good), s(path)]);
        assert_fails(&o, code, path, words);
    }
    let o = run(&["check", "--allow-shared-writable", s(&shared)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes_and_json() {
    let o = run(&["inspect"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["watch", "x", "--timeout", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a number of seconds"),
        "{}",
        stderr(&o)
    );
    let o = run(&["check", "x", "--schema-hash", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["inspect", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for w in [
        "Exit codes:",
        "u128, i128",
        "decimal strings",
        "2^53",
        "\"NaN\"",
    ] {
        assert!(
            help.contains(w),
            "inspect --help should mention {w:?}:\n{help}"
        );
    }
}

#[test]
fn diff_lists_schema_differences() {
    let dir = Scratch::new("diff");
    let a = dir.path("a.state");
    let b = dir.path("b.state");
    let c = dir.path("c.state");
    drop(Writer::<Telemetry>::create(&a, &sample()).unwrap());
    drop(Writer::<Telemetry>::create(&b, &sample()).unwrap());
    drop(Writer::<[u64; 3]>::create(&c, &[1, 2, 3]).unwrap());
    let o = run(&["diff", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("same schema: Telemetry"),
        "{}",
        stdout(&o)
    );
    let o = run(&["diff", s(&a), s(&c)]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let out = stdout(&o);
    for w in [
        "Telemetry",
        "[u64; 3]",
        "rpm: removed",
        "label: removed",
        "value: added",
    ] {
        assert!(out.contains(w), "diff should mention {w:?}:\n{out}");
    }
}

#[test]
fn inspect_shows_a_top_level_array_as_one_value() {
    let dir = Scratch::new("array");
    let path = dir.path("a.state");
    drop(Writer::<[u64; 3]>::create(&path, &[1, u64::MAX, 3]).unwrap());
    let o = run(&["inspect", s(&path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = field_line(&out, "value");
    assert!(line.contains("[1, 18446744073709551615, 3]"), "{line}");
    assert!(field_line(&out, "writer").contains("exited"), "{out}");
}

/// A running `watch` whose stdout is read line by line. The CLI's `--timeout` bounds it; the
/// guard kills it if the test fails first.
struct Watch {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Watch {
    fn spawn(path: &Path, extra: &[&str]) -> Self {
        let mut child = cli()
            .args(["watch", s(path)])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Watch { child, out }
    }

    /// The next line, or `None` at the end of output.
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.out.read_line(&mut l).unwrap() {
            0 => None,
            _ => Some(l),
        }
    }

    /// Lines up to and including the first that contains `want`; panics with all lines read
    /// if the output ends first (the watch timed out).
    fn until(&mut self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(l) = self.line() {
            let done = l.contains(want);
            seen.push(l);
            if done {
                return seen;
            }
        }
        panic!("watch ended without {want:?}; printed {seen:?}");
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
        let code = self.child.wait().unwrap().code();
        (rest, err, code)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_prints_a_change_made_by_another_process() {
    let dir = Scratch::new("watch");
    let path = dir.path("engine.state");
    let mut w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let mut watch = Watch::spawn(&path, &["--count", "1", "--timeout", "20"]);
    let first = watch.line().unwrap();
    assert!(first.starts_with("watching "), "{first}");
    assert!(
        first.contains("Telemetry") && first.contains("version 0"),
        "{first}"
    );
    // The first line is printed once the watch is armed: this commit cannot be missed.
    w.update(|t| {
        t.rpm = 4200;
        t.mode = Mode::Fault;
    });
    let (rest, err, code) = watch.finish();
    assert_eq!(code, Some(0), "stderr {err}, stdout {rest}");
    assert_eq!(
        rest,
        "version 1:\n  rpm: 3100 -> 4200\n  mode: Running -> Fault\n"
    );
}

#[test]
fn watch_json_prints_one_object_per_version() {
    let dir = Scratch::new("watch-json");
    let path = dir.path("engine.state");
    let mut w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let mut watch = Watch::spawn(&path, &["--json", "--count", "2", "--timeout", "20"]);
    let start: serde_json::Value = serde_json::from_str(&watch.line().unwrap()).unwrap();
    assert_eq!(start["event"], "start");
    assert_eq!(start["value"]["label"], "engine-1");
    w.update(|t| t.limits.max_rpm = 7500);
    let v1: serde_json::Value = serde_json::from_str(&watch.line().unwrap()).unwrap();
    w.update(|t| t.label = FixedStr::new("renamed").unwrap());
    let (rest, err, code) = watch.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v1["event"], "version");
    assert_eq!(v1["version"], 1);
    assert_eq!(
        v1["changes"],
        serde_json::json!({"limits.max_rpm": {"old": 7200, "new": 7500}})
    );
    assert_eq!(v1["value"]["limits"]["max_rpm"], 7500);
    let v2: serde_json::Value = serde_json::from_str(rest.trim_end()).unwrap();
    assert_eq!(v2["version"], 2);
    assert_eq!(
        v2["changes"],
        serde_json::json!({"label": {"old": "engine-1", "new": "renamed"}})
    );
}

#[test]
fn watch_waits_for_a_missing_file_and_says_so() {
    let dir = Scratch::new("watch-missing");
    let path = dir.path("late.state");
    let mut watch = Watch::spawn(&path, &["--count", "1", "--timeout", "20"]);
    let first = watch.line().unwrap();
    assert_eq!(first, format!("waiting for {} to appear\n", path.display()));
    // Printed once the directory is watched: a file published now is found.
    let mut w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let banner = watch.line().unwrap();
    assert!(
        banner.starts_with("watching ") && banner.contains("version 0"),
        "{banner}"
    );
    w.update(|t| t.rpm = 4200);
    let (rest, err, code) = watch.finish();
    assert_eq!(code, Some(0), "stderr {err}, stdout {rest}");
    assert_eq!(rest, "version 1:\n  rpm: 3100 -> 4200\n");

    let path = dir.path("late-json.state");
    let mut watch = Watch::spawn(&path, &["--json", "--count", "1", "--timeout", "20"]);
    let waiting: serde_json::Value = serde_json::from_str(&watch.line().unwrap()).unwrap();
    assert_eq!(waiting["event"], "waiting");
    assert_eq!(waiting["file"], s(&path));
    let mut w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let start: serde_json::Value = serde_json::from_str(&watch.line().unwrap()).unwrap();
    assert_eq!(start["event"], "start");
    assert_eq!(start["value"]["label"], "engine-1");
    w.update(|t| t.rpm = 4200);
    let (rest, err, code) = watch.finish();
    assert_eq!(code, Some(0), "{err}");
    let v1: serde_json::Value = serde_json::from_str(rest.trim_end()).unwrap();
    assert_eq!(v1["version"], 1);
}

#[test]
fn watch_on_a_file_that_never_appears_ends_with_code_3_at_its_timeout() {
    let dir = Scratch::new("watch-never");
    let path = dir.path("never.state");
    let o = run(&["watch", s(&path), "--timeout", "0.3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("waiting for {} to appear\n", path.display())
    );
    assert!(stderr(&o).contains("No such file"), "{}", stderr(&o));
}

#[test]
fn watch_times_out_with_code_4_when_count_is_not_reached() {
    let dir = Scratch::new("watch-timeout");
    let path = dir.path("engine.state");
    let _w = Writer::<Telemetry>::create(&path, &sample()).unwrap();
    let o = run(&["watch", s(&path), "--count", "1", "--timeout", "0.3"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("watching "));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("timed out") && err.contains("saw 0 of 1 new versions"),
        "{err}"
    );
    let o = run(&["watch", s(&path), "--timeout", "0.2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Environment variable that turns `child_writer` into a writer process for the file it names.
const CHILD_PATH: &str = "MS_CLI_CHILD_WRITER_PATH";

/// Run as a child process by `watch_reports_writer_exit_and_follows_a_replacement` (an empty
/// test otherwise): creates the file, or takes it over if it exists, says `ready`, and holds
/// it until its stdin closes.
#[test]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_PATH) else {
        return;
    };
    let _w = if Path::new(&path).exists() {
        Writer::<Telemetry>::open(&path).unwrap()
    } else {
        Writer::<Telemetry>::create(&path, &sample()).unwrap()
    };
    println!("MS-CHILD ready");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// A `child_writer` process holding `path`; it exits when dropped or `exit`ed. Its stdout is
/// kept open so the harness can print its summary.
struct ChildWriter {
    child: Child,
    _out: BufReader<ChildStdout>,
}

impl ChildWriter {
    fn start(path: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_PATH, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut l = String::new();
        while !l.contains("MS-CHILD ready") {
            l.clear();
            assert_ne!(
                out.read_line(&mut l).unwrap(),
                0,
                "child writer ended early"
            );
        }
        ChildWriter { child, _out: out }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exit(mut self) {
        drop(self.child.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for ChildWriter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_reports_writer_exit_and_follows_a_replacement() {
    let dir = Scratch::new("watch-replace");
    let path = dir.path("engine.state");
    // Writers are other processes that exit, as in production. (A writer in this process
    // would leave a live pid in the file, and a writer replacing the file would then refuse
    // to wait out the CLI's brief liveness probe on the lock.)
    let first_writer = ChildWriter::start(&path);
    let first_pid = first_writer.pid();
    let mut watch = Watch::spawn(&path, &["--timeout", "20"]);
    let first = watch.line().unwrap();
    assert!(
        first.contains(&format!("pid {first_pid}, alive")),
        "{first}"
    );
    first_writer.exit();
    let lines = watch.until("exited");
    assert_eq!(lines.concat(), format!("writer pid {first_pid} exited\n"));

    let second_writer = ChildWriter::start(&path);
    let second_pid = second_writer.pid();
    let lines = watch.until("started");
    assert_eq!(lines.concat(), format!("writer pid {second_pid} started\n"));
    second_writer.exit();
    let lines = watch.until("exited");
    assert_eq!(lines.concat(), format!("writer pid {second_pid} exited\n"));

    let mut next = sample();
    next.label = FixedStr::new("replacement").unwrap();
    let _w = Writer::<Telemetry>::create_with(&path, &next, &CreateOptions::new().replace(true))
        .unwrap();
    let lines = watch.until("reopened").concat();
    assert!(
        lines.starts_with("superseded: a newer file has replaced"),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("writer pid {}, alive", std::process::id())),
        "{lines}"
    );
    let table = watch.until("label").concat();
    assert!(table.contains("\"replacement\""), "{table}");
}

#[test]
fn watch_json_reports_writer_restarts_and_a_replacement() {
    let dir = Scratch::new("watch-json-replace");
    let path = dir.path("engine.state");
    let first_writer = ChildWriter::start(&path);
    let first_pid = first_writer.pid();
    let mut watch = Watch::spawn(&path, &["--json", "--timeout", "20"]);
    let json = |l: String| -> serde_json::Value { serde_json::from_str(&l).unwrap() };
    let start = json(watch.line().unwrap());
    assert_eq!(start["event"], "start");
    first_writer.exit();
    let exited = json(watch.line().unwrap());
    assert_eq!(
        exited,
        serde_json::json!({"event": "writer_exited", "pid": first_pid})
    );
    let second_writer = ChildWriter::start(&path);
    let second_pid = second_writer.pid();
    let started = json(watch.line().unwrap());
    assert_eq!(
        started,
        serde_json::json!({"event": "writer_started", "pid": second_pid})
    );
    second_writer.exit();
    let exited = json(watch.line().unwrap());
    assert_eq!(
        exited,
        serde_json::json!({"event": "writer_exited", "pid": second_pid})
    );

    let mut next = sample();
    next.label = FixedStr::new("replacement").unwrap();
    let _w = Writer::<Telemetry>::create_with(&path, &next, &CreateOptions::new().replace(true))
        .unwrap();
    assert_eq!(
        json(watch.line().unwrap()),
        serde_json::json!({"event": "superseded"})
    );
    let reopened = json(watch.line().unwrap());
    assert_eq!(reopened["event"], "reopened");
    assert_eq!(reopened["value"]["label"], "replacement");
}

/// A point of a track: arrays of structs are shown element by element.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Point {
    x: i16,
    ok: bool,
}

/// Wide integers and arrays of structs and enums.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Wide {
    big: u128,
    small: i128,
    points: [Point; 2],
    modes: [Mode; 2],
}

#[test]
fn wide_integers_and_arrays_of_structs() {
    let dir = Scratch::new("wide");
    let path = dir.path("wide.state");
    let value = Wide {
        big: u128::MAX,
        small: i128::MIN,
        points: [Point { x: -7, ok: true }, Point { x: 9, ok: false }],
        modes: [Mode::Idle, Mode::Fault],
    };
    drop(Writer::<Wide>::create(&path, &value).unwrap());

    let o = run(&["inspect", s(&path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for (name, rest) in [
        ("big", "u128 340282366920938463463374607431768211455"),
        ("small", "i128 -170141183460469231731687303715884105728"),
        ("points[0].x", "i16 -7"),
        ("points[0].ok", "bool true"),
        ("points[1].x", "i16 9"),
        ("points[1].ok", "bool false"),
        ("modes", "[Mode; 2] [Idle, Fault]"),
    ] {
        let line = field_line(&out, name);
        let got: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(got.join(" "), rest, "{line:?}");
    }

    let o = run(&["inspect", "--json", s(&path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        j["value"],
        serde_json::json!({
            "big": "340282366920938463463374607431768211455",
            "small": "-170141183460469231731687303715884105728",
            "points": [{"x": -7, "ok": true}, {"x": 9, "ok": false}],
            "modes": ["Idle", "Fault"],
        })
    );
}

#[path = "../fuzz/corpus.rs"]
mod corpus;

#[test]
fn inspect_survives_names_longer_than_a_format_width() {
    // A field name and struct name of 65,535 bytes in 256 elements: the padding width used to
    // overflow (exit 101), and every line was padded to the widest path.
    let dir = Scratch::new("long-names");
    let path = dir.path("long.state");
    std::fs::write(&path, corpus::long_names(256).bytes).unwrap();
    let o = run(&["inspect", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("output stops here"), "not cut off");
    assert!(
        out.len() < 2 * corpus::long_names(256).bytes.len() * 64,
        "{}",
        out.len()
    );
    let o = run(&["inspect", "--json", s(&path)]);
    assert_fails(&o, 1, &path, &["JSON rendering would exceed"]);
    let o = run(&["check", s(&path)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn trust_owner_flag_opens_a_file_of_another_user() {
    let dir = Scratch::new("owner");
    let path = dir.path("theirs.state");
    drop(Writer::<Telemetry>::create(&path, &sample()).unwrap());
    if let Err(e) = std::os::unix::fs::chown(&path, Some(12345), None) {
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        eprintln!("NOT RUN: needs root to chown a file to uid 12345");
        return;
    }
    let o = run(&["inspect", s(&path)]);
    assert_fails(&o, 3, &path, &["owned by uid 12345", "--trust-owner 12345"]);
    let o = run(&[
        "check",
        "--trust-owner",
        "7",
        "--trust-owner",
        "12345",
        s(&path),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `diff OLD NEW` says whether readers of OLD can open NEW (schema evolution), and why not.
#[test]
fn diff_says_whether_readers_of_old_can_open_new() {
    mod v1 {
        use mapped_state::MappedState;
        #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
        #[mapped_state(name = "Config")]
        pub struct Config {
            pub rpm: u32,
        }
    }
    mod v2 {
        use mapped_state::MappedState;
        #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
        #[mapped_state(name = "Config")]
        pub struct Config {
            pub rpm: u32,
            pub timeout_ms: u32,
        }
    }
    mod v3 {
        use mapped_state::MappedState;
        #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
        #[mapped_state(name = "Config")]
        pub struct Config {
            pub rpm: u64,
        }
    }
    let dir = Scratch::new("diff-evolve");
    let (a, b, c) = (
        dir.path("1.state"),
        dir.path("2.state"),
        dir.path("3.state"),
    );
    drop(Writer::<v1::Config>::create(&a, &v1::Config { rpm: 1 }).unwrap());
    drop(
        Writer::<v2::Config>::create(
            &b,
            &v2::Config {
                rpm: 1,
                timeout_ms: 2,
            },
        )
        .unwrap(),
    );
    drop(Writer::<v3::Config>::create(&c, &v3::Config { rpm: 1 }).unwrap());
    let o = run(&["diff", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("readers of OLD can open NEW: every field"),
        "{}",
        stdout(&o)
    );
    let o = run(&["diff", s(&b), s(&a)]);
    assert!(
        stdout(&o).contains("readers of OLD can open NEW only if they declare defaults (`#[mapped_state(default ...)]`) for the fields NEW lacks: `timeout_ms: u32 @4`"),
        "{}",
        stdout(&o)
    );
    let o = run(&["diff", s(&a), s(&c)]);
    let out = stdout(&o);
    assert!(out.contains("readers of OLD cannot open NEW:"), "{out}");
    assert!(
        out.contains("this program's `Config` has `rpm: u32 @0`, the file has `rpm: u64 @0`"),
        "{out}"
    );
    assert!(out.contains("writers of OLD cannot take over NEW"), "{out}");
}
