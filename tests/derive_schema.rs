//! Schema checks of derived types: a file written as one struct and opened as a changed one fails
//! with a field-level diff; the schema hash and layout of a fixed struct are pinned literally, so
//! any change to hashing or layout is a visible decision.

use mapped_state::schema::Kind;
use mapped_state::{Error, FixedStr, MappedState, Reader, Writer};

mod v1 {
    use mapped_state::MappedState;

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[mapped_state(name = "Config")]
    pub struct Config {
        pub rpm: u32,
        pub temperature_c: f32,
        pub enabled: bool,
    }
}

mod v2 {
    use mapped_state::MappedState;

    /// `temperature_c` became `f64`; `mode_flags` was added.
    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[mapped_state(name = "Config")]
    pub struct Config {
        pub rpm: u32,
        pub temperature_c: f64,
        pub enabled: bool,
        pub mode_flags: u16,
    }
}

/// Same fields as v1, another schema name.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Settings {
    rpm: u32,
    temperature_c: f32,
    enabled: bool,
}

fn temp(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ms-derive-schema-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.state");
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn changed_struct_is_refused_with_a_field_diff() {
    let path = temp("diff");
    let _w = Writer::<v1::Config>::create(
        &path,
        &v1::Config {
            rpm: 1,
            temperature_c: 2.0,
            enabled: true,
        },
    )
    .unwrap();
    let err = Reader::<v2::Config>::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{text}");
    // Told from this program's side: the changed field, with its type and offset here and there.
    assert!(
        text.contains("this program's `Config` has `temperature_c: f64 @8`, the file has `temperature_c: f32 @4`"),
        "diff must show the type change: {text}"
    );
    // The moved field (its offset changed because the field before it grew).
    assert!(
        text.contains("has `enabled: bool @16`, the file has `enabled: bool @8`"),
        "{text}"
    );
    // The field this program added, which the file lacks (and which declares no default).
    assert!(
        text.contains("has `mode_flags: u16 @18`, the file has no such field"),
        "{text}"
    );
    // The untouched field is not listed.
    assert!(!text.contains("rpm:"), "{text}");
    // The writer side refuses the same way.
    drop(_w);
    let err = Writer::<v2::Config>::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("has `temperature_c: f64 @8`, the file has `temperature_c: f32 @4`"),
        "{err}"
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn renamed_struct_is_refused_naming_both_names() {
    let path = temp("rename");
    drop(
        Writer::<v1::Config>::create(
            &path,
            &v1::Config {
                rpm: 1,
                temperature_c: 2.0,
                enabled: true,
            },
        )
        .unwrap(),
    );
    let text = Reader::<Settings>::open(&path).unwrap_err().to_string();
    assert!(
        text.contains("this program's type is named `Settings`, the file holds a `Config`"),
        "{text}"
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Level {
    Low = 1,
    High = 2,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Inner {
    a: u8,
    b: u32,
}

/// A fixed struct whose hash and layout are pinned: in the attribute (checked by the compiler)
/// and literally below (checked by this test).
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[mapped_state(name = "Pinned", schema_hash = 0xbd41_f1a8_e89c_27e2, size = 80)]
struct PinnedLayout {
    flag: bool,
    wide: u128,
    small: u16,
    level: Level,
    text: FixedStr<5>,
    inner: Inner,
    grid: [[u8; 3]; 2],
    last: f64,
}

#[test]
fn schema_hash_and_layout_are_pinned() {
    // Changing this literal is a decision: files written by older builds stop opening.
    assert_eq!(PinnedLayout::SCHEMA_HASH, 0xbd41_f1a8_e89c_27e2);
    assert_eq!(PinnedLayout::TYPE.size, 80);
    assert_eq!(PinnedLayout::TYPE.align, 16);
    let fields = match PinnedLayout::TYPE.kind {
        Kind::Struct(s) => {
            assert_eq!(s.name, "Pinned");
            s.fields
        }
        _ => unreachable!("a derived struct is described as a struct"),
    };
    let layout: Vec<(&str, usize, usize)> = fields
        .iter()
        .map(|f| (f.name, f.offset, f.ty.size))
        .collect();
    assert_eq!(
        layout,
        [
            ("flag", 0, 1),
            ("wide", 16, 16),
            ("small", 32, 2),
            ("level", 34, 1),
            ("text", 36, 12),
            ("inner", 48, 8),
            ("grid", 56, 6),
            ("last", 64, 8),
        ]
    );
    assert_eq!(Inner::TYPE.size, 8);
    assert_eq!(Inner::TYPE.align, 4);
    assert_eq!(Level::TYPE.size, 1);
}
