//! serde (feature `serde`): a user type that derives both `MappedState` and serde is written to a
//! state file, read back with `Reader::load`, turned into JSON with `serde_json` and back; the
//! same file read through its manifest (`dynamic`, no Rust type) gives the same JSON.

use mapped_state::{dynamic, FixedStr, MappedState, RawReader, Reader, Writer};
use serde::{Deserialize, Serialize};

#[derive(MappedState, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Mode {
    Idle = 0,
    Running = 1,
}

#[derive(MappedState, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Limits {
    min_rpm: u32,
    max_rpm: u32,
}

#[derive(MappedState, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Engine {
    rpm: u32,
    temperature_c: f32,
    uptime_s: u64,
    offset: i16,
    mode: Mode,
    healthy: bool,
    grade: char,
    samples: [f64; 3],
    limits: Limits,
    label: FixedStr<8>,
}

fn sample() -> Engine {
    Engine {
        rpm: 3100,
        temperature_c: 81.5,
        uptime_s: (1 << 53) + 1,
        offset: -7,
        mode: Mode::Running,
        healthy: true,
        grade: 'B',
        samples: [0.1, -2.5, 1e300],
        limits: Limits {
            min_rpm: 800,
            max_rpm: 7200,
        },
        label: FixedStr::new("engine-1").unwrap(),
    }
}

#[test]
fn a_loaded_value_round_trips_through_serde_json() {
    let dir = std::env::temp_dir().join(format!("ms-serde-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("engine.state");
    let _w = Writer::<Engine>::create(&path, &sample()).unwrap();

    let r = Reader::<Engine>::open(&path).unwrap();
    let json = serde_json::to_string(&r.load().unwrap()).unwrap();
    let back: Engine = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sample());
    assert!(json.contains(r#""label":"engine-1""#), "{json}");
    assert!(json.contains(r#""mode":"Running""#), "{json}");
    assert!(json.contains(r#""uptime_s":9007199254740993"#), "{json}");

    // The manifest's view of the same file serializes to the same JSON value, tree or streamed.
    let raw = RawReader::open(&path).unwrap();
    let (bytes, _) = raw.snapshot().unwrap();
    let tree = dynamic::decode(raw.schema(), &bytes).unwrap();
    let typed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_value(&tree).unwrap(), typed);
    let streamed = serde_json::to_value(dynamic::ValueRef::new(raw.schema(), &bytes)).unwrap();
    assert_eq!(streamed, typed);
    drop((r, raw));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deserializing_a_string_longer_than_its_fixed_str_fails_clearly() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["label"] = "nine-byte".into();
    let err = serde_json::from_value::<Engine>(v).unwrap_err().to_string();
    assert!(
        err.contains("string of 9 bytes does not fit in FixedStr<8>"),
        "{err}"
    );
}
