use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    limit: &'static u32,
}

fn main() {}
