//! Proof that `docs/FORMAT.md` is enough to read a state file: the Python package in `python/`
//! (a reader written from it alone), run from the source tree through `docs/read_state.py`, must
//! print exactly what the Rust writer wrote, refuse the same corrupt files as the Rust reader
//! (naming the same field), and agree with the worked manifest example in FORMAT.md. The
//! installed package is tested against the CLI in `mapped-state-cli/tests/python_package.rs`.

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

/// This process's start time in clock ticks since boot: field 22 of `/proc/self/stat`, which
/// FORMAT.md says the writer records at control-block byte 160.
#[cfg(target_os = "linux")]
fn own_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Field 2 (the command) is parenthesised and may hold spaces: count from the last `)`.
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after.split_whitespace().nth(19).unwrap().parse().unwrap()
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
    assert_eq!(doc["format_version"], json!(2));
    assert_eq!(doc["slots"], json!(4));
    assert_eq!(doc["version"], json!(version));
    assert_eq!(doc["writer"]["pid"], json!(std::process::id()));
    assert_eq!(doc["writer"]["alive"], json!(true));
    assert_eq!(doc["superseded"], json!(false));
    let reader = Reader::<Telemetry>::open(&path).unwrap();
    let committed_ns = reader
        .last_commit()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // RFC 3339 with nanoseconds, as the CLI prints it.
    let stamp = doc["last_commit"].as_str().unwrap();
    assert!(
        stamp.ends_with(&format!(".{:09}Z", committed_ns % 1_000_000_000)),
        "{stamp} for {committed_ns} ns"
    );
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
    assert_eq!(doc["writer"]["alive"], json!(true));
    // The liveness probe of FORMAT.md 9.9 sees the writer go.
    drop(w);
    let doc = &read_json(&path, &[])[0];
    assert_eq!(doc["writer"]["alive"], json!(false));
    assert_eq!(doc["writer"]["pid"], json!(std::process::id()));

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

/// The hex bytes between the `<name>-example` markers of FORMAT.md.
fn documented_bytes(name: &str) -> Vec<u8> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/FORMAT.md"))
        .expect("docs/FORMAT.md");
    let begin = format!("<!-- {name}-example:begin -->");
    let start = doc.find(&begin).unwrap_or_else(|| panic!("{begin} marker"));
    let end = start
        + doc[start..]
            .find(&format!("<!-- {name}-example:end -->"))
            .unwrap_or_else(|| panic!("{name} end marker"));
    let mut bytes = Vec::new();
    for line in doc[start..end].lines() {
        // `0000: 4d 53 ...   comment`: the hex bytes sit between the colon and three spaces.
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

/// The nonce of the worked example's header (a real file's is random).
const EXAMPLE_NONCE: u64 = 0x0123_4567_89ab_cdef;

#[test]
fn format_md_worked_example_matches_the_encoder() {
    use doc_example::{Mode, Status};
    use mapped_state::format::{off, Header};
    let manifest = mapped_state::schema::manifest_bytes(Status::TYPE);
    assert_eq!(documented_bytes("manifest"), manifest);
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
    let _writer = Writer::<Status>::create(&path, &value).unwrap();
    let raw = RawReader::open(&path).unwrap();
    let h = *raw.header();
    assert_eq!(
        (
            h.slot_count,
            h.slot_stride,
            h.manifest_offset,
            h.manifest_len,
            h.file_len
        ),
        (4, 64, 512, 131, 643)
    );
    let file = std::fs::read(&path).unwrap();
    assert_eq!(file.len(), 643);
    assert_eq!(
        &file[512..],
        &manifest[..],
        "the manifest follows the last slot"
    );

    // The header, control block and slot dumps hold native-endian integers: the documented
    // ones are those of a little-endian machine.
    if cfg!(target_endian = "little") {
        // The documented header is the encoder's, for the example's nonce...
        let header = documented_bytes("header");
        let encoded = Header {
            nonce: EXAMPLE_NONCE,
            ..h
        }
        .encode();
        assert_eq!(header, encoded.to_vec());
        // ...and the real file's, but for its random nonce and the checksum that covers it.
        assert_eq!(&file[..off::NONCE], &header[..off::NONCE]);
        assert_eq!(
            &file[off::NONCE + 8..off::CHECKSUM],
            &header[off::NONCE + 8..off::CHECKSUM]
        );

        // The control block of a new file: all zero (seq 0, notify 0, flags 0, reserved) but
        // the writer's pid, the commit time and the writer's start time, whose documented
        // values are examples. (The file is read while its writer is open: closing it flags
        // the file closed and wakes waiters.)
        let control = documented_bytes("control");
        assert_eq!(control.len(), 128);
        let varying = off::WRITER_PID..off::RESERVED_CONTROL;
        for i in 128..256 {
            if !varying.contains(&i) {
                assert_eq!(file[i], control[i - 128], "control block byte {i}");
            }
        }
        let word = |b: &[u8], at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap());
        assert_eq!(word(&file, off::WRITER_PID), u64::from(std::process::id()));
        #[cfg(target_os = "linux")]
        assert_eq!(word(&file, off::WRITER_START), own_start_time());

        // Every slot holds the initial value: the documented slot 0, then zeros to the stride.
        let slot = documented_bytes("slot");
        assert_eq!(slot.len(), 64);
        for i in 0..4 {
            let at = 256 + i * 64;
            assert_eq!(&file[at..at + 64], &slot[..], "slot {i}");
        }
    }

    let doc = &read_json(&path, &[])[0];
    assert_eq!(doc["schema"]["hash"], json!("0x0f6ac869eeaecc10"));
    assert_eq!(doc["slots"], json!(4));
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
    let h = *RawReader::open(&good).unwrap().header();
    // Flags: 8 bytes, align 4, one 64-byte stride per slot, 4 slots, the manifest at 512.
    assert_eq!(
        (h.slot_count, h.slot_stride, h.manifest_offset),
        (4, 64, 512)
    );
    let native = |v: u64| v.to_ne_bytes().to_vec();
    let native32 = |v: u32| v.to_ne_bytes().to_vec();

    // (what is broken, patches (offset, new bytes), text the Python error must contain), in
    // the order of FORMAT.md 3.1; each breaks only its own check, so it also checks that the
    // checks before it pass on it.
    type Case = (&'static str, Vec<(u64, Vec<u8>)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "magic",
            vec![(0, b"MAPSTATX".to_vec())],
            "not a mapped-state file",
        ),
        (
            "endian tag of the other byte order",
            vec![(12, native32(0x0102_0304u32.swap_bytes()))],
            "other byte order",
        ),
        (
            "endian tag",
            vec![(12, native32(7))],
            "`endian_tag` at byte 12",
        ),
        (
            "version 1 (the latch)",
            vec![(8, native32(1))],
            "format version 1 is not supported",
        ),
        ("version 3", vec![(8, native32(3))], "format version 3"),
        (
            "header length",
            vec![(16, native32(256))],
            "`header_len` at byte 16",
        ),
        (
            "word size",
            vec![(20, native32(4))],
            "`word_size` at byte 20",
        ),
        (
            "payload size 0",
            vec![(32, native(0))],
            "`payload_size` at byte 32",
        ),
        (
            "payload size over 1 GiB",
            vec![(32, native((1 << 30) + 4))],
            "`payload_size` at byte 32",
        ),
        (
            "payload align",
            vec![(40, native(3))],
            "`payload_align` at byte 40",
        ),
        (
            "payload align 128",
            vec![(40, native(128))],
            "`payload_align` at byte 40",
        ),
        (
            "payload size not a multiple of its alignment",
            vec![(32, native(10))],
            "`payload_size` at byte 32",
        ),
        (
            "slot stride",
            vec![(48, native(128))],
            "`slot_stride` at byte 48",
        ),
        (
            "payload offset",
            vec![(88, native(192))],
            "`payload_offset` at byte 88",
        ),
        (
            "slot count 3",
            vec![(96, native(3))],
            "`slot_count` at byte 96",
        ),
        (
            "slot count 1",
            vec![(96, native(1))],
            "`slot_count` at byte 96",
        ),
        (
            "slot count 0",
            vec![(96, native(0))],
            "`slot_count` at byte 96",
        ),
        (
            "slot count 512",
            vec![(96, native(512))],
            "`slot_count` at byte 96",
        ),
        (
            "a ring over 4 GiB (8 slots of 1 GiB)",
            vec![
                (32, native(1 << 30)),
                (48, native(1 << 30)),
                (96, native(8)),
            ],
            "`slot_count` at byte 96",
        ),
        (
            "manifest offset of a two-slot file",
            vec![(64, native(256 + 2 * 64))],
            "`manifest_offset` at byte 64",
        ),
        (
            "slot count that does not match the manifest offset",
            vec![(96, native(8))],
            "`manifest_offset` at byte 64",
        ),
        (
            "manifest length 0",
            vec![(72, native(0))],
            "`manifest_len` at byte 72",
        ),
        (
            "manifest length over 1 MiB",
            vec![(72, native((1 << 20) + 1))],
            "`manifest_len` at byte 72",
        ),
        (
            "file length",
            vec![(56, native(4096))],
            "`file_len` at byte 56",
        ),
        (
            "reserved byte",
            vec![(104, vec![1])],
            "`reserved` at byte 104",
        ),
        (
            "last reserved byte",
            vec![(119, vec![1])],
            "`reserved` at byte 119",
        ),
        (
            "nonce (caught by the checksum)",
            vec![(80, vec![0xff])],
            "`checksum` at byte 120",
        ),
        (
            "checksum",
            vec![(127, vec![0x5a])],
            "`checksum` at byte 120",
        ),
        (
            "manifest byte",
            vec![(512 + 20, vec![b'X'])],
            "manifest byte 0",
        ),
    ];
    for (what, patches, needle) in cases {
        let path = dir.join("bad.state");
        std::fs::write(&path, &pristine).unwrap();
        for (offset, bytes) in &patches {
            patch(&path, *offset, bytes);
        }
        let (code, err) = refused(&path);
        // The CLI's exit code for a file that is not a valid state file.
        assert_eq!(code, 1, "{what}: exit status, stderr: {err}");
        assert!(err.contains(needle), "{what}: `{needle}` not in: {err}");
        let rust = RawReader::open(&path).expect_err(what);
        let agrees = match &rust {
            Error::NotAStateFile { .. } => needle.contains("not a mapped-state"),
            Error::ForeignEndian { .. } => needle.contains("byte order"),
            Error::UnsupportedVersion { found, .. } => {
                needle.contains(&format!("format version {found}"))
            }
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
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("expected {}", pristine.len())),
        "{err}"
    );
    assert!(matches!(
        RawReader::open(&path),
        Err(Error::WrongLength { .. })
    ));
    // Shorter than a header: both report the shortest possible file.
    std::fs::write(&path, &pristine[..100]).unwrap();
    let (code, err) = refused(&path);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expected 385"), "{err}");
    assert!(matches!(
        RawReader::open(&path),
        Err(Error::WrongLength { expected: 385, .. })
    ));
}

/// FORMAT.md 9.3: the newest version `c` is read from slot `c mod N` and from no other. A bad
/// `bool` planted in one slot is reported by both readers exactly when that slot holds the
/// version they read.
#[test]
fn python_reader_reads_the_slot_of_the_newest_version() {
    let dir = TempDir::new("py-slot");
    let good = dir.join("good.state");
    let mut w = Writer::<Flags>::create(&good, &Flags { count: 0, on: true }).unwrap();
    for k in 1..=5 {
        w.set_count(k);
    }
    assert_eq!(w.version(), 5);
    drop(w);
    let pristine = std::fs::read(&good).unwrap();
    // `on` is payload byte 4; slot `s` starts at 256 + 64 s. Version 5 lives in slot 1.
    let on_in_slot = |s: u64| 256 + 64 * s + 4;

    let path = dir.join("bool.state");
    std::fs::write(&path, &pristine).unwrap();
    patch(&path, on_in_slot(1), &[2]);
    let out = run_python(&[path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("field `on` at payload byte 4 holds [02], expected bool (0 or 1)"),
        "{err}"
    );
    let rust = Reader::<Flags>::open(&path).unwrap().load().unwrap_err();
    assert!(
        matches!(&rust, Error::InvalidValue { source, .. } if source.field == "on" && source.offset == 4),
        "{rust}"
    );

    // The same byte in every other slot: the newest version is still read whole and valid.
    std::fs::write(&path, &pristine).unwrap();
    for s in [0, 2, 3] {
        patch(&path, on_in_slot(s), &[2]);
    }
    let doc = &read_json(&path, &[])[0];
    assert_eq!(doc["version"], json!(5));
    assert_eq!(doc["value"], json!({"count": 5, "on": true}));
    assert_eq!(
        Reader::<Flags>::open(&path).unwrap().load().unwrap(),
        Flags { count: 5, on: true }
    );
}

/// FORMAT.md 9.3: the history. With N slots the ring holds the newest version and the N - 1
/// before it; each is read from its own slot and holds its own value.
#[test]
fn python_reader_lists_the_history_the_ring_holds() {
    let dir = TempDir::new("py-history");
    for slots in [2u64, 4, 8] {
        let path = dir.join(&format!("history-{slots}.state"));
        let opts = mapped_state::CreateOptions::new().slots(slots);
        let mut w = Writer::<[u64; 3]>::create_with(&path, &[0; 3], &opts).unwrap();
        // Commit k holds [k, 2k, 3k]; a young file has fewer versions than slots.
        let lines = read_json(&path, &["--history"]);
        assert_eq!(lines.len(), 1, "a new file holds version 0 only");
        assert_eq!(lines[0]["value"], json!([0, 0, 0]));
        for k in 1..=10u64 {
            w.publish(&[k, 2 * k, 3 * k]);
        }
        let lines = read_json(&path, &["--history"]);
        let got: Vec<(u64, Value)> = lines
            .iter()
            .map(|d| (d["version"].as_u64().unwrap(), d["value"].clone()))
            .collect();
        let want: Vec<(u64, Value)> = (0..slots)
            .map(|back| 10 - back)
            .map(|k| (k, json!([k, 2 * k, 3 * k])))
            .collect();
        assert_eq!(got, want, "{slots} slots");
        assert!(lines.iter().all(|d| d["slots"] == json!(slots)));
        // The Rust reader lists the same versions.
        let r = Reader::<[u64; 3]>::open(&path).unwrap();
        let rust: Vec<(u64, Value)> = r
            .load_history()
            .map(|x| x.unwrap())
            .map(|(k, v)| (k, json!(v)))
            .collect();
        assert_eq!(rust, want, "{slots} slots, Rust");
    }
}

/// Concurrent snapshots. Python has no atomic loads and no fences (see `Reader.snapshot` in
/// `python/src/mapped_state/reader.py`), so its seq re-check is sound only where loads are not reordered
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
