//! Hygiene of the generated code: it compiles with no prelude, with the runtime renamed
//! (`crate = "..."`), with `Result`/`Option`/`Ok`/`Some`/... and primitive names shadowed by
//! local items, and with warnings denied; and the derived type then works end to end.

#![no_implicit_prelude]
#![deny(warnings, missing_debug_implementations, unused_qualifications)]

extern crate renamed_state;
extern crate std;

// Local items shadowing every name generated code could pick up from the prelude or the
// primitive types. Generated code must reach all of them through absolute paths.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Err;
#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
struct None;
#[allow(dead_code)]
struct Error;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct String;
#[allow(dead_code)]
struct Box;
#[allow(dead_code, non_camel_case_types)]
struct usize;
#[allow(dead_code, non_camel_case_types)]
struct u64;
#[allow(dead_code, non_camel_case_types)]
struct i64;
#[allow(dead_code)]
trait MappedState {}
#[allow(dead_code)]
trait ReadView {}
#[allow(dead_code)]
trait Default {}
#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod mapped_state {}

/// Expands to a type error if generated code ever calls a bare `panic!`/`assert!`/... instead
/// of the `::core` one.
#[allow(unused_macros)]
macro_rules! shadowed {
    ($($t:tt)*) => {{
        let shadowed_macro_used: () = 0u8;
        shadowed_macro_used
    }};
}
#[allow(unused_macros)]
macro_rules! panic {
    ($($t:tt)*) => {
        shadowed!()
    };
}
#[allow(unused_macros)]
macro_rules! assert {
    ($($t:tt)*) => {
        shadowed!()
    };
}
#[allow(unused_macros)]
macro_rules! unreachable {
    ($($t:tt)*) => {
        shadowed!()
    };
}

use renamed_state::MappedState as Derive;

/// A fieldless enum with a signed representation.
#[derive(Derive, Clone, Copy, PartialEq, ::std::fmt::Debug)]
#[mapped_state(crate = "renamed_state")]
#[repr(i8)]
enum Mode {
    Back = -1,
    Idle = 0,
    Run = 1,
}

/// A nested struct.
#[derive(Derive, Clone, Copy, PartialEq, ::std::fmt::Debug)]
#[mapped_state(crate = "renamed_state")]
struct Inner {
    a: ::std::primitive::u64,
    b: bool,
}

/// One field of every kind, a raw identifier, an accessor rename and restricted visibility.
#[derive(Derive, Clone, Copy, PartialEq, ::std::fmt::Debug)]
#[mapped_state(crate = "renamed_state", name = "Hygienic", size = 112)]
pub struct Hygienic {
    pub small: u8,
    pub(crate) count: u32,
    wide: u128,
    signed: i32,
    ratio: f64,
    flag: bool,
    letter: char,
    mode: Mode,
    grid: [[u16; 3]; 2],
    label: renamed_state::FixedStr<8>,
    inner: Inner,
    r#type: u16,
    #[mapped_state(accessor = "current_version")]
    version: u32,
}

mod nested {
    /// A derive in a child module, reaching the runtime by an absolute path.
    #[derive(::renamed_state::MappedState)]
    #[mapped_state(crate = "::renamed_state")]
    pub struct Child {
        pub value: u32,
    }
}

fn sample() -> Hygienic {
    Hygienic {
        small: 1,
        count: 2,
        wide: 3,
        signed: -4,
        ratio: 5.5,
        flag: true,
        letter: 'h',
        mode: Mode::Back,
        grid: [[1, 2, 3], [4, 5, 6]],
        label: renamed_state::FixedStr::truncate("hygiene"),
        inner: Inner { a: 7, b: false },
        r#type: 8,
        version: 9,
    }
}

#[test]
fn derived_type_works_against_the_renamed_runtime() {
    let dir =
        ::std::env::temp_dir().join(::std::format!("ms-derive-hygiene-{}", ::std::process::id()));
    ::std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hygiene.state");
    let _ = ::std::fs::remove_file(&path);

    let mut w = renamed_state::Writer::<Hygienic>::create(&path, &sample()).unwrap();
    let r = renamed_state::Reader::<Hygienic>::open(&path).unwrap();
    ::std::assert_eq!(r.load().unwrap(), sample());
    ::std::assert_eq!(r.small(), 1);
    ::std::assert_eq!(r.count(), 2);
    ::std::assert_eq!(r.wide(), 3);
    ::std::assert_eq!(r.signed(), -4);
    ::std::assert_eq!(r.ratio(), 5.5);
    ::std::assert!(r.flag().unwrap());
    ::std::assert_eq!(r.letter().unwrap(), 'h');
    ::std::assert_eq!(r.mode().unwrap(), Mode::Back);
    ::std::assert_eq!(r.grid(), [[1, 2, 3], [4, 5, 6]]);
    ::std::assert_eq!(r.label().unwrap().as_str(), "hygiene");
    ::std::assert_eq!(r.inner().unwrap(), Inner { a: 7, b: false });
    ::std::assert_eq!(r.r#type(), 8);
    ::std::assert_eq!(r.current_version(), 9);
    // `Reader::version` is the commit count; the renamed accessor reads the field.
    ::std::assert_eq!(r.version(), 0);

    ::std::assert_eq!(w.set_type(80), 1);
    ::std::assert_eq!(w.set_current_version(90), 2);
    ::std::assert_eq!(w.set_mode(Mode::Run), 3);
    ::std::assert_eq!(r.r#type(), 80);
    ::std::assert_eq!(r.current_version(), 90);
    ::std::assert_eq!(r.mode().unwrap(), Mode::Run);

    let child_path = dir.join("child.state");
    let _ = ::std::fs::remove_file(&child_path);
    let _cw =
        renamed_state::Writer::<nested::Child>::create(&child_path, &nested::Child { value: 11 })
            .unwrap();
    let cr = renamed_state::Reader::<nested::Child>::open(&child_path).unwrap();
    ::std::assert_eq!(cr.value(), 11);

    ::std::mem::drop(w);
    ::std::fs::remove_dir_all(&dir).unwrap();
}
