//! `mapped-state inspect`: a state file's header, writer, version and every field by name, as
//! text or one JSON object. Also the reading helpers the other commands share.

use std::io::Write;
use std::path::Path;

use mapped_state::dynamic::{self, ValueRef};
use mapped_state::{OpenOptions, RawReader};

use crate::exit::{one_line, Exit, INVALID};
use crate::json;
use crate::render::{self, Capped, IoText};

/// Opens and validates `path` (header and manifest).
pub fn open(path: &Path, opts: &OpenOptions) -> Result<RawReader, Exit> {
    Ok(RawReader::open_with(path, opts)?)
}

/// A consistent snapshot of the payload, validated field by field through the file's manifest
/// (no value tree is built: rendering streams from these bytes), and its version.
pub fn read_payload(r: &RawReader) -> Result<(Vec<u8>, u64), Exit> {
    let (bytes, version) = r.snapshot()?;
    dynamic::validate(r.schema(), &bytes).map_err(|source| {
        Exit::from(mapped_state::Error::InvalidValue {
            path: r.path().to_owned(),
            source,
        })
    })?;
    Ok((bytes, version))
}

/// `Telemetry (hash 0x...)`.
pub fn schema_line(r: &RawReader) -> String {
    format!(
        "{} (hash {:#018x})",
        render::type_name(r.schema()),
        r.header().schema_hash
    )
}

/// `pid 123, alive` / `pid 123, exited` / `none yet`.
pub fn writer_line(pid: Option<u32>, alive: bool) -> String {
    match (pid, alive) {
        (Some(p), true) => format!("pid {p}, alive"),
        (Some(p), false) => format!("pid {p}, exited"),
        (None, true) => "alive (pid not recorded)".into(),
        (None, false) => "none has opened the file".into(),
    }
}

pub fn run(path: &Path, opts: &OpenOptions, json: bool) -> Result<(), Exit> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    report(path, opts, json, &mut out)?;
    out.flush()?;
    Ok(())
}

/// Opens, validates and renders `path` to `out`: what `inspect` prints.
pub fn report(
    path: &Path,
    opts: &OpenOptions,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Exit> {
    let r = open(path, opts)?;
    let (payload, version) = read_payload(&r)?;
    if json {
        json_report(&r, &payload, version, out)
    } else {
        text_report(&r, &payload, version, out)
    }
}

/// The error for a file whose rendering would pass the output budget.
pub fn too_large(r: &RawReader, what: &str) -> Exit {
    Exit::about(
        INVALID,
        r.path(),
        format!(
            "its {what} would exceed {} bytes ({} times the file's size, plus 64 KiB): \
             the manifest repeats very long names or very many empty values",
            render::output_budget(r.header().file_len),
            render::OUTPUT_PER_BYTE
        ),
    )
}

fn text_report(
    r: &RawReader,
    payload: &[u8],
    version: u64,
    out: &mut dyn Write,
) -> Result<(), Exit> {
    let h = r.header();
    let (pid, alive) = (r.writer_pid(), r.writer_alive());
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<10}{v}\n"));
    line("file", one_line(&r.path().display().to_string()));
    line(
        "format",
        format!(
            "version {}, native-endian, {} bytes, a ring of {} slots",
            mapped_state::format::VERSION,
            h.file_len,
            h.slot_count
        ),
    );
    line("schema", schema_line(r));
    line(
        "payload",
        format!("{} bytes, align {}", h.payload_size, h.payload_align),
    );
    line("writer", writer_line(pid, alive));
    line(
        "version",
        format!(
            "{version}, committed {} ago ({})",
            render::duration(r.age()),
            render::timestamp(r.last_commit())
        ),
    );
    if r.superseded() {
        line(
            "superseded",
            "yes: a newer file has replaced this one at its path; inspect again".into(),
        );
    }
    // A walk that completes without meeting a leaf: there are none (`[Empty; N]` with a huge N
    // runs out of steps instead, and gets the table's cut-off note).
    let none = render::for_each_leaf(r.schema(), render::output_budget(h.file_len), |_| {
        std::ops::ControlFlow::Break(())
    });
    out.write_all(s.as_bytes())?;
    if none {
        out.write_all(b"fields    (none)\n")?;
        return Ok(());
    }
    out.write_all(b"fields\n")?;
    fields_table(r, payload, out)
}

/// The fields of `payload` as a table, cut off with a note when it passes the output budget.
pub fn fields_table(r: &RawReader, payload: &[u8], out: &mut dyn Write) -> Result<(), Exit> {
    let budget = render::output_budget(r.header().file_len);
    let mut sink = Capped::new(IoText { out, error: None }, budget);
    let complete = render::table(r.schema(), payload, &mut sink);
    if let Some(e) = sink.inner.error.take() {
        return Err(e.into());
    }
    if complete != Ok(true) {
        writeln!(
            sink.inner.out,
            "\n  ... output stops here, at {budget} bytes ({} times the file's size, plus 64 KiB): \
             the manifest repeats very long names or very many empty values",
            render::OUTPUT_PER_BYTE
        )?;
    }
    Ok(())
}

fn json_report(
    r: &RawReader,
    payload: &[u8],
    version: u64,
    out: &mut dyn Write,
) -> Result<(), Exit> {
    let h = r.header();
    let report = json::Inspect {
        file: r.path().display().to_string(),
        format_version: mapped_state::format::VERSION,
        file_size: h.file_len,
        slots: h.slot_count,
        schema: json::SchemaInfo::of(r, true),
        live: json::Live::of(r, version, r.writer_pid(), r.writer_alive()),
        value: ValueRef::new(r.schema(), payload),
    };
    json::line(r, out, &report)
}
