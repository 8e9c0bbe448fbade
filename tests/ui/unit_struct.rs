use mapped_state::MappedState;

#[derive(MappedState)]
struct Nothing;

fn main() {}
