use mapped_state::MappedState;

#[derive(MappedState)]
#[mapped_state(schema_hash = 0x0123_4567_89ab_cdef)]
struct Status {
    a: u32,
}

fn main() {}
