use mapped_state::MappedState;

// The pinned hash is that of `Status { a: u32 }`: the error names the appended field.
#[derive(MappedState)]
#[mapped_state(schema_hash = 0x0e0a91b34525d60a)]
struct Status {
    a: u32,
    b: u16,
}

fn main() {}
