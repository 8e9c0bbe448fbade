use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    delta: isize,
}

fn main() {}
