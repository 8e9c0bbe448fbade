use mapped_state::MappedState;

#[derive(MappedState)]
struct Point(u32, u32);

fn main() {}
