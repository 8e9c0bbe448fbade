use mapped_state::MappedState;

#[derive(MappedState)]
#[repr(u8)]
enum Mode {
    Idle,
    Running(u32),
}

fn main() {}
