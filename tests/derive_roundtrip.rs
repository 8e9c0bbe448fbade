//! Round trip of a derived struct that uses every supported field kind: written in this process,
//! read in a child process (this test binary re-executed), through `load()` and through every
//! generated accessor; each generated setter changes exactly its field.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mapped_state::{FixedStr, MappedState, Reader, Writer};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Mode {
    Idle = 0,
    Running = 1,
    Stopped = 7,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(i16)]
enum Direction {
    Back = -1,
    Stay,
    Forward,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Limits {
    min: i16,
    max: f64,
    enabled: bool,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Everything {
    a_u8: u8,
    a_u16: u16,
    a_u32: u32,
    a_u64: u64,
    a_u128: u128,
    a_i8: i8,
    a_i16: i16,
    a_i32: i32,
    a_i64: i64,
    a_i128: i128,
    a_f32: f32,
    a_f64: f64,
    flag: bool,
    letter: char,
    mode: Mode,
    direction: Direction,
    samples: [f32; 4],
    grid: [[u16; 3]; 2],
    modes: [Mode; 2],
    label: FixedStr<12>,
    limits: Limits,
}

fn initial() -> Everything {
    Everything {
        a_u8: 0xab,
        a_u16: 0xbeef,
        a_u32: 0xdead_beef,
        a_u64: u64::MAX - 5,
        a_u128: u128::MAX / 3,
        a_i8: -7,
        a_i16: -30_000,
        a_i32: i32::MIN + 1,
        a_i64: -1_234_567_890_123,
        a_i128: i128::MIN / 7,
        a_f32: 1.5,
        a_f64: -2.25e100,
        flag: true,
        letter: 'ß',
        mode: Mode::Running,
        direction: Direction::Back,
        samples: [0.5, -1.0, 3.25, f32::MAX],
        grid: [[1, 2, 3], [400, 500, 65535]],
        modes: [Mode::Stopped, Mode::Idle],
        label: FixedStr::new("pump-Ω").unwrap(),
        limits: Limits {
            min: -5,
            max: 99.5,
            enabled: false,
        },
    }
}

/// The value after `setters_change_exactly_their_field` has set every field once.
fn changed() -> Everything {
    Everything {
        a_u8: 1,
        a_u16: 2,
        a_u32: 3,
        a_u64: 4,
        a_u128: 5,
        a_i8: 6,
        a_i16: 7,
        a_i32: 8,
        a_i64: 9,
        a_i128: -10,
        a_f32: 11.0,
        a_f64: 12.0,
        flag: false,
        letter: '🦀',
        mode: Mode::Stopped,
        direction: Direction::Forward,
        samples: [1.0, 2.0, 3.0, 4.0],
        grid: [[9, 8, 7], [6, 5, 4]],
        modes: [Mode::Running, Mode::Running],
        label: FixedStr::new("other").unwrap(),
        limits: Limits {
            min: 1,
            max: -1.0,
            enabled: true,
        },
    }
}

/// Every field read through its own accessor equals `want`'s.
fn check_accessors(r: &Reader<Everything>, want: &Everything) {
    // Plain fields (integers, floats, arrays of them) return the value itself.
    assert_eq!(r.a_u8(), want.a_u8);
    assert_eq!(r.a_u16(), want.a_u16);
    assert_eq!(r.a_u32(), want.a_u32);
    assert_eq!(r.a_u64(), want.a_u64);
    assert_eq!(r.a_u128(), want.a_u128);
    assert_eq!(r.a_i8(), want.a_i8);
    assert_eq!(r.a_i16(), want.a_i16);
    assert_eq!(r.a_i32(), want.a_i32);
    assert_eq!(r.a_i64(), want.a_i64);
    assert_eq!(r.a_i128(), want.a_i128);
    assert_eq!(r.a_f32(), want.a_f32);
    assert_eq!(r.a_f64(), want.a_f64);
    assert_eq!(r.samples(), want.samples);
    assert_eq!(r.grid(), want.grid);
    // Fields with invalid bit patterns return a `Result`.
    assert_eq!(r.flag().unwrap(), want.flag);
    assert_eq!(r.letter().unwrap(), want.letter);
    assert_eq!(r.mode().unwrap(), want.mode);
    assert_eq!(r.direction().unwrap(), want.direction);
    assert_eq!(r.modes().unwrap(), want.modes);
    assert_eq!(r.label().unwrap(), want.label);
    assert_eq!(r.limits().unwrap(), want.limits);
}

const CHILD_PATH: &str = "MS_DERIVE_ROUNDTRIP_PATH";
const CHILD_EXPECT: &str = "MS_DERIVE_ROUNDTRIP_EXPECT";
const CHILD_TEST: &str = "child_reads_every_field";

/// Runs only when re-executed by `roundtrip_across_processes`: opens the file another process
/// wrote and checks every field.
#[test]
fn child_reads_every_field() {
    let Some(path) = std::env::var_os(CHILD_PATH) else {
        return;
    };
    let want = match std::env::var(CHILD_EXPECT).as_deref() {
        Ok("initial") => initial(),
        Ok("changed") => changed(),
        other => panic!("unexpected {CHILD_EXPECT}: {other:?}"),
    };
    let r = Reader::<Everything>::open(&path).unwrap();
    assert_eq!(r.load().unwrap(), want);
    check_accessors(&r, &want);
    println!("child verified {} fields", 21);
}

/// Re-executes this test binary to run `child_reads_every_field` against `path`, bounded by a
/// timeout.
fn read_in_child(path: &Path, expect: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_PATH, path)
        .env(CHILD_EXPECT, expect)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child reader did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "child reader failed ({status}):\n{out}");
    // The child really ran the checks (a filtered-out test would also exit 0).
    assert!(
        out.contains("child verified 21 fields"),
        "child output:\n{out}"
    );
}

fn temp_path(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ms-derive-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("everything.state");
    let _ = std::fs::remove_file(&path);
    path
}

/// Sets one field through its generated setter and checks that the version advanced by one,
/// that field now holds the new value and every other field is unchanged.
macro_rules! set_and_check {
    ($w:ident, $r:ident, $expected:ident, $setter:ident, $field:ident, $value:expr) => {{
        let before = $r.version();
        let v = $w.$setter($value);
        assert_eq!(
            v,
            before + 1,
            "{} must commit exactly once",
            stringify!($setter)
        );
        $expected.$field = $value;
        assert_eq!(
            $r.load().unwrap(),
            $expected,
            "after {}",
            stringify!($setter)
        );
        assert_eq!($r.version(), before + 1);
    }};
}

#[test]
fn roundtrip_across_processes() {
    let path = temp_path("roundtrip");
    let mut w = Writer::<Everything>::create(&path, &initial()).unwrap();
    read_in_child(&path, "initial");

    let r = Reader::<Everything>::open(&path).unwrap();
    check_accessors(&r, &initial());
    let target = changed();
    let mut expected = initial();
    set_and_check!(w, r, expected, set_a_u8, a_u8, target.a_u8);
    set_and_check!(w, r, expected, set_a_u16, a_u16, target.a_u16);
    set_and_check!(w, r, expected, set_a_u32, a_u32, target.a_u32);
    set_and_check!(w, r, expected, set_a_u64, a_u64, target.a_u64);
    set_and_check!(w, r, expected, set_a_u128, a_u128, target.a_u128);
    set_and_check!(w, r, expected, set_a_i8, a_i8, target.a_i8);
    set_and_check!(w, r, expected, set_a_i16, a_i16, target.a_i16);
    set_and_check!(w, r, expected, set_a_i32, a_i32, target.a_i32);
    set_and_check!(w, r, expected, set_a_i64, a_i64, target.a_i64);
    set_and_check!(w, r, expected, set_a_i128, a_i128, target.a_i128);
    set_and_check!(w, r, expected, set_a_f32, a_f32, target.a_f32);
    set_and_check!(w, r, expected, set_a_f64, a_f64, target.a_f64);
    set_and_check!(w, r, expected, set_flag, flag, target.flag);
    set_and_check!(w, r, expected, set_letter, letter, target.letter);
    set_and_check!(w, r, expected, set_mode, mode, target.mode);
    set_and_check!(w, r, expected, set_direction, direction, target.direction);
    set_and_check!(w, r, expected, set_samples, samples, target.samples);
    set_and_check!(w, r, expected, set_grid, grid, target.grid);
    set_and_check!(w, r, expected, set_modes, modes, target.modes);
    set_and_check!(w, r, expected, set_label, label, target.label);
    set_and_check!(w, r, expected, set_limits, limits, target.limits);
    assert_eq!(expected, target);
    check_accessors(&r, &target);
    assert_eq!(w.get(), target);
    read_in_child(&path, "changed");

    drop(w);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn padding_is_zero_and_fields_sit_at_their_offsets() {
    let mut bytes = vec![0xffu8; Everything::TYPE.size];
    bytes.fill(0);
    initial().encode(&mut bytes);
    let fields = match Everything::TYPE.kind {
        mapped_state::schema::Kind::Struct(s) => s.fields,
        _ => unreachable!("a derived struct is described as a struct"),
    };
    // Bytes not covered by any field are padding and must be zero.
    let mut covered = vec![false; bytes.len()];
    for f in fields {
        covered[f.offset..f.offset + f.ty.size].fill(true);
    }
    for (i, (b, c)) in bytes.iter().zip(&covered).enumerate() {
        if !c {
            assert_eq!(*b, 0, "padding byte {i} is not zero");
        }
    }
    assert!(
        covered.iter().any(|c| !c),
        "this layout has padding to check"
    );
    // Spot-check a field's bytes at its offset.
    let letter = fields.iter().find(|f| f.name == "letter").unwrap();
    assert_eq!(
        &bytes[letter.offset..letter.offset + 4],
        &u32::from('ß').to_ne_bytes()
    );
    assert_eq!(Everything::decode(&bytes).unwrap(), initial());
}
