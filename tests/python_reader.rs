//! Proof that `docs/FORMAT.md` is enough to read a state file: `docs/read_state.py`, a Python
//! reader written from it alone, must print exactly what the Rust writer wrote, refuse the same
//! corrupt files as the Rust reader (naming the same field), and agree with the worked manifest
//! example in FORMAT.md.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use mapped_state::{Error, FixedStr, MappedState, RawReader, Reader, Writer};
use serde_json::{json, Value};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Mode {
    Idle = 0,
    Running = 1,
    Stopped = 7,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(i16)]
enum Trend {
    Falling = -1,
    Flat = 0,
    Rising = 1,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Limits {
    min: i16,
    max: f64,
    enabled: bool,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Sample {
    at: u32,
    level: f32,
}

/// Every kind the format has: all primitive widths, signed and unsigned, floats (one not a
/// number), bool, char, two enum widths with negative discriminants, arrays of numbers, arrays of
/// arrays, of structs and of enums, a string with multi-byte characters, a nested struct.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Telemetry {
    rpm: u32,
    temperature_c: f32,
    uptime_s: u64,
    delta: i64,
    tiny: i8,
    short: u16,
    big: u128,
    debt: i128,
    ratio: f64,
    unknown: f64,
    hot: bool,
    grade: char,
    mode: Mode,
    trend: Trend,
    samples: [f32; 3],
    grid: [[u16; 2]; 2],
    history: [Sample; 2],
    modes: [Mode; 2],
    label: FixedStr<12>,
    limits: Limits,
}

fn initial() -> Telemetry {
    Telemetry {
        rpm: 0,
        temperature_c: 20.0,
        uptime_s: 0,
        delta: 0,
        tiny: 0,
        short: 0,
        big: 0,
        debt: 0,
        ratio: 0.0,
        unknown: 0.0,
        hot: false,
        grade: 'a',
        mode: Mode::Idle,
        trend: Trend::Flat,
        samples: [0.0; 3],
        grid: [[0; 2]; 2],
        history: [Sample { at: 0, level: 0.0 }; 2],
        modes: [Mode::Idle; 2],
        label: FixedStr::EMPTY,
        limits: Limits {
            min: 0,
            max: 0.0,
            enabled: false,
        },
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/read_state.py")
}

/// Runs `python3 docs/read_state.py <args>`, failing the test with a clear message when python3
/// is missing (it is part of the machine image and of CI's).
fn run_python(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (needed by this test): {e}"))
}

/// The JSON lines of a successful run.
fn read_json(path: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = extra.to_vec();
    let p = path.to_str().expect("UTF-8 temp path");
    args.push(p);
    let out = run_python(&args);
    assert!(
        out.status.success(),
        "read_state.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn python_reader_prints_every_field_of_a_derived_struct() {
    let dir = TempDir::new("py-derived");
    let path = dir.join("telemetry.state");
    let mut w = Writer::<Telemetry>::create(&path, &initial()).unwrap();
    w.set_rpm(3100);
    w.update(|t| {
        t.temperature_c = -12.5;
        t.uptime_s = u64::MAX;
        t.delta = i64::MIN;
        t.tiny = -128;
        t.short = 65535;
        t.big = u128::MAX;
        t.debt = i128::MIN + 1;
        t.ratio = 0.1;
        t.unknown = f64::NAN;
        t.hot = true;
        t.grade = 'é';
        t.mode = Mode::Stopped;
        t.trend = Trend::Falling;
        t.samples = [0.1, f32::INFINITY, -0.0];
        t.grid = [[1, 2], [3, 4]];
        t.history = [
            Sample { at: 7, level: 0.5 },
            Sample {
                at: 8,
                level: f32::MAX,
            },
        ];
        t.modes = [Mode::Running, Mode::Idle];
        t.label = FixedStr::new("pompe-à-eau").unwrap();
        t.limits = Limits {
            min: -300,
            max: 1e300,
            enabled: true,
        };
    });
    let version = w.version();
    assert_eq!(version, 2);

    let lines = read_json(&path, &[]);
    assert_eq!(lines.len(), 1);
    let doc = &lines[0];
    assert_eq!(
        doc["schema"],
        json!({
            "name": "Telemetry",
            "hash": format!("{:#018x}", Telemetry::SCHEMA_HASH),
            "size": Telemetry::TYPE.size,
            "align": Telemetry::TYPE.align,
        })
    );
    assert_eq!(doc["format_version"], json!(1));
    assert_eq!(doc["version"], json!(version));
    assert_eq!(doc["writer_pid"], json!(std::process::id()));
    assert_eq!(doc["superseded"], json!(false));
    let reader = Reader::<Telemetry>::open(&path).unwrap();
    let committed_ns = reader
        .last_commit()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert_eq!(doc["last_commit_ns"], json!(committed_ns as u64));
    assert_eq!(
        doc["value"],
        json!({
            "rpm": 3100,
            "temperature_c": -12.5,
            "uptime_s": u64::MAX,
            "delta": i64::MIN,
            "tiny": -128,
            "short": 65535,
            "big": u128::MAX.to_string(),
            "debt": (i128::MIN + 1).to_string(),
            "ratio": 0.1,
            "unknown": "NaN",
            "hot": true,
            "grade": "é",
            "mode": "Stopped",
            "trend": "Falling",
            "samples": [0.1, "Infinity", -0.0],
            "grid": [[1, 2], [3, 4]],
            "history": [{"at": 7, "level": 0.5}, {"at": 8, "level": 3.4028235e38}],
            "modes": ["Running", "Idle"],
            "label": "pompe-à-eau",
            "limits": {"min": -300, "max": 1e300, "enabled": true},
        })
    );
    // The Rust reader agrees on the value (NaN aside, which is never equal to itself).
    let mut back = reader.load().unwrap();
    assert!(back.unknown.is_nan());
    back.unknown = 0.0;
    let mut want = w.get();
    want.unknown = 0.0;
    assert_eq!(back, want);
}

#[test]
fn python_reader_reads_arrays_and_strings_without_a_derive() {
    let dir = TempDir::new("py-plain");
    let path = dir.join("plain.state");
    let mut w = Writer::<[u64; 5]>::create(&path, &[7; 5]).unwrap();
    w.publish(&[1, 2, 3, u64::MAX, 0]);
    let doc = &read_json(&path, &[])[0];
    assert_eq!(doc["schema"]["name"], json!("[u64; 5]"));
    assert_eq!(doc["value"], json!([1, 2, 3, u64::MAX, 0]));
    assert_eq!(doc["version"], json!(1));
    assert_eq!(doc["writer_alive"], json!(true));
    // The liveness probe of FORMAT.md 9.9 sees the writer go.
    drop(w);
    let doc = &read_json(&path, &[])[0];
    assert_eq!(doc["writer_alive"], json!(false));
    assert_eq!(doc["writer_pid"], json!(std::process::id()));

    let path = dir.join("strings.state");
    let names = [
        FixedStr::<6>::new("ab").unwrap(),
        FixedStr::new("").unwrap(),
        FixedStr::new("日本").unwrap(),
    ];
    Writer::<[FixedStr<6>; 3]>::create(&path, &names).unwrap();
    let doc = &read_json(&path, &[])[0];
    assert_eq!(doc["schema"]["size"], json!(36));
    assert_eq!(doc["value"], json!(["ab", "", "日本"]));
}

/// The worked manifest example of FORMAT.md 6.2, in a module of its own so its types can have
/// the example's names.
mod doc_example {
    use mapped_state::{FixedStr, MappedState};

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[repr(u8)]
    pub enum Mode {
        Idle = 0,
        Running = 1,
    }

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    pub struct Status {
        pub requests: u64,
        pub healthy: bool,
        pub mode: Mode,
        pub name: FixedStr<5>,
    }
}

/// The hex bytes between the `manifest-example` markers of FORMAT.md.
fn documented_manifest() -> Vec<u8> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/FORMAT.md"))
        .expect("docs/FORMAT.md");
    let start = doc
        .find("<!-- manifest-example:begin -->")
        .expect("begin marker");
    let end = doc
        .find("<!-- manifest-example:end -->")
        .expect("end marker");
    let mut bytes = Vec::new();
    for line in doc[start..end].lines() {
        // `0000: 4d 53 ...   comment`: the hex bytes sit between the colon and two spaces.
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        let hex = rest.split("   ").next().unwrap_or("");
        for b in hex.split_whitespace() {
            bytes.push(u8::from_str_radix(b, 16).expect("hex byte"));
        }
    }
    bytes
}

#[test]
fn format_md_worked_example_matches_the_encoder() {
    use doc_example::{Mode, Status};
    let manifest = mapped_state::schema::manifest_bytes(Status::TYPE);
    assert_eq!(documented_manifest(), manifest);
    assert_eq!(Status::SCHEMA_HASH, 0x0f6a_c869_eeae_cc10);
    assert_eq!((Status::TYPE.size, Status::TYPE.align), (24, 8));

    let dir = TempDir::new("py-example");
    let path = dir.join("status.state");
    let value = Status {
        requests: 41,
        healthy: true,
        mode: Mode::Running,
        name: FixedStr::new("pump").unwrap(),
    };
    Writer::<Status>::create(&path, &value).unwrap();
    let raw = RawReader::open(&path).unwrap();
    let h = raw.header();
    assert_eq!(
        (h.slot_stride, h.manifest_offset, h.manifest_len, h.file_len),
        (64, 384, 131, 515)
    );
    let doc = &read_json(&path, &[])[0];
    assert_eq!(doc["schema"]["hash"], json!("0x0f6ac869eeaecc10"));
    assert_eq!(
        doc["value"],
        json!({"requests": 41, "healthy": true, "mode": "Running", "name": "pump"})
    );
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Flags {
    count: u32,
    on: bool,
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Runs the Python reader on a file expected to be refused; returns (exit code, stderr).
fn refused(path: &Path) -> (i32, String) {
    let out = run_python(&[path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn python_reader_refuses_what_the_rust_reader_refuses_naming_the_same_field() {
    let dir = TempDir::new("py-corrupt");
    let good = dir.join("good.state");
    drop(Writer::<Flags>::create(&good, &Flags { count: 1, on: true }).unwrap());
    let pristine = std::fs::read(&good).unwrap();
    let native = |v: u64| v.to_ne_bytes().to_vec();

    // (what is broken, offset, new bytes, text the Python error must contain)
    let cases: Vec<(&str, u64, Vec<u8>, &str)> = vec![
        ("magic", 0, b"MAPSTATX".to_vec(), "not a mapped-state file"),
        (
            "endian tag of the other byte order",
            12,
            0x0102_0304u32.swap_bytes().to_ne_bytes().to_vec(),
            "other byte order",
        ),
        (
            "version",
            8,
            2u32.to_ne_bytes().to_vec(),
            "format version 2",
        ),
        (
            "word size",
            20,
            4u32.to_ne_bytes().to_vec(),
            "`word_size` at byte 20",
        ),
        ("payload align", 40, native(3), "`payload_align` at byte 40"),
        ("slot stride", 48, native(128), "`slot_stride` at byte 48"),
        (
            "manifest length",
            72,
            native(0),
            "`manifest_len` at byte 72",
        ),
        ("reserved byte", 101, vec![1], "`reserved` at byte 101"),
        (
            "nonce (caught by the checksum)",
            80,
            vec![0xff],
            "`checksum` at byte 120",
        ),
        ("manifest byte", 384 + 20, vec![b'X'], "manifest byte 0"),
    ];
    for (what, offset, bytes, needle) in cases {
        let path = dir.join("bad.state");
        std::fs::write(&path, &pristine).unwrap();
        patch(&path, offset, &bytes);
        let (code, err) = refused(&path);
        assert_eq!(code, 2, "{what}: exit status, stderr: {err}");
        assert!(err.contains(needle), "{what}: `{needle}` not in: {err}");
        let rust = RawReader::open(&path).expect_err(what);
        let agrees = match &rust {
            Error::NotAStateFile { .. } => needle.contains("not a mapped-state"),
            Error::ForeignEndian { .. } => needle.contains("byte order"),
            Error::UnsupportedVersion { found, .. } => needle.contains(&found.to_string()),
            Error::CorruptHeader { field, offset, .. } => {
                needle.contains(&format!("`{field}` at byte {offset}"))
            }
            Error::CorruptManifest { offset, .. } => {
                needle.contains(&format!("manifest byte {offset}"))
            }
            _ => false,
        };
        assert!(agrees, "{what}: Rust says {rust}, Python says {err}");
    }

    // Truncated: both report the length.
    let path = dir.join("short.state");
    std::fs::write(&path, &pristine[..pristine.len() - 1]).unwrap();
    let (code, err) = refused(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("expected {}", pristine.len())),
        "{err}"
    );
    assert!(matches!(
        RawReader::open(&path),
        Err(Error::WrongLength { .. })
    ));

    // An invalid bool in both payload copies: exit 3, naming the field, its offset and bytes.
    let path = dir.join("bool.state");
    std::fs::write(&path, &pristine).unwrap();
    patch(&path, 256 + 4, &[2]);
    patch(&path, 256 + 64 + 4, &[2]);
    let out = run_python(&[path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("field `on` at payload byte 4 holds 02, expected bool (0 or 1)"),
        "{err}"
    );
    let rust = Reader::<Flags>::open(&path).unwrap().load().unwrap_err();
    assert!(
        matches!(&rust, Error::InvalidValue { source, .. } if source.field == "on" && source.offset == 4),
        "{rust}"
    );
}

/// Concurrent snapshots. Python's mmap slices are not atomic loads and it has no fences (see
/// `snapshot` in the script), so its seq re-check is sound only where loads are not reordered
/// with loads and stores become visible in order: x86-64. Elsewhere this would test hardware
/// luck, not the format.
#[cfg(target_arch = "x86_64")]
#[test]
fn python_snapshots_stay_consistent_while_the_writer_commits() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const WORDS: usize = 32;
    let dir = TempDir::new("py-live");
    let path = dir.join("live.state");
    let mut w = Writer::<[u64; WORDS]>::create(&path, &[0; WORDS]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Commit k stores k in every word, so a snapshot's version names its value. Bounded
            // in time and in commits in case the reader never stops us.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && k < 5_000_000 {
                k += 1;
                assert_eq!(w.publish(&[k; WORDS]), k);
                // A pause of about one Python read attempt: commits still land in the middle of
                // many reads (exercising the re-check), but a read also gets quiet windows and
                // cannot starve into `Contended`.
                let pause = Instant::now() + Duration::from_micros(2);
                while Instant::now() < pause {
                    std::hint::spin_loop();
                }
            }
            k
        })
    };
    let lines = read_json(&path, &["--count", "300"]);
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    assert_eq!(lines.len(), 300);
    let mut last = 0u64;
    for doc in &lines {
        let version = doc["version"].as_u64().unwrap();
        let words: Vec<u64> = doc["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            words.iter().all(|&x| x == version),
            "torn or mislabelled snapshot at version {version}: {words:?}"
        );
        assert!(
            version >= last,
            "version went back from {last} to {version}"
        );
        last = version;
    }
    // The writer really ran during the reads (not a check of a still file).
    assert!(
        commits > 0 && last > 0,
        "{commits} commits, last version {last}"
    );
}
