//! The machinery of the `mapped-state` command, as a library so that the binary, the fuzz
//! harness and the tests all drive the same code in process. Not a stable API: the command line
//! is the interface.

pub mod check;
pub mod codegen_c;
pub mod exit;
pub mod inspect;
pub mod json;
pub mod record;
pub mod render;
pub mod watch;
