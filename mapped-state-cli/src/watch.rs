//! `mapped-state watch`: follows a state file by its path (`mapped_state::Follow`) and prints
//! each new version with the fields that changed, the writer exiting or starting, and the file
//! being replaced at its path; waits for a file that is not there yet.

use std::fmt::Write as _;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use mapped_state::{Event, OpenOptions, RawReader};

use crate::exit::{one_line, Exit, NEGATIVE};
use crate::inspect::{bounded, fields_table, json_state, schema_line, writer_line};
use crate::render::{self, Capped};

/// What `watch` was asked to do.
#[derive(Debug)]
pub struct Settings {
    pub json: bool,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
}

/// The file being watched and what was last reported about it.
struct Watched {
    /// The last payload reported, validated: changes are found by comparing bytes.
    payload: Vec<u8>,
    version: u64,
}

/// The line that opens a watch or follows a reopen: a JSON `event` with the whole value, or
/// `what: schema, version, writer`.
fn banner(
    out: &mut impl Write,
    json: bool,
    event: &str,
    what: &str,
    r: &RawReader,
    w: &Watched,
) -> Result<(), Exit> {
    let (pid, alive) = (r.writer_pid(), r.writer_alive());
    if json {
        json_full(out, event, r, w, pid, alive)?;
    } else {
        writeln!(
            out,
            "{what}: {}, version {}, writer {}",
            schema_line(r),
            w.version,
            writer_line(pid, alive)
        )?;
    }
    Ok(())
}

/// Follows the file at `path` (`Follow`): waits for it to appear, prints each new version's
/// changes, the writer exiting and starting, and the file being replaced, which it then
/// follows. An error (a file that cannot be opened, a value that does not decode) ends it.
pub fn run(path: &Path, opts: &OpenOptions, s: &Settings) -> Result<(), Exit> {
    let mut out = std::io::stdout().lock();
    let shown = one_line(&path.display().to_string());
    let start = Instant::now();
    let mut follow = RawReader::follow(path).options(opts.clone());
    if let Some(t) = s.timeout {
        follow = follow.run_for(t);
    }
    let mut w: Option<Watched> = None;
    let mut seen = 0u64;
    while let Some(item) = follow.next() {
        match item? {
            Event::Missing => {
                if s.json {
                    out.write_all(b"{\"event\":\"waiting\",\"file\":")?;
                    let mut f = String::new();
                    render::json_str(&path.display().to_string(), &mut f).map_err(|_| {
                        Exit::about(crate::exit::IO, path, "cannot render the path")
                    })?;
                    writeln!(out, "{f}}}")?;
                } else {
                    writeln!(out, "waiting for {shown} to appear")?;
                }
            }
            Event::Opened(u) => {
                let Some(r) = follow.reader() else { continue };
                let now = Watched {
                    payload: u.value,
                    version: u.version,
                };
                banner(
                    &mut out,
                    s.json,
                    "start",
                    &format!("watching {shown}"),
                    r,
                    &now,
                )?;
                w = Some(now);
            }
            Event::Replaced(u) => {
                let Some(r) = follow.reader() else { continue };
                if s.json {
                    writeln!(out, "{{\"event\":\"superseded\"}}")?;
                } else {
                    writeln!(
                        out,
                        "superseded: a newer file has replaced {shown}; following it"
                    )?;
                }
                let now = Watched {
                    payload: u.value,
                    version: u.version,
                };
                banner(
                    &mut out,
                    s.json,
                    "reopened",
                    &format!("reopened {shown}"),
                    r,
                    &now,
                )?;
                if !s.json {
                    fields_table(r, &now.payload, &mut out)?;
                }
                w = Some(now);
            }
            Event::Update(u) => {
                let (Some(r), Some(old)) = (follow.reader(), w.as_mut()) else {
                    continue;
                };
                report_change(
                    &mut out,
                    s.json,
                    r,
                    old,
                    &u.value,
                    u.version,
                    (follow.writer_pid(), follow.writer_alive()),
                )?;
                old.payload = u.value;
                old.version = u.version;
                seen += 1;
                if s.count.is_some_and(|c| seen >= c) {
                    out.flush()?;
                    return Ok(());
                }
            }
            Event::WriterGone { pid } => writer_event(&mut out, s.json, "exited", pid)?,
            Event::WriterBack { pid } => writer_event(&mut out, s.json, "started", pid)?,
            // No quiet period is set; later kinds of events are not shown.
            _ => {}
        }
        out.flush()?;
    }
    if w.is_none() {
        // The deadline came before any file appeared: say why it could not be opened.
        RawReader::open_with(path, opts)?;
    }
    match s.count {
        Some(c) if seen < c => Err(Exit::about(
            NEGATIVE,
            path,
            format!(
                "timed out after {}: saw {seen} of {c} new versions",
                render::duration(start.elapsed())
            ),
        )),
        _ => Ok(()),
    }
}

fn writer_event(
    out: &mut impl Write,
    json: bool,
    what: &str,
    pid: Option<u32>,
) -> Result<(), Exit> {
    if json {
        let pid = pid.map_or("null".to_string(), |p| p.to_string());
        writeln!(out, "{{\"event\":\"writer_{what}\",\"pid\":{pid}}}")?;
    } else {
        let who = pid.map_or("writer".to_string(), |p| format!("writer pid {p}"));
        writeln!(out, "{who} {what}")?;
    }
    Ok(())
}

/// One changed leaf: its path, and its old and new values as text or JSON.
struct Change {
    path: String,
    old: String,
    new: String,
}

/// The leaves whose displayed value differs between `old` and `new` (both validated payloads of
/// `ty`), within `budget` bytes of paths and values: found by comparing bytes, rendered only
/// where the bytes differ. `None` when the changes would pass the budget.
fn changes(
    ty: &mapped_state::manifest::Type,
    old: &[u8],
    new: &[u8],
    json: bool,
    budget: usize,
) -> Option<Vec<Change>> {
    let mut sink = Capped::new(render::Discard, budget);
    let mut out = Vec::new();
    let complete = render::for_each_leaf(ty, budget, |l| {
        let (Some(a), Some(b)) = (l.bytes(old), l.bytes(new)) else {
            return ControlFlow::Continue(());
        };
        if a == b {
            return ControlFlow::Continue(());
        }
        let text = |bytes: &[u8]| {
            let mut s = String::new();
            let r = if json {
                render::write_json(l.ty, bytes, &mut s)
            } else {
                render::write_value(l.ty, bytes, &mut s)
            };
            r.map(|()| s)
        };
        let (Ok(a), Ok(b)) = (text(a), text(b)) else {
            return ControlFlow::Break(());
        };
        // Compared as displayed, so a NaN that stays NaN is unchanged and -0.0 vs 0.0 is a change.
        if a != b {
            let path = render::path_string(l.path);
            let charged = sink
                .write_str(&path)
                .and_then(|()| sink.write_str(&a))
                .and_then(|()| sink.write_str(&b));
            if charged.is_err() {
                return ControlFlow::Break(());
            }
            out.push(Change {
                path,
                old: a,
                new: b,
            });
        }
        ControlFlow::Continue(())
    });
    complete.then_some(out)
}

/// Prints a new version and the fields whose displayed value changed.
fn report_change(
    out: &mut impl Write,
    json: bool,
    r: &RawReader,
    w: &Watched,
    new: &[u8],
    version: u64,
    (pid, alive): (Option<u32>, bool),
) -> Result<(), Exit> {
    let budget = render::output_budget(r.header().file_len);
    let Some(changed) = changes(r.schema(), &w.payload, new, json, budget) else {
        return Err(crate::inspect::too_large(r, "list of changed fields"));
    };
    let not_seen = version.saturating_sub(w.version).saturating_sub(1);
    if json {
        let state = json_state(r, version, pid, alive);
        bounded(r, "JSON rendering", out, |s| {
            write!(
                s,
                "{{\"event\":\"version\",\"version\":{version},\"not_seen\":{not_seen}"
            )?;
            s.write_str(",\"changes\":{")?;
            for (i, c) in changed.iter().enumerate() {
                if i > 0 {
                    s.write_char(',')?;
                }
                render::json_str(&c.path, s)?;
                write!(s, ":{{\"old\":{},\"new\":{}}}", c.old, c.new)?;
            }
            s.write_char('}')?;
            s.write_str(&state)?;
            s.write_str(",\"value\":")?;
            render::write_json(r.schema(), new, s)?;
            s.write_str("}\n")
        })?;
        return Ok(());
    }
    let gap = match not_seen {
        0 => String::new(),
        1 => " (1 version in between not seen)".into(),
        n => format!(" ({n} versions in between not seen)"),
    };
    if changed.is_empty() {
        writeln!(out, "version {version}{gap}: no field changed")?;
        return Ok(());
    }
    writeln!(out, "version {version}{gap}:")?;
    for c in changed {
        writeln!(out, "  {}: {} -> {}", c.path, c.old, c.new)?;
    }
    Ok(())
}

/// A JSON event carrying the whole file state: `start` and `reopened`.
fn json_full(
    out: &mut impl Write,
    event: &str,
    r: &RawReader,
    w: &Watched,
    pid: Option<u32>,
    alive: bool,
) -> Result<(), Exit> {
    let state = json_state(r, w.version, pid, alive);
    bounded(r, "JSON rendering", out, |s| {
        write!(s, "{{\"event\":\"{event}\",\"file\":")?;
        render::json_str(&r.path().display().to_string(), s)?;
        s.write_str(",\"schema\":{\"name\":")?;
        render::json_str(&r.schema().name(), s)?;
        write!(s, ",\"hash\":\"{:#018x}\"}}", r.header().schema_hash)?;
        s.write_str(&state)?;
        s.write_str(",\"value\":")?;
        render::write_json(r.schema(), &w.payload, s)?;
        s.write_str("}\n")
    })
}
