use mapped_state::MappedState;

#[derive(MappedState)]
struct Config {
    rpm: u32,
    #[mapped_state(default = "ten seconds")]
    timeout_ms: u32,
}

fn main() {}
