//! `mapped-state inspect`: a state file's header, writer, version and every field by name, as
//! text or one JSON object. Also the reading helpers the other commands share.

use std::io::Write;
use std::path::Path;

use mapped_state::dynamic::{self, Value};
use mapped_state::{OpenOptions, RawReader};

use crate::exit::{one_line, Exit};
use crate::render;

/// Opens and validates `path` (header and manifest).
pub fn open(path: &Path, opts: &OpenOptions) -> Result<RawReader, Exit> {
    Ok(RawReader::open_with(path, opts)?)
}

/// A consistent snapshot of the payload decoded through the file's manifest, and its version.
pub fn read_value(r: &RawReader) -> Result<(Value, u64), Exit> {
    let (bytes, version) = r.snapshot()?;
    let value = dynamic::decode(r.schema(), &bytes).map_err(|source| {
        Exit::from(mapped_state::Error::InvalidValue {
            path: r.path().to_owned(),
            source,
        })
    })?;
    Ok((value, version))
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
    let r = open(path, opts)?;
    let (value, version) = read_value(&r)?;
    let (pid, alive) = (r.writer_pid(), r.writer_alive());
    let text = if json {
        json_report(&r, &value, version, pid, alive)
    } else {
        text_report(&r, &value, version, pid, alive)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn text_report(
    r: &RawReader,
    value: &Value,
    version: u64,
    pid: Option<u32>,
    alive: bool,
) -> String {
    let h = r.header();
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
    let leaves = render::leaves(r.schema(), value);
    if leaves.is_empty() {
        s.push_str("fields    (none)\n");
    } else {
        s.push_str("fields\n");
        s.push_str(&render::table(&leaves));
    }
    s
}

fn json_report(
    r: &RawReader,
    value: &Value,
    version: u64,
    pid: Option<u32>,
    alive: bool,
) -> String {
    let h = r.header();
    let mut s = String::from("{\"file\":");
    render::json_str(&r.path().display().to_string(), &mut s);
    s.push_str(&format!(
        ",\"format_version\":{},\"file_size\":{},\"slots\":{},\"schema\":{{\"name\":",
        mapped_state::format::VERSION,
        h.file_len,
        h.slot_count
    ));
    render::json_str(&r.schema().name(), &mut s);
    s.push_str(&format!(
        ",\"hash\":\"{:#018x}\",\"size\":{},\"align\":{}}}",
        h.schema_hash, h.payload_size, h.payload_align
    ));
    s.push_str(&json_state(r, version, pid, alive));
    s.push_str(",\"value\":");
    render::json(value, &mut s);
    s.push_str("}\n");
    s
}

/// `,"writer":{...},"version":N,"last_commit":"...","age_s":F,"superseded":B`: the live part
/// of a JSON report, shared with `watch`.
pub fn json_state(r: &RawReader, version: u64, pid: Option<u32>, alive: bool) -> String {
    let pid = pid.map_or("null".to_string(), |p| p.to_string());
    format!(
        ",\"writer\":{{\"pid\":{pid},\"alive\":{alive}}},\"version\":{version},\
         \"last_commit\":\"{}\",\"age_s\":{},\"superseded\":{}",
        render::timestamp(r.last_commit()),
        r.age().as_secs_f64(),
        r.superseded()
    )
}
