use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    limit: Option<u32>,
}

fn main() {}
