use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    version: u32,
}

fn main() {}
