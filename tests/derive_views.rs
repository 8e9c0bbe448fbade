//! The derive's view types are real, nameable types next to the struct (`<Type>ReadView`,
//! `<Type>WriteView`), so they and their accessors appear in the user's rustdoc: `Reader<T>` and
//! `Writer<T>` deref to them and `T`'s `Fields` impl names them.

use mapped_state::{Fields, MappedState, Reader, Writer};

/// A gauge.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Gauge {
    /// The current reading.
    pub level: u32,
    /// Whether the sensor answers.
    pub ok: bool,
    pub history: [u16; 3],
}

/// Compiles only if `T`'s views are exactly these types.
fn views_are<T: Fields<ReadView = GaugeReadView, WriteView = GaugeWriteView>>() {}

#[test]
fn views_are_named_types_reached_through_deref() {
    views_are::<Gauge>();
    let dir = std::env::temp_dir().join(format!("ms-views-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gauge.state");
    let initial = Gauge {
        level: 1,
        ok: true,
        history: [1, 2, 3],
    };
    let mut w = Writer::<Gauge>::create(&path, &initial).unwrap();
    let setters: &mut GaugeWriteView = &mut w;
    assert_eq!(setters.set_level(7), 1);
    let r = Reader::<Gauge>::open(&path).unwrap();
    let view: &GaugeReadView = &r;
    assert_eq!(view.level(), 7);
    assert!(view.ok().unwrap());
    assert_eq!(view.history_at(2), Some(3));
    assert_eq!(view.history_at(3), None);
    // The views print like the handles they wrap.
    assert!(format!("{view:?}").starts_with("GaugeReadView"), "{view:?}");
    drop((w, r));
    std::fs::remove_dir_all(&dir).unwrap();
}
