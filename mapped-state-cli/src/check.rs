//! `mapped-state check` (is this file valid, for scripts) and `mapped-state diff` (how do two
//! files' schemas differ, field by field).

use std::io::Write;
use std::path::Path;

use mapped_state::OpenOptions;

use crate::exit::{one_line, Exit, INVALID, NEGATIVE};
use crate::inspect::{open, read_payload, schema_line};

/// Validates header and manifest (by opening), then a snapshot decoded field by field.
pub fn check(
    path: &Path,
    opts: &OpenOptions,
    want_hash: Option<u64>,
    quiet: bool,
) -> Result<(), Exit> {
    let r = open(path, opts)?;
    let (_, version) = read_payload(&r)?;
    let hash = r.header().schema_hash;
    if let Some(want) = want_hash {
        if want != hash {
            return Err(Exit::about(
                INVALID,
                path,
                format!(
                    "schema hash is {hash:#018x} ({}), expected {want:#018x}",
                    crate::render::type_name(r.schema())
                ),
            ));
        }
    }
    if !quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}: ok: {}, {} bytes, version {version}",
            one_line(&path.display().to_string()),
            schema_line(&r),
            r.header().file_len
        )?;
        out.flush()?;
    }
    Ok(())
}

/// Prints how the schema of `b` differs from that of `a`; exit code 4 when it does.
pub fn diff(a: &Path, b: &Path, opts: &OpenOptions) -> Result<(), Exit> {
    let ra = open(a, opts)?;
    let rb = open(b, opts)?;
    let mut out = std::io::stdout().lock();
    let (sa, sb) = (schema_line(&ra), schema_line(&rb));
    if ra.header().schema_hash == rb.header().schema_hash {
        writeln!(out, "same schema: {sa}")?;
        out.flush()?;
        return Ok(());
    }
    writeln!(out, "schema {sa} -> {sb}")?;
    let lines = ra.schema().diff(rb.schema());
    if lines.is_empty() {
        // Leaf fields, offsets and enum variants match: only the names of nested types differ.
        writeln!(
            out,
            "  fields and offsets are the same; the names of nested structs or enums differ"
        )?;
    }
    for l in lines {
        writeln!(out, "  {}", one_line(&l))?;
    }
    out.flush()?;
    Err(Exit::silent(NEGATIVE))
}
