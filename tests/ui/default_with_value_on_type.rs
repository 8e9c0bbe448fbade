use mapped_state::MappedState;

#[derive(MappedState)]
#[mapped_state(default = Config { rpm: 1 })]
struct Config {
    rpm: u32,
}

fn main() {}
