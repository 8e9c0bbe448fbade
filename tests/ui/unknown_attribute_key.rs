use mapped_state::MappedState;

#[derive(MappedState)]
#[mapped_state(version = 2)]
struct Status {
    a: u32,
}

fn main() {}
