use mapped_state::MappedState;

#[derive(MappedState, Clone, Copy)]
#[repr(u8)]
enum Mode {
    Idle,
}

// A bare `default` on a field takes the field type's `Default`, which `Mode` lacks.
#[derive(MappedState)]
struct Config {
    rpm: u32,
    #[mapped_state(default)]
    mode: Mode,
}

fn main() {}
