use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    range: (u32, u32),
}

fn main() {}
