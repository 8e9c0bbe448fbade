use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {}

fn main() {}
