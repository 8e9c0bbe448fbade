use mapped_state::MappedState;

#[derive(MappedState)]
enum Mode {
    Idle,
    Running,
}

fn main() {}
