use mapped_state::MappedState;

#[derive(MappedState)]
#[mapped_state(size = "64")]
struct Status {
    a: u32,
}

fn main() {}
