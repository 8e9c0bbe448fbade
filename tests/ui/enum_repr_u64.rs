use mapped_state::MappedState;

#[derive(MappedState)]
#[repr(u64)]
enum Mode {
    Idle,
    Running,
}

fn main() {}
