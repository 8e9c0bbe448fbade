use mapped_state::{MappedState, Writer};

#[derive(MappedState)]
struct Inner {
    name: String,
}

#[derive(MappedState)]
struct Outer {
    inner: Inner,
    count: u32,
}

fn publish(w: &mut Writer<Outer>, value: &Outer) -> u64 {
    w.set_count(1);
    w.publish(value)
}

fn main() {}
