use mapped_state::MappedState;

#[derive(MappedState)]
struct Config {
    rpm: u32,
    #[mapped_state(default = 30_000, default)]
    timeout_ms: u32,
}

fn main() {}
