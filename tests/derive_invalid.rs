//! Invalid bytes poked into the `bool`, `char` and enum fields of a state file (both payload
//! copies) give `Error::InvalidValue` naming the field, through `load()` and through the field's
//! accessor, and never a panic; the untouched fields still read fine.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mapped_state::schema::{align_up, Kind};
use mapped_state::{Error, MappedState, Reader, Writer};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u16)]
enum Mode {
    Idle = 0,
    Running = 1,
    Stopped = 9,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Checked {
    count: u32,
    flag: bool,
    letter: char,
    mode: Mode,
    tail: u64,
}

const VALUE: Checked = Checked {
    count: 17,
    flag: true,
    letter: 'x',
    mode: Mode::Running,
    tail: 99,
};

/// Slot 0 of the ring starts here; slot 1 one stride later (see docs/FORMAT.md).
const PAYLOAD_OFFSET: u64 = 256;

fn offset_of(name: &str) -> usize {
    match Checked::TYPE.kind {
        Kind::Struct(s) => s.fields.iter().find(|f| f.name == name).unwrap().offset,
        _ => unreachable!("a derived struct is described as a struct"),
    }
}

/// Writes `bytes` at the field's offset in slots 0 and 1 (version 0 is read from slot 0).
fn poke(path: &Path, field: &str, bytes: &[u8]) {
    let stride = align_up(Checked::TYPE.size, 64) as u64;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for copy in 0..2 {
        let at = PAYLOAD_OFFSET + copy * stride + offset_of(field) as u64;
        file.write_all_at(bytes, at).unwrap();
    }
}

fn fresh(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ms-derive-invalid-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("checked.state");
    let _ = std::fs::remove_file(&path);
    drop(Writer::<Checked>::create(&path, &VALUE).unwrap());
    path
}

/// Asserts `e` is `InvalidValue` for `field` holding `bytes`, and that its message names the
/// field and what a valid value looks like.
fn assert_invalid(e: Error, field: &str, bytes: &[u8], expected: &str) {
    let text = e.to_string();
    match e {
        Error::InvalidValue { source, .. } => {
            assert_eq!(source.field, field, "{text}");
            assert_eq!(source.offset, offset_of(field), "{text}");
            assert_eq!(source.bytes, bytes, "{text}");
            assert!(source.expected.contains(expected), "{text}");
        }
        other => panic!("expected InvalidValue, got {other:?}"),
    }
    assert!(text.contains(&format!("field `{field}`")), "{text}");
}

#[test]
fn bad_bool() {
    let path = fresh("bool");
    poke(&path, "flag", &[2]);
    let r = Reader::<Checked>::open(&path).unwrap();
    assert_invalid(r.load().unwrap_err(), "flag", &[2], "0 or 1");
    assert_invalid(r.flag().unwrap_err(), "flag", &[2], "0 or 1");
    // Other fields are unaffected.
    assert_eq!(r.count(), 17);
    assert_eq!(r.letter().unwrap(), 'x');
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn bad_char() {
    let path = fresh("char");
    let surrogate = 0xD800u32.to_ne_bytes();
    poke(&path, "letter", &surrogate);
    let r = Reader::<Checked>::open(&path).unwrap();
    assert_invalid(r.load().unwrap_err(), "letter", &surrogate, "Unicode");
    assert_invalid(r.letter().unwrap_err(), "letter", &surrogate, "Unicode");
    assert!(r.flag().unwrap());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn bad_enum() {
    let path = fresh("enum");
    let bad = 7u16.to_ne_bytes();
    poke(&path, "mode", &bad);
    let r = Reader::<Checked>::open(&path).unwrap();
    // The error names the enum and its allowed values.
    let allowed = "enum `Mode` (one of Idle = 0, Running = 1, Stopped = 9)";
    assert_invalid(r.load().unwrap_err(), "mode", &bad, allowed);
    assert_invalid(r.mode().unwrap_err(), "mode", &bad, allowed);
    assert_eq!(r.tail(), 99);
    // A writer refuses to take over a file whose value is invalid.
    assert!(matches!(
        Writer::<Checked>::open(&path),
        Err(Error::InvalidValue { .. })
    ));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
