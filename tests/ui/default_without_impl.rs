use mapped_state::MappedState;

// The struct-level `default` takes absent fields from the struct's `Default`, which it lacks.
#[derive(MappedState)]
#[mapped_state(default)]
struct Config {
    rpm: u32,
    timeout_ms: u32,
}

fn main() {}
