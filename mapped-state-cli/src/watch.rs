//! `mapped-state watch`: sleeps on the file's futex and prints each new version with the fields
//! that changed, the writer exiting or starting, and the file being replaced at its path.

use std::fmt::Write as _;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use mapped_state::{OpenOptions, RawReader};

use crate::exit::{one_line, Exit, NEGATIVE};
use crate::inspect::{
    bounded, fields_table, json_state, open, read_payload, schema_line, writer_line,
};
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
                writer_event(&mut out, s.json, "exited", w.pid)?;
            }
            if started {
                writer_event(&mut out, s.json, "started", pid)?;
            }
            w.alive = alive;
            w.pid = pid;
        }
        if !w.superseded && superseded {
            w.superseded = true;
            if s.json {
                writeln!(out, "{{\"event\":\"superseded\"}}")?;
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
        let state = json_state(r, version, w.pid, w.alive);
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
fn json_full(out: &mut impl Write, event: &str, w: &Watched) -> Result<(), Exit> {
    let r = &w.reader;
    let state = json_state(r, w.version, w.pid, w.alive);
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
