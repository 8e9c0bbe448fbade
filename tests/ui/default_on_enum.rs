use mapped_state::MappedState;

#[derive(MappedState, Clone, Copy)]
#[mapped_state(default)]
#[repr(u8)]
enum Mode {
    Idle,
    Running,
}

fn main() {}
