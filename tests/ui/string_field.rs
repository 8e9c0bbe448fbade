use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    name: String,
}

fn main() {}
