//! Schema evolution (README "Schema evolution", FORMAT.md 7): old readers keep reading files of a
//! newer writer that appended fields, newer readers read older files with defaults, anything else
//! is refused from the caller's side with the fix, and a writer migrates a file explicitly.
//!
//! The cross-process tests run the old and the new program as separate processes: the child
//! roles below re-run this test binary with one of the struct versions.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{spawn_child, TempDir, MILLIS_ENV, PATH_ENV};
use mapped_state::{CreateOptions, Error, FixedStr, OpenOptions, Reader, Writer};

/// Version 1 of the configuration.
mod v1 {
    use mapped_state::MappedState;

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[repr(u8)]
    pub enum Mode {
        Idle = 0,
        Running = 1,
    }

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[mapped_state(name = "Config")]
    pub struct Config {
        pub rpm: u32,
        pub temperature_c: f32,
        pub enabled: bool,
        pub mode: Mode,
    }
}

/// Version 2: appends fields (each with a default) and an enum variant.
mod v2 {
    use mapped_state::{FixedStr, MappedState};

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[repr(u8)]
    pub enum Mode {
        Idle = 0,
        Running = 1,
        Fault = 2,
    }

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[mapped_state(name = "Config")]
    pub struct Config {
        pub rpm: u32,
        pub temperature_c: f32,
        pub enabled: bool,
        pub mode: Mode,
        #[mapped_state(default = 30_000)]
        pub timeout_ms: u32,
        #[mapped_state(default)]
        pub retries: [u16; 3],
        #[mapped_state(default = FixedStr::new("unnamed").expect("fits"))]
        pub label: FixedStr<12>,
    }
}

/// Version 3: retypes a field (`temperature_c` becomes `f64`), which no rule allows.
mod v3 {
    use mapped_state::MappedState;

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[mapped_state(name = "Config")]
    pub struct Config {
        pub rpm: u32,
        pub temperature_c: f64,
        pub enabled: bool,
    }
}

/// Version 2 without defaults: cannot read a version 1 file.
mod v2_strict {
    use mapped_state::MappedState;

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[mapped_state(name = "Config", default)]
    pub struct WithStructDefault {
        pub rpm: u32,
        pub temperature_c: f32,
        pub enabled: bool,
        pub mode: super::v1::Mode,
        pub timeout_ms: u32,
    }

    impl Default for WithStructDefault {
        fn default() -> Self {
            WithStructDefault {
                rpm: 0,
                temperature_c: 0.0,
                enabled: false,
                mode: super::v1::Mode::Idle,
                timeout_ms: 777,
            }
        }
    }

    #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
    #[mapped_state(name = "Config")]
    pub struct NoDefault {
        pub rpm: u32,
        pub temperature_c: f32,
        pub enabled: bool,
        pub mode: super::v1::Mode,
        pub timeout_ms: u32,
    }
}

fn v1_value(k: u32) -> v1::Config {
    v1::Config {
        rpm: k,
        temperature_c: k as f32,
        enabled: k.is_multiple_of(2),
        mode: v1::Mode::Running,
    }
}

fn v2_value(k: u32) -> v2::Config {
    v2::Config {
        rpm: k,
        temperature_c: k as f32,
        enabled: k.is_multiple_of(2),
        mode: v2::Mode::Running,
        timeout_ms: k.wrapping_mul(3),
        retries: [k as u16; 3],
        label: FixedStr::new("v2").unwrap(),
    }
}

/// Whether a value is one the writers publish (every field derived from the same `k`): a torn
/// read would mix two.
fn consistent_v1(c: &v1::Config) -> bool {
    c.temperature_c == c.rpm as f32 && c.enabled == c.rpm.is_multiple_of(2)
}

const CHILD: &str = "child_process";
/// Hard bound on each cross-process test.
const HARD_LIMIT: Duration = Duration::from_secs(60);
/// The value the writers end on; children read until they see it.
const FINAL: u32 = 20_000;

/// Entry point of the child processes; returns at once in a normal test run.
#[test]
fn child_process() {
    let Some(role) = common::child_role() else {
        return;
    };
    let path = std::path::PathBuf::from(common::child_env(PATH_ENV));
    let limit = Duration::from_millis(common::child_env(MILLIS_ENV).parse().unwrap());
    let deadline = Instant::now() + limit;
    match role.as_str() {
        // The old program: reads a file of the newer writer, which appended fields.
        "v1-reader" => {
            let r = Reader::<v1::Config>::open(&path).expect("v1 reader opens a v2 file");
            // The exact-match option refuses the same file, naming the field v1 lacks.
            let e = Reader::<v1::Config>::open_with(&path, &OpenOptions::new().exact_schema(true))
                .unwrap_err()
                .to_string();
            assert!(e.contains("timeout_ms: u32 @12"), "{e}");
            let (mut reads, mut torn, mut back, mut last) = (0u64, 0u64, 0u64, 0u32);
            let mut versions = std::collections::HashSet::new();
            loop {
                let (c, version) = r.load_versioned().expect("load");
                let rpm = r.rpm();
                let temp = r.temperature_c();
                reads += 1;
                torn += u64::from(!consistent_v1(&c));
                back += u64::from(c.rpm < last || rpm < c.rpm);
                // Two reads of single fields may see two versions, never an older one.
                back += u64::from(temp < c.temperature_c);
                last = c.rpm;
                versions.insert(version);
                if c.rpm == FINAL || Instant::now() > deadline {
                    break;
                }
            }
            common::report(
                &role,
                &[
                    ("reads", reads.to_string()),
                    ("torn", torn.to_string()),
                    ("back", back.to_string()),
                    ("last", last.to_string()),
                    ("versions", versions.len().to_string()),
                ],
            );
        }
        // The new program: reads a file of the old writer, with defaults for what it lacks.
        "v2-reader" => {
            let r = Reader::<v2::Config>::open(&path).expect("v2 reader opens a v1 file");
            let (mut reads, mut torn, mut wrong_default) = (0u64, 0u64, 0u64);
            let mut last;
            loop {
                let c = r.load().expect("load");
                reads += 1;
                torn += u64::from(
                    c.temperature_c != c.rpm as f32 || c.enabled != c.rpm.is_multiple_of(2),
                );
                let defaults_ok = c.timeout_ms == 30_000
                    && c.retries == [0; 3]
                    && c.label.as_str() == "unnamed"
                    && r.timeout_ms() == 30_000
                    && r.retries() == [0; 3]
                    && r.retries_at(2) == Some(0)
                    && r.retries_at(3).is_none()
                    && r.label().unwrap().as_str() == "unnamed";
                wrong_default += u64::from(!defaults_ok);
                // Present fields still come straight from the file.
                let rpm = r.rpm();
                torn += u64::from(rpm < c.rpm);
                last = c.rpm;
                if c.rpm == FINAL || Instant::now() > deadline {
                    break;
                }
            }
            // History reads go through the defaults too.
            let newest = r.version();
            let h = r
                .load_version(newest)
                .expect("newest version is in the ring");
            assert_eq!(h.timeout_ms, 30_000);
            common::report(
                &role,
                &[
                    ("reads", reads.to_string()),
                    ("torn", torn.to_string()),
                    ("wrong_default", wrong_default.to_string()),
                    ("last", last.to_string()),
                ],
            );
        }
        // A program that retyped a field: refused, from its own side, with the fix.
        "v3-open" => {
            let e = Reader::<v3::Config>::open(&path).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, Error::SchemaMismatch { .. }), "{text}");
            assert!(
                text.contains("this program's `Config` has `temperature_c: f64 @8`, the file has `temperature_c: f32 @4`"),
                "{text}"
            );
            assert!(
                text.contains("Fix: a field may never change type"),
                "{text}"
            );
            common::report(&role, &[("refused", "1".to_owned())]);
        }
        other => panic!("unknown role {other}"),
    }
}

fn child_env(path: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        (PATH_ENV, path.display().to_string()),
        (MILLIS_ENV, "30000".to_owned()),
    ]
}

/// Publishes `value(k)` for k = 1..=FINAL, pausing now and then so readers overlap commits.
fn publish_all<T: mapped_state::Fields>(w: &mut Writer<T>, value: impl Fn(u32) -> T) {
    for k in 1..=FINAL {
        w.publish(&value(k));
        if k % 500 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn an_old_reader_process_reads_a_file_whose_writer_appended_fields() {
    let dir = TempDir::new("evolve-old-reader");
    let path = dir.join("config.state");
    let hard = Instant::now() + HARD_LIMIT;
    let mut w = Writer::<v2::Config>::create(&path, &v2_value(0)).unwrap();
    let reader = spawn_child(CHILD, "v1-reader", &child_env(&path));
    // Let the child open before the commits start, so that it overlaps them.
    std::thread::sleep(Duration::from_millis(100));
    publish_all(&mut w, v2_value);
    let r = reader.finish(hard);
    println!("v1 reader: {r:?}");
    assert_eq!(common::field(&r, "torn"), 0, "torn reads");
    assert_eq!(common::field(&r, "back"), 0, "a read went back");
    assert_eq!(common::field(&r, "last"), u64::from(FINAL));
    assert!(common::field(&r, "reads") > 0);
}

#[test]
fn a_new_reader_process_reads_an_old_file_with_defaults() {
    let dir = TempDir::new("evolve-new-reader");
    let path = dir.join("config.state");
    let hard = Instant::now() + HARD_LIMIT;
    let mut w = Writer::<v1::Config>::create(&path, &v1_value(0)).unwrap();
    let reader = spawn_child(CHILD, "v2-reader", &child_env(&path));
    std::thread::sleep(Duration::from_millis(100));
    publish_all(&mut w, v1_value);
    let r = reader.finish(hard);
    println!("v2 reader: {r:?}");
    assert_eq!(common::field(&r, "torn"), 0, "torn reads");
    assert_eq!(common::field(&r, "wrong_default"), 0, "a default was wrong");
    assert_eq!(common::field(&r, "last"), u64::from(FINAL));
}

#[test]
fn a_process_with_a_retyped_field_is_refused_with_the_callers_side_and_the_fix() {
    let dir = TempDir::new("evolve-retyped");
    let path = dir.join("config.state");
    let _w = Writer::<v2::Config>::create(&path, &v2_value(1)).unwrap();
    let r = spawn_child(CHILD, "v3-open", &child_env(&path)).finish(Instant::now() + HARD_LIMIT);
    assert_eq!(common::field(&r, "refused"), 1);
}

#[test]
fn the_hash_of_a_type_without_its_appended_fields_is_the_old_types() {
    use mapped_state::MappedState;
    // What lets a pinned `schema_hash` name the appended fields (tests/ui/schema_hash_appended).
    let t = <v2_strict::NoDefault as MappedState>::TYPE;
    assert_eq!(
        mapped_state::schema::prefix_hash(t, 4),
        <v1::Config as MappedState>::SCHEMA_HASH
    );
    assert_ne!(
        mapped_state::schema::prefix_hash(t, 3),
        <v1::Config as MappedState>::SCHEMA_HASH
    );
    assert_eq!(
        mapped_state::schema::prefix_hash(t, 5),
        <v2_strict::NoDefault as MappedState>::SCHEMA_HASH
    );
}

#[test]
fn a_field_lacking_in_the_file_needs_a_default() {
    let dir = TempDir::new("evolve-no-default");
    let path = dir.join("config.state");
    let _w = Writer::<v1::Config>::create(&path, &v1_value(4)).unwrap();
    let e = Reader::<v2_strict::NoDefault>::open(&path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("this program's `Config` has `timeout_ms: u32 @12`, the file has no such field, and it declares no default"),
        "{e}"
    );
    assert!(e.contains("#[mapped_state(default"), "{e}");
    assert!(e.contains("Writer::open_migrating"), "{e}");
    // The struct-level `default` takes absent fields from the struct's `Default`.
    let r = Reader::<v2_strict::WithStructDefault>::open(&path).unwrap();
    assert_eq!(r.timeout_ms(), 777);
    let c = r.load().unwrap();
    assert_eq!((c.rpm, c.timeout_ms), (4, 777));
}

#[test]
fn a_removed_field_refuses_the_readers_that_still_have_it() {
    // "Removing" `timeout_ms` means a file of v1 read by a v2 program without defaults: that is
    // `a_field_lacking_in_the_file_needs_a_default`. Here the other direction of the rule: a
    // reader that knows fewer fields than the file is fine only for appended fields; the file's
    // fields it does not know are listed with the exact-match option.
    let dir = TempDir::new("evolve-removed");
    let path = dir.join("config.state");
    let _w = Writer::<v2::Config>::create(&path, &v2_value(2)).unwrap();
    let e = Reader::<v1::Config>::open_with(&path, &OpenOptions::new().exact_schema(true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "the file has `timeout_ms: u32 @12`, which this program's `Config` does not read"
        ),
        "{e}"
    );
    assert!(e.contains("drop `OpenOptions::exact_schema`"), "{e}");
}

#[test]
fn an_enum_may_gain_a_variant_and_an_old_reader_fails_only_on_that_value() {
    let dir = TempDir::new("evolve-enum");
    let path = dir.join("config.state");
    let mut w = Writer::<v2::Config>::create(&path, &v2_value(1)).unwrap();
    let r = Reader::<v1::Config>::open(&path).unwrap();
    assert_eq!(r.mode().unwrap(), v1::Mode::Running);
    w.set_mode(v2::Mode::Fault);
    let e = r.mode().unwrap_err().to_string();
    assert!(
        e.contains("field `mode` at payload byte 9 holds [02]"),
        "{e}"
    );
    assert!(matches!(r.load(), Err(Error::InvalidValue { .. })));
    w.set_mode(v2::Mode::Idle);
    assert_eq!(r.load().unwrap().mode, v1::Mode::Idle);
}

#[test]
fn a_nested_struct_keeps_its_whole_layout() {
    mod a {
        use mapped_state::MappedState;
        #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
        pub struct Limits {
            pub min: u32,
        }
        #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
        #[mapped_state(name = "Outer")]
        pub struct Outer {
            pub limits: Limits,
            pub x: u32,
        }
    }
    mod b {
        use mapped_state::MappedState;
        #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
        pub struct Limits {
            pub min: u32,
            pub max: u32,
        }
        #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
        #[mapped_state(name = "Outer")]
        pub struct Outer {
            pub limits: Limits,
            pub x: u32,
        }
    }
    let dir = TempDir::new("evolve-nested");
    let path = dir.join("outer.state");
    let _w = Writer::<b::Outer>::create(
        &path,
        &b::Outer {
            limits: b::Limits { min: 1, max: 2 },
            x: 3,
        },
    )
    .unwrap();
    let e = Reader::<a::Outer>::open(&path).unwrap_err().to_string();
    assert!(
        e.contains("this program's `Outer` has `limits: Limits @0`, the file has `limits: Limits @0` (size 4 align 4 here, size 8 align 4 in the file)"),
        "{e}"
    );
    assert!(e.contains("`x: u32 @4`, the file has `x: u32 @8`"), "{e}");
}

#[test]
fn a_writer_of_a_newer_type_is_refused_with_the_fix() {
    let dir = TempDir::new("evolve-writer");
    let path = dir.join("config.state");
    drop(Writer::<v1::Config>::create(&path, &v1_value(5)).unwrap());
    for e in [
        Writer::<v2::Config>::open(&path).unwrap_err(),
        Writer::<v2::Config>::open_or_create(&path, &v2_value(0)).unwrap_err(),
    ] {
        let text = e.to_string();
        assert!(
            text.contains(
                "this program's `Config` has `timeout_ms: u32 @12`, the file has no such field"
            ),
            "{text}"
        );
        assert!(text.contains("Writer::open_migrating"), "{text}");
        assert!(text.contains("CreateOptions::replace(true)"), "{text}");
    }
    // An older writer on a newer file would leave the newer fields of every slot stale.
    let path2 = dir.join("newer.state");
    drop(Writer::<v2::Config>::create(&path2, &v2_value(5)).unwrap());
    let text = Writer::<v1::Config>::open(&path2).unwrap_err().to_string();
    assert!(
        text.contains("a writer must match the file's schema exactly"),
        "{text}"
    );
    assert!(
        text.contains("the file has `timeout_ms: u32 @12`"),
        "{text}"
    );
}

#[test]
fn a_migration_carries_the_shared_fields_and_refuses_what_it_cannot_convert() {
    let dir = TempDir::new("evolve-migrate-unit");
    let path = dir.join("config.state");
    drop(Writer::<v1::Config>::create(&path, &v1_value(41)).unwrap());
    let old = Reader::<v1::Config>::open(&path).unwrap();
    // A retyped field cannot be carried: refused, and the file is untouched.
    let e = Writer::<v3::Config>::open_migrating(
        &path,
        &v3::Config {
            rpm: 0,
            temperature_c: 0.0,
            enabled: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("a migration cannot convert it"), "{e}");
    // A type that shares nothing with the file would carry nothing over: refused too.
    let e = Writer::<[u64; 2]>::open_migrating(&path, &[0, 0]).unwrap_err();
    assert!(
        e.to_string()
            .contains("shares no field with the file's `Config`"),
        "{e}"
    );
    assert!(
        matches!(
            e,
            Error::SchemaMismatch {
                fix: mapped_state::SchemaFix::Replace,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!old.superseded());
    let fill = v2::Config {
        timeout_ms: 1234,
        ..v2_value(0)
    };
    let mut w = Writer::<v2::Config>::open_migrating(&path, &fill).unwrap();
    assert!(old.superseded(), "the old file is flagged superseded");
    let got = w.get();
    assert_eq!(
        (got.rpm, got.temperature_c, got.enabled, got.mode),
        (41, 41.0, false, v2::Mode::Running),
        "shared fields carried over"
    );
    assert_eq!(
        (got.timeout_ms, got.label.as_str()),
        (1234, "v2"),
        "others from `fill`"
    );
    assert_eq!(w.version(), 0);
    w.set_rpm(42);
    let r = Reader::<v2::Config>::open_with(&path, &OpenOptions::new().exact_schema(true)).unwrap();
    assert_eq!(r.rpm(), 42);
    assert_eq!(r.timeout_ms(), 1234);
    // Migrating a file that already holds the type is `open`.
    drop((w, r));
    let w = Writer::<v2::Config>::open_migrating(&path, &fill).unwrap();
    assert_eq!(w.get().rpm, 42);
    // A live writer keeps a migration out.
    let e = Writer::<v1::Config>::open_migrating_with(
        &path,
        &v1_value(0),
        &OpenOptions::new(),
        &CreateOptions::new(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::WriterActive { .. }), "{e}");
}

/// Readers following the path (reopening when their file is superseded) move from the old file
/// to the migrated one with no torn value and no value lost or going back: the old file's last
/// value is the new file's first.
#[test]
fn readers_following_the_path_move_to_the_migrated_file() {
    const N1: u32 = 5_000;
    const N2: u32 = 10_000;
    let dir = TempDir::new("evolve-migrate");
    let path = dir.join("config.state");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut w1 = Writer::<v1::Config>::create(&path, &v1_value(0)).unwrap();
    let seen_n1 = AtomicU64::new(0);
    std::thread::scope(|s| {
        let follow = |new_type: bool| {
            let (path, seen_n1) = (&path, &seen_n1);
            s.spawn(move || -> (u64, u64, u32, u32) {
                // Reads `rpm`, `temperature_c` and `enabled` as v1 or (with defaults) as v2.
                let open = |p: &std::path::Path| -> Box<dyn Fn() -> (v1::Config, bool)> {
                    if new_type {
                        let r = Reader::<v2::Config>::open(p).unwrap();
                        Box::new(move || {
                            let c = r.load().unwrap();
                            let v = v1::Config {
                                rpm: c.rpm,
                                temperature_c: c.temperature_c,
                                enabled: c.enabled,
                                mode: v1::Mode::Running,
                            };
                            (v, r.superseded())
                        })
                    } else {
                        let r = Reader::<v1::Config>::open(p).unwrap();
                        Box::new(move || (r.load().unwrap(), r.superseded()))
                    }
                };
                let mut read = open(path);
                let (mut torn, mut back, mut reopened, mut last) = (0u64, 0u64, 0u32, 0u32);
                let mut counted = false;
                loop {
                    let (c, superseded) = read();
                    torn += u64::from(!consistent_v1(&c));
                    back += u64::from(c.rpm < last);
                    last = c.rpm;
                    if c.rpm == N1 && !counted {
                        counted = true;
                        seen_n1.fetch_add(1, Ordering::SeqCst);
                    }
                    if superseded {
                        read = open(path);
                        reopened += 1;
                    }
                    if c.rpm == N2 || Instant::now() > deadline {
                        return (torn, back, reopened, last);
                    }
                }
            })
        };
        let readers = [follow(false), follow(false), follow(true)];
        for k in 1..=N1 {
            w1.publish(&v1_value(k));
        }
        drop(w1);
        // Every reader has seen the old file's last value before the switch.
        while seen_n1.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            seen_n1.load(Ordering::SeqCst),
            3,
            "readers did not keep up in time"
        );
        let mut w2 = Writer::<v2::Config>::open_migrating(&path, &v2_value(0)).unwrap();
        assert_eq!(
            w2.get().rpm,
            N1,
            "the old file's last value is the new file's first"
        );
        for k in N1 + 1..=N2 {
            w2.publish(&v2_value(k));
        }
        let results: Vec<_> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        for (i, (torn, back, reopened, last)) in results.into_iter().enumerate() {
            println!("reader {i}: torn {torn}, back {back}, reopened {reopened}, last {last}");
            assert_eq!(torn, 0, "reader {i} saw a torn value");
            assert_eq!(back, 0, "reader {i} saw a value go back");
            assert_eq!(reopened, 1, "reader {i} reopens exactly once");
            assert_eq!(last, N2, "reader {i} followed to the end");
        }
    });
}
