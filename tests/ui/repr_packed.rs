use mapped_state::MappedState;

#[derive(MappedState)]
#[repr(C, packed)]
struct Status {
    a: u8,
    b: u32,
}

fn main() {}
