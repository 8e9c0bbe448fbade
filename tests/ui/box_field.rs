use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    value: Box<u64>,
}

fn main() {}
