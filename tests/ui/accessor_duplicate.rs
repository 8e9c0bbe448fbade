use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    #[mapped_state(accessor = "count")]
    total: u32,
    count: u32,
}

fn main() {}
