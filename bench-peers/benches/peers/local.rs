//! The one-thread rows: snapshot, publish, one field, one array element and a one-field setter,
//! each with nobody else touching the state. Reads are checked against the one value written.

use std::hint::black_box;
use std::time::Duration;

use crate::handles::{by_lib, MsEverySink, MsSource, Name, Read, Sink, Source};
use crate::measure::{time_per_op, Checker};
use crate::payload::Payload;
use crate::{Lib, Op, Sample};

/// The value the read rows read: one number in every word.
const X: u64 = 7;

pub fn run<T: Payload>(op: Op, lib: Lib, round: Duration) -> Sample {
    let mut c = Checker::default();
    let ns = match (op, lib) {
        (Op::Snapshot, Lib::Memcpy) => memcpy_snapshot::<T>(round, &mut c),
        (Op::Publish, Lib::Memcpy) => memcpy_publish::<T>(round),
        (Op::Publish, Lib::MsEveryCommit) => {
            publish::<T, MsEverySink<T>, MsSource<T>>(round, &mut c)
        }
        (Op::SetField, Lib::MsEveryCommit) => {
            set_field::<T, MsEverySink<T>, MsSource<T>>(round, &mut c)
        }
        (Op::Snapshot, _) => by_lib!(lib, T, snapshot(round, &mut c)),
        (Op::Publish, _) => by_lib!(lib, T, publish(round, &mut c)),
        (Op::Field, _) => by_lib!(lib, T, field(round, &mut c)),
        (Op::Element, _) => by_lib!(lib, T, element(round, &mut c)),
        (Op::SetField, _) => by_lib!(lib, T, set_field(round, &mut c)),
        _ => unreachable!("{op:?} is not a one-thread row"),
    };
    Sample {
        value: ns,
        checks: c.checks,
        ..Sample::default()
    }
}

/// A sink holding `X` and a source opened on it.
fn holding_x<T: Payload, W: Sink<T>, R: Source<T>>() -> (W, R) {
    let name = Name::new("local");
    let mut w = W::create(&name);
    w.publish(&T::filled(X));
    let r = R::open(&name);
    (w, r)
}

/// The floor: a plain copy of a private value of the same size.
fn memcpy_snapshot<T: Payload>(round: Duration, c: &mut Checker) -> f64 {
    let src = Box::new(T::filled(X));
    time_per_op(round, || {
        let v: T = *black_box(&*src);
        c.see_exact(black_box(&v).ends(), X);
    })
}

/// The floor of a publish: a plain copy into a private value, alternating two sources.
fn memcpy_publish<T: Payload>(round: Duration) -> f64 {
    let values = Box::new([T::filled(1), T::filled(2)]);
    let mut dst = Box::new(T::filled(0));
    let mut i = 0;
    time_per_op(round, || {
        i ^= 1;
        *dst = *black_box(&values[i]);
        black_box(&mut *dst);
    })
}

fn snapshot<T: Payload, W: Sink<T>, R: Source<T>>(round: Duration, c: &mut Checker) -> f64 {
    let (_w, mut r) = holding_x::<T, W, R>();
    time_per_op(round, || match r.read() {
        Read::Got(ends) => c.see_exact(ends, X),
        Read::Retry => {}
        Read::Failed => c.failed(),
    })
}

/// Alternates two values that differ in every word: a diffing writer gets no free publish.
fn publish<T: Payload, W: Sink<T>, R: Source<T>>(round: Duration, c: &mut Checker) -> f64 {
    let name = Name::new("publish");
    let mut w = W::create(&name);
    let values = Box::new([T::filled(1), T::filled(2)]);
    let mut i = 0;
    time_per_op(round, || {
        i ^= 1;
        if let Some(v) = w.publish(black_box(&values[i])) {
            c.see_version(v);
        }
    })
}

fn field<T: Payload, W: Sink<T>, R: Source<T>>(round: Duration, c: &mut Checker) -> f64 {
    let (_w, mut r) = holding_x::<T, W, R>();
    time_per_op(round, || {
        let a = black_box(r.field_a());
        c.see_exact((a, a), X);
    })
}

fn element<T: Payload, W: Sink<T>, R: Source<T>>(round: Duration, c: &mut Checker) -> f64 {
    let word = T::ELEMENT.expect("a payload with an array field");
    let (_w, mut r) = holding_x::<T, W, R>();
    time_per_op(round, || {
        let e = black_box(r.element(word));
        c.see_exact((e, e), X);
    })
}

/// Alternates field `a` between two values (so every commit changes a word).
fn set_field<T: Payload, W: Sink<T>, R: Source<T>>(round: Duration, c: &mut Checker) -> f64 {
    let name = Name::new("set");
    let mut w = W::create(&name);
    let mut x = 1;
    time_per_op(round, || {
        x ^= 3;
        if let Some(v) = w.set_a(black_box(x)) {
            c.see_version(v);
        }
    })
}
