//! `mapped-state watch`: follows a state file by its path (`mapped_state::Follow`) and prints
//! each new version with the fields that changed, the writer exiting or starting, and the file
//! being replaced at its path; waits for a file that is not there yet.

use std::fmt::Write as _;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use mapped_state::{Event as Followed, OpenOptions, RawReader};

use crate::exit::{one_line, Exit, NEGATIVE};
use crate::inspect::{fields_table, schema_line, writer_line};
use crate::json::{self, Event};
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
            Followed::Missing => {
                if s.json {
                    let event = Event::Waiting {
                        file: path.display().to_string(),
                    };
                    serde_json::to_writer(&mut out, &event).map_err(std::io::Error::from)?;
                    out.write_all(b"\n")?;
                } else {
                    writeln!(out, "waiting for {shown} to appear")?;
                }
            }
            Followed::Opened(u) => {
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
            Followed::Replaced(u) => {
                let Some(r) = follow.reader() else { continue };
                if s.json {
                    json::line(r, &mut out, &Event::Superseded)?;
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
            Followed::Update(u) => {
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
            Followed::WriterGone { pid } => writer_event(&mut out, s.json, "exited", pid)?,
            Followed::WriterBack { pid } => writer_event(&mut out, s.json, "started", pid)?,
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
        let event = if what == "exited" {
            Event::WriterExited { pid }
        } else {
            Event::WriterStarted { pid }
        };
        // A pid and a name: nothing a file's bytes can make large.
        serde_json::to_writer(&mut *out, &event).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        let who = pid.map_or("writer".to_string(), |p| format!("writer pid {p}"));
        writeln!(out, "{who} {what}")?;
    }
    Ok(())
}

/// One changed leaf: its path (as text, or as a JSON key), its place in the payload, and its
/// old and new values as displayed (text or JSON).
struct Change<'t> {
    path: String,
    ty: &'t mapped_state::manifest::Type,
    offset: usize,
    old: String,
    new: String,
}

/// The leaves whose displayed value differs between `old` and `new` (both validated payloads of
/// `ty`), within `budget` bytes of paths and values: found by comparing bytes, rendered only
/// where the bytes differ. `None` when the changes would pass the budget.
fn changes<'t>(
    ty: &'t mapped_state::manifest::Type,
    old: &[u8],
    new: &[u8],
    json: bool,
    budget: usize,
) -> Option<Vec<Change<'t>>> {
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
            if json {
                serde_json::to_string(&mapped_state::dynamic::ValueRef::new(l.ty, bytes))
                    .map_err(|_| std::fmt::Error)
            } else {
                let mut s = String::new();
                render::write_value(l.ty, bytes, &mut s).map(|()| s)
            }
        };
        let (Ok(a), Ok(b)) = (text(a), text(b)) else {
            return ControlFlow::Break(());
        };
        // Compared as displayed, so a NaN that stays NaN is unchanged and -0.0 vs 0.0 is a change.
        if a != b {
            let path = if json {
                render::key_string(l.path)
            } else {
                render::path_string(l.path)
            };
            let charged = sink
                .write_str(&path)
                .and_then(|()| sink.write_str(&a))
                .and_then(|()| sink.write_str(&b));
            if charged.is_err() {
                return ControlFlow::Break(());
            }
            out.push(Change {
                path,
                ty: l.ty,
                offset: l.offset,
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
        let list: Vec<json::Changed<'_>> = changed
            .into_iter()
            .map(|c| json::Changed {
                key: c.path,
                ty: c.ty,
                offset: c.offset,
            })
            .collect();
        let event = Event::Version(json::Version {
            not_seen,
            changes: json::Changes {
                list: &list,
                old: &w.payload,
                new,
            },
            live: json::Live::of(r, version, pid, alive),
            value: mapped_state::dynamic::ValueRef::new(r.schema(), new),
        });
        return json::line(r, out, &event);
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
    let full = json::Full {
        file: r.path().display().to_string(),
        schema: json::SchemaInfo::of(r, false),
        live: json::Live::of(r, w.version, pid, alive),
        value: mapped_state::dynamic::ValueRef::new(r.schema(), &w.payload),
    };
    let event = if event == "start" {
        Event::Start(full)
    } else {
        Event::Reopened(full)
    };
    json::line(r, out, &event)
}
