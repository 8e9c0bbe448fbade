use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    #[mapped_state(accessor = "current rpm")]
    rpm: u32,
}

fn main() {}
