//! How a command ends when it does not succeed: an exit code that scripts can branch on and a
//! one-line message for stderr.

use std::io;
use std::path::Path;
use std::process::ExitCode;

/// The file is not a valid state file, holds an invalid value, or has the wrong schema hash.
pub const INVALID: u8 = 1;
/// The file cannot be opened or read, or output cannot be written.
pub const IO: u8 = 3;
/// A negative answer: schemas differ, or a watch ended before its `--count`.
pub const NEGATIVE: u8 = 4;

/// A command's unsuccessful end.
#[derive(Debug)]
pub struct Exit {
    code: u8,
    /// Printed to stderr after `mapped-state: `; `None` to exit silently.
    message: Option<String>,
}

impl Exit {
    /// An exit with `code` and a message about `path`.
    pub fn about(code: u8, path: &Path, what: impl std::fmt::Display) -> Self {
        Exit {
            code,
            message: Some(format!("{}: {what}", path.display())),
        }
    }

    /// An exit with `code` and nothing more to say (the output said it).
    pub fn silent(code: u8) -> Self {
        Exit {
            code,
            message: None,
        }
    }

    /// Prints the message (escaped onto one line) and gives the exit code.
    pub fn report(self) -> ExitCode {
        if let Some(m) = self.message {
            eprintln!("mapped-state: {}", one_line(&m));
        }
        ExitCode::from(self.code)
    }
}

impl From<mapped_state::Error> for Exit {
    fn from(e: mapped_state::Error) -> Self {
        use mapped_state::{Error as E, Insecurity};
        if let E::Insecure {
            path,
            why: Insecurity::WritableByOthers { mode },
        } = &e
        {
            // The library's message names its API; a CLI user needs the flag.
            return Exit::about(
                IO,
                path,
                format!(
                    "refused: its mode {mode:o} lets group or other users write it; \
                     `chmod go-w` it or pass --allow-shared-writable"
                ),
            );
        }
        if let E::Insecure {
            path,
            why: Insecurity::UntrustedOwner { uid },
        } = &e
        {
            return Exit::about(
                IO,
                path,
                format!(
                    "refused: it is owned by uid {uid}, neither this user nor root, and its \
                     owner could change or truncate it under this process; \
                     pass --trust-owner {uid} to trust that owner"
                ),
            );
        }
        let code = match e {
            // The file could not be reached or read; its contents were not judged.
            E::Io { .. } | E::Insecure { .. } | E::Contended { .. } => IO,
            _ => INVALID,
        };
        Exit {
            code,
            message: Some(e.to_string()),
        }
    }
}

/// Failure to write to stdout. A closed pipe (`watch | head -1`) means the reader has what it
/// wanted, so the command ends quietly with success.
impl From<io::Error> for Exit {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Exit {
                code: 0,
                message: None,
            };
        }
        Exit {
            code: IO,
            message: Some(format!("writing output: {e}")),
        }
    }
}

/// `s` with control characters escaped: paths, field names and strings come from the file
/// system and from untrusted files, and must not break the one-line message or drive the
/// terminal.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // `write_name` never fails on a `String`.
    let _ = mapped_state::dynamic::write_name(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_on_one_line() {
        assert_eq!(one_line("a\nb\r\u{1b}[0m"), "a\\nb\\r\\u{1b}[0m");
        assert_eq!(one_line("plain \"text\" ü"), "plain \"text\" ü");
    }

    #[test]
    fn broken_pipe_is_a_quiet_success() {
        let e = Exit::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!((e.code, e.message), (0, None));
        let e = Exit::from(io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(e.code, IO);
    }
}
