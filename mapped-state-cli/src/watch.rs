//! `mapped-state watch`: sleeps on the file's futex and prints each new version with the fields
//! that changed, the writer exiting or starting, and the file being replaced at its path.

use std::fmt::Write as _;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use mapped_state::{OpenOptions, RawReader};

use crate::exit::{one_line, Exit, NEGATIVE};
use crate::inspect::{fields_table, open, read_payload, schema_line, writer_line};
use crate::json::{self, Event};
use crate::render::{self, Capped};

/// How often the watch wakes without a commit, to notice a writer exiting or the file being
/// superseded (neither is a commit, so neither ends the futex wait).
const SLICE: Duration = Duration::from_millis(100);

/// What `watch` was asked to do.
#[derive(Debug)]
pub struct Settings {
    pub json: bool,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
}

/// The file being watched and what was last reported about it.
struct Watched {
    reader: RawReader,
    /// The last payload reported, validated: changes are found by comparing bytes.
    payload: Vec<u8>,
    version: u64,
    alive: bool,
    pid: Option<u32>,
    superseded: bool,
}

impl Watched {
    fn open(path: &Path, opts: &OpenOptions) -> Result<Self, Exit> {
        let reader = open(path, opts)?;
        let (payload, version) = read_payload(&reader)?;
        Ok(Watched {
            alive: reader.writer_alive(),
            pid: reader.writer_pid(),
            superseded: reader.superseded(),
            reader,
            payload,
            version,
        })
    }
}

/// The line that opens a watch or follows a reopen: a JSON `event` with the whole value, or
/// `what: schema, version, writer`.
fn banner(
    out: &mut impl Write,
    json: bool,
    event: &str,
    what: &str,
    w: &Watched,
) -> Result<(), Exit> {
    if json {
        json_full(out, event, w)?;
    } else {
        writeln!(
            out,
            "{what}: {}, version {}, writer {}",
            schema_line(&w.reader),
            w.version,
            writer_line(w.pid, w.alive)
        )?;
    }
    Ok(())
}

pub fn run(path: &Path, opts: &OpenOptions, s: &Settings) -> Result<(), Exit> {
    let mut out = std::io::stdout().lock();
    let mut w = Watched::open(path, opts)?;
    let shown = one_line(&path.display().to_string());
    banner(&mut out, s.json, "start", &format!("watching {shown}"), &w)?;
    out.flush()?;

    let start = Instant::now();
    let mut seen = 0u64;
    loop {
        let wait = match s.timeout {
            Some(t) => match t.checked_sub(start.elapsed()) {
                Some(left) if !left.is_zero() => left.min(SLICE),
                _ => break,
            },
            None => SLICE,
        };
        if w.reader.wait_for_version_change(w.version, wait) != w.version {
            let (payload, version) = read_payload(&w.reader)?;
            report_change(&mut out, s.json, &w, &payload, version)?;
            w.payload = payload;
            w.version = version;
            seen += 1;
            if s.count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
        // Superseded first: a file being replaced is locked by the replacing process for a
        // moment, which the liveness probe below would report as a writer starting.
        let superseded = w.superseded || w.reader.superseded();
        if !superseded {
            let alive = w.reader.writer_alive();
            let pid = if alive { current_pid(&w) } else { w.pid };
            // A writer that exited and a new one that started within one wake show as a new pid.
            let exited = w.alive && (!alive || pid != w.pid);
            let started = alive && (!w.alive || pid != w.pid);
            if exited {
                writer_event(&mut out, s.json, &w.reader, "exited", w.pid)?;
            }
            if started {
                writer_event(&mut out, s.json, &w.reader, "started", pid)?;
            }
            w.alive = alive;
            w.pid = pid;
        }
        if !w.superseded && superseded {
            w.superseded = true;
            if s.json {
                json::line(&w.reader, &mut out, &Event::Superseded)?;
            } else {
                writeln!(
                    out,
                    "superseded: a newer file has replaced {shown}; following it"
                )?;
            }
        }
        if w.superseded {
            // The flag is set once the new file stands at the path; reopen when the path names
            // a file with another nonce (until then, keep watching the old one).
            if let Some(new) = reopen(path, opts, &w)? {
                w = new;
                banner(
                    &mut out,
                    s.json,
                    "reopened",
                    &format!("reopened {shown}"),
                    &w,
                )?;
                if !s.json {
                    fields_table(&w.reader, &w.payload, &mut out)?;
                }
            }
        }
        out.flush()?;
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

/// The pid of the writer holding the lock. A writer takes the lock and then records its pid, so
/// right after a new writer appears the old pid may still be there: give it a few ms.
fn current_pid(w: &Watched) -> Option<u32> {
    let mut pid = w.reader.writer_pid();
    if w.alive {
        return pid;
    }
    for _ in 0..10 {
        if pid != w.pid {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        pid = w.reader.writer_pid();
    }
    pid
}

fn writer_event(
    out: &mut impl Write,
    json: bool,
    r: &RawReader,
    what: &str,
    pid: Option<u32>,
) -> Result<(), Exit> {
    if json {
        let event = if what == "exited" {
            Event::WriterExited { pid }
        } else {
            Event::WriterStarted { pid }
        };
        json::line(r, out, &event)?;
    } else {
        let who = pid.map_or("writer".to_string(), |p| format!("writer pid {p}"));
        writeln!(out, "{who} {what}")?;
    }
    Ok(())
}

/// The file now at `path`, if it is not the one being watched. A path briefly missing is
/// retried on the next wake; a file that cannot be used ends the watch with its error.
fn reopen(path: &Path, opts: &OpenOptions, w: &Watched) -> Result<Option<Watched>, Exit> {
    match RawReader::open_with(path, opts) {
        Ok(r) if r.header().nonce == w.reader.header().nonce => Ok(None),
        Ok(_) => Watched::open(path, opts).map(Some),
        Err(mapped_state::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
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
    w: &Watched,
    new: &[u8],
    version: u64,
) -> Result<(), Exit> {
    let r = &w.reader;
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
            live: json::Live::of(r, version, w.pid, w.alive),
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
fn json_full(out: &mut impl Write, event: &str, w: &Watched) -> Result<(), Exit> {
    let r = &w.reader;
    let full = json::Full {
        file: r.path().display().to_string(),
        schema: json::SchemaInfo::of(r, false),
        live: json::Live::of(r, w.version, w.pid, w.alive),
        value: mapped_state::dynamic::ValueRef::new(r.schema(), &w.payload),
    };
    let event = if event == "start" {
        Event::Start(full)
    } else {
        Event::Reopened(full)
    };
    json::line(r, out, &event)
}
