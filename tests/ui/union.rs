use mapped_state::MappedState;

#[derive(MappedState)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
