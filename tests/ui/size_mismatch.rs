use mapped_state::MappedState;

#[derive(MappedState)]
#[mapped_state(size = 8)]
struct Status {
    a: u32,
    b: u64,
}

fn main() {}
