use mapped_state::MappedState;

#[derive(MappedState)]
#[mapped_state(accessor = "status")]
struct Status {
    a: u32,
}

fn main() {}
