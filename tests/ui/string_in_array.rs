use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    names: [String; 4],
}

fn main() {}
