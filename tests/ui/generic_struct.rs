use mapped_state::MappedState;

#[derive(MappedState)]
struct Sample<T> {
    value: T,
}

fn main() {}
