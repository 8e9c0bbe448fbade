use mapped_state::MappedState;

#[derive(MappedState)]
struct Tuning {
    wake_policy: u8,
}

fn main() {}
