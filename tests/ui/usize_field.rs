use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    count: usize,
}

fn main() {}
