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
    compatibility(&mut out, ra.schema(), rb.schema())?;
    out.flush()?;
    Err(Exit::silent(NEGATIVE))
}

/// Says whether programs reading `a`'s type can open a file of `b`'s schema, and why not (the
/// schema evolution rules, `mapped_state::evolve`), and what a writer of `a`'s type can do.
fn compatibility(
    out: &mut impl Write,
    a: &mapped_state::manifest::Type,
    b: &mapped_state::manifest::Type,
) -> std::io::Result<()> {
    let c = mapped_state::evolve::check(a, b);
    if c.readable() {
        writeln!(
            out,
            "readers of OLD can open NEW: every field they read is in NEW at the same offset with the same type"
        )?;
    } else if c.readable_with_defaults() {
        let names: Vec<String> = c
            .absent
            .iter()
            .map(|f| format!("`{}: {}`", f.name, f.shown))
            .collect();
        writeln!(
            out,
            "readers of OLD can open NEW only if they declare defaults (`#[mapped_state(default ...)]`) for the fields NEW lacks: {}",
            one_line(&names.join(", "))
        )?;
    } else {
        writeln!(out, "readers of OLD cannot open NEW:")?;
        for p in &c.problems {
            writeln!(out, "  {}", one_line(p))?;
        }
        for f in &c.absent {
            writeln!(
                out,
                "  {}",
                one_line(&format!(
                    "this program's type has `{}: {}`, NEW has no such field (it needs a default)",
                    f.name, f.shown
                ))
            )?;
        }
    }
    for n in &c.notes {
        writeln!(out, "  note: {}", one_line(n))?;
    }
    writeln!(
        out,
        "writers of OLD cannot take over NEW (a writer matches its file exactly); `Writer::open_migrating` rewrites a file as the writer's type"
    )
}
