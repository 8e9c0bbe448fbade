use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    next: *const u8,
}

fn main() {}
