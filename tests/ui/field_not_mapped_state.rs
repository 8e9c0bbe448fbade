use mapped_state::MappedState;

struct Plain {
    x: u32,
}

#[derive(MappedState)]
struct Status {
    inner: Plain,
}

fn main() {}
