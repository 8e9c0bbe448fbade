use mapped_state::MappedState;

#[derive(MappedState)]
#[mapped_state(name = "Status")]
#[mapped_state(name = "Health")]
struct Status {
    a: u32,
}

fn main() {}
