use mapped_state::MappedState;

#[derive(MappedState)]
struct Borrowed<'a> {
    value: &'a u32,
}

fn main() {}
