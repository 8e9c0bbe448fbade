use mapped_state::MappedState;

#[derive(MappedState)]
struct Status {
    samples: Vec<f32>,
}

fn main() {}
