//! `mapped-state record`, `replay`, and `inspect` of a log: a state file's versions appended to
//! a log of their own, re-published into a new state file, and printed by field name.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use mapped_state::record::{
    replay as replay_log, LogError, LogReader, LogSummary, RecordLimits, Recorder, ReplayOptions,
    Speed, TornTail, LOG_VERSION,
};
use mapped_state::{CreateOptions, OpenOptions, RawReader};

use crate::exit::{one_line, Exit, INVALID, IO};
use crate::inspect::schema_line;
use crate::render::{self, Capped, IoText};

impl From<LogError> for Exit {
    fn from(e: LogError) -> Self {
        match e {
            LogError::State(e) => Exit::from(e),
            // The log could not be reached or read; its contents were not judged.
            LogError::Io { ref path, .. } => Exit::about(IO, path, strip_path(&e, path)),
            ref other => {
                let path = log_path(other).to_owned();
                Exit::about(INVALID, &path, strip_path(other, &path))
            }
        }
    }
}

/// The path every non-`State` log error names.
fn log_path(e: &LogError) -> &Path {
    match e {
        LogError::Io { path, .. }
        | LogError::NotALog { path, .. }
        | LogError::UnsupportedVersion { path, .. }
        | LogError::ForeignEndian { path, .. }
        | LogError::TruncatedHeader { path, .. }
        | LogError::CorruptHeader { path, .. }
        | LogError::CorruptManifest { path, .. }
        | LogError::CorruptRecord { path, .. }
        | LogError::InvalidValue { path, .. }
        | LogError::TornTail { path, .. }
        | LogError::Unfinished { path, .. }
        | LogError::TrailingBytes { path, .. } => path,
        _ => Path::new("log"),
    }
}

/// The error's message without its leading `path: ` (`Exit::about` puts it back).
fn strip_path(e: &LogError, path: &Path) -> String {
    let m = e.to_string();
    let prefix = format!("{}: ", path.display());
    m.strip_prefix(&prefix).map(str::to_owned).unwrap_or(m)
}

/// Whether `path` is a log (starts with its magic) rather than a state file.
pub fn is_log(path: &Path) -> bool {
    LogReader::is_log(path)
}

/// `mapped-state record FILE --out LOG`: prints a line once the first version is in the log,
/// and one when the recording ends.
pub fn record(
    file: &Path,
    opts: &OpenOptions,
    log: &Path,
    limits: &RecordLimits,
) -> Result<(), Exit> {
    let reader = RawReader::open_with(file, opts)?;
    let what = schema_line(&reader);
    let mut rec = Recorder::create(reader, log)?;
    rec.capture()?;
    rec.flush()?;
    let mut out = std::io::stdout().lock();
    let first = rec.summary().first_version.unwrap_or(0);
    writeln!(
        out,
        "recording {} ({what}) from version {first} into {}",
        one_line(&file.display().to_string()),
        one_line(&log.display().to_string())
    )?;
    out.flush()?;
    let s = rec.run(limits)?;
    writeln!(out, "{}", summary_line("recorded", &s))?;
    out.flush()?;
    Ok(())
}

/// `5 versions (3 ..= 7), 0 skipped; ended: the writer is gone`.
fn summary_line(verb: &str, s: &LogSummary) -> String {
    let versions = match (s.first_version, s.last_version) {
        (Some(a), Some(b)) => format!(" ({a} ..= {b})"),
        _ => String::new(),
    };
    let end = s
        .reason
        .map_or(String::new(), |r| format!("; ended: {}", r.describe()));
    format!(
        "{verb} {} {}{versions}, {} skipped{end}",
        s.records,
        plural(s.records, "version"),
        s.skipped
    )
}

/// `mapped-state replay LOG --to FILE`: prints one line when done (and a note on stderr for a
/// log that did not finish).
pub fn replay(log: &Path, to: &Path, speed: Speed, replace: bool) -> Result<(), Exit> {
    let opts = ReplayOptions::new()
        .speed(speed)
        .create(CreateOptions::new().replace(replace));
    let s = replay_log(log, to, &opts)?;
    if let Some(t) = s.torn_tail {
        eprintln!(
            "mapped-state: {}: note: {}",
            one_line(&log.display().to_string()),
            torn_text(t)
        );
    } else if s.end.is_none() {
        eprintln!(
            "mapped-state: {}: note: the log has no end record (its recorder did not finish); replayed the {} records it holds",
            one_line(&log.display().to_string()),
            s.records
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "replayed {} {} (recorded versions {} ..= {}) into {} as versions 0 ..= {} in {}",
        s.records,
        plural(s.records, "record"),
        s.recorded_versions.0,
        s.recorded_versions.1,
        one_line(&to.display().to_string()),
        s.last_version,
        render::duration(s.elapsed)
    )?;
    out.flush()?;
    Ok(())
}

/// `word`, with an `s` unless `n` is 1.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

fn torn_text(t: TornTail) -> String {
    format!(
        "torn tail: the last record, at byte {}, has {} of its {} bytes (its recorder was killed while writing it, or is still writing); it is ignored",
        t.offset, t.have, t.need
    )
}

fn time(ns: u64) -> String {
    render::timestamp(SystemTime::UNIX_EPOCH + Duration::from_nanos(ns))
}

/// Reads the whole log once, validating every record: the totals, and the error (before
/// anything is printed) of a log that is bad anywhere.
fn survey(path: &Path) -> Result<(LogReader, LogSummary, Option<TornTail>), Exit> {
    let mut log = LogReader::open(path)?;
    for r in log.by_ref() {
        r?;
    }
    let (summary, torn) = (log.summary(), log.torn_tail());
    Ok((log, summary, torn))
}

/// `inspect LOG`: the header, the totals, how the recording ended, and every record's value by
/// field name (text, cut off at the output budget; or one JSON object, refused if larger).
pub fn inspect(path: &Path, json: bool) -> Result<(), Exit> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    report(path, json, &mut out)?;
    out.flush()?;
    Ok(())
}

/// What `inspect LOG` prints, to `out`.
pub fn report(path: &Path, json: bool, out: &mut dyn Write) -> Result<(), Exit> {
    let (log, summary, torn) = survey(path)?;
    let budget = render::output_budget(log.len());
    if json {
        // Counted first, then written: never a cut-off document, never the whole in memory.
        let doc = json_report(path, &log, &summary, torn);
        if crate::json::fits(&doc, budget).is_err() {
            return Err(Exit::about(
                INVALID,
                path,
                format!(
                    "its JSON rendering would exceed {budget} bytes ({} times the log's size, plus 64 KiB): the manifest repeats very long names or very many empty values",
                    render::OUTPUT_PER_BYTE
                ),
            ));
        }
        serde_json::to_writer(&mut *out, &doc).map_err(|e| {
            if e.is_io() {
                Exit::from(std::io::Error::from(e))
            } else {
                Exit::about(
                    INVALID,
                    path,
                    format!("the log changed while it was read: {e}"),
                )
            }
        })?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    text_report(path, &log, &summary, torn, out, budget)
}

fn text_report(
    path: &Path,
    log: &LogReader,
    summary: &LogSummary,
    torn: Option<TornTail>,
    out: &mut dyn Write,
    budget: usize,
) -> Result<(), Exit> {
    let h = log.header();
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<10}{v}\n"));
    line("file", one_line(&path.display().to_string()));
    line(
        "format",
        format!(
            "mapped-state log, version {LOG_VERSION}, native-endian, {} bytes",
            log.len()
        ),
    );
    line(
        "schema",
        format!(
            "{} (hash {:#018x})",
            render::type_name(h.schema()),
            h.schema_hash
        ),
    );
    line(
        "payload",
        format!("{} bytes, align {}", h.payload_size, h.payload_align),
    );
    line(
        "source",
        format!(
            "a ring of {} slots, file nonce {:#018x}",
            h.source_slots, h.source_nonce
        ),
    );
    line("started", time(h.started_ns));
    let versions = match (summary.first_version, summary.last_version) {
        (Some(a), Some(b)) => format!(", versions {a} ..= {b}"),
        _ => String::new(),
    };
    line(
        "records",
        format!("{}{versions}, {} skipped", summary.records, summary.skipped),
    );
    line("end", end_text(summary, torn));
    out.write_all(s.as_bytes())?;

    let mut sink = Capped::new(IoText { out, error: None }, budget);
    let mut log = LogReader::open(path)?;
    let mut i = 0u64;
    let mut complete = true;
    // The records surveyed: a log still being recorded may have grown since.
    while i < summary.records {
        let Some(r) = log.next_record()? else { break };
        let head = format!(
            "record {i}: version {}, committed {}{}, skipped {}\n",
            r.version,
            render::timestamp(r.commit_time()),
            if r.from_history {
                " or earlier (read from history)"
            } else {
                ""
            },
            r.skipped
        );
        if sink.write_str(&head).is_err() {
            complete = false;
            break;
        }
        match render::table(h.schema(), &r.payload, &mut sink) {
            Ok(true) => {}
            _ => {
                complete = false;
                break;
            }
        }
        i += 1;
    }
    if let Some(e) = sink.inner.error.take() {
        return Err(e.into());
    }
    if !complete {
        writeln!(
            sink.inner.out,
            "\n  ... output stops here, at {budget} bytes ({} times the log's size, plus 64 KiB)",
            render::OUTPUT_PER_BYTE
        )?;
    }
    Ok(())
}

fn end_text(summary: &LogSummary, torn: Option<TornTail>) -> String {
    match (summary.reason, torn) {
        (Some(r), _) => format!(
            "finished {}: {}",
            summary.ended_ns.map_or(String::new(), time),
            r.describe()
        ),
        (None, Some(t)) => torn_text(t),
        (None, None) => {
            "no end record: its recorder did not finish (it was killed, or is still running)".into()
        }
    }
}

/// `inspect --json LOG`: one object, the log's header and totals and every record's value.
#[derive(serde::Serialize)]
struct LogJson<'a> {
    file: String,
    kind: &'static str,
    log_format_version: u32,
    file_size: u64,
    schema: crate::json::SchemaInfo,
    source: LogSource,
    started: String,
    records: u64,
    skipped: u64,
    first_version: Option<u64>,
    last_version: Option<u64>,
    end: Option<LogEnd>,
    torn_tail: Option<LogTorn>,
    values: LogValues<'a>,
}

#[derive(serde::Serialize)]
struct LogSource {
    slots: u64,
    nonce: String,
}

#[derive(serde::Serialize)]
struct LogEnd {
    reason: &'static str,
    at: String,
}

#[derive(serde::Serialize)]
struct LogTorn {
    offset: u64,
    have: u64,
    need: u64,
}

#[derive(serde::Serialize)]
struct LogRecordJson<'a> {
    version: u64,
    commit_time: String,
    from_history: bool,
    skipped: u64,
    value: mapped_state::dynamic::ValueRef<'a>,
}

/// The records, read from the log a second time as they are serialized (never all in memory).
struct LogValues<'a> {
    path: &'a Path,
    schema: &'a mapped_state::manifest::Type,
    records: u64,
}

impl serde::Serialize for LogValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq};
        let mut log = LogReader::open(self.path).map_err(S::Error::custom)?;
        let mut seq = s.serialize_seq(None)?;
        for _ in 0..self.records {
            let Some(r) = log.next_record().map_err(S::Error::custom)? else {
                break;
            };
            seq.serialize_element(&LogRecordJson {
                version: r.version,
                commit_time: render::timestamp(r.commit_time()),
                from_history: r.from_history,
                skipped: r.skipped,
                value: mapped_state::dynamic::ValueRef::new(self.schema, &r.payload),
            })?;
        }
        seq.end()
    }
}

fn json_report<'a>(
    path: &'a Path,
    log: &'a LogReader,
    summary: &LogSummary,
    torn: Option<TornTail>,
) -> LogJson<'a> {
    let h = log.header();
    LogJson {
        file: path.display().to_string(),
        kind: "log",
        log_format_version: LOG_VERSION,
        file_size: log.len(),
        schema: crate::json::SchemaInfo {
            name: h.schema().name(),
            hash: format!("{:#018x}", h.schema_hash),
            size: Some(h.payload_size),
            align: Some(h.payload_align),
        },
        source: LogSource {
            slots: h.source_slots,
            nonce: format!("{:#018x}", h.source_nonce),
        },
        started: time(h.started_ns),
        records: summary.records,
        skipped: summary.skipped,
        first_version: summary.first_version,
        last_version: summary.last_version,
        end: summary.reason.map(|r| LogEnd {
            reason: r.name(),
            at: summary.ended_ns.map_or(String::new(), time),
        }),
        torn_tail: torn.map(|t| LogTorn {
            offset: t.offset,
            have: t.have,
            need: t.need,
        }),
        values: LogValues {
            path,
            schema: h.schema(),
            records: summary.records,
        },
    }
}

/// `--speed X`: a factor (`2` twice as fast, `0.5` half as fast), or `0` / `max` for as fast
/// as possible.
pub fn parse_speed(s: &str) -> Result<Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    let x: f64 = s.parse().map_err(|_| {
        format!("`{s}` is not a speed: a factor such as 1, 10 or 0.5, or `max` (or 0)")
    })?;
    if x == 0.0 {
        return Ok(Speed::Max);
    }
    if !x.is_finite() || x < 0.0 {
        return Err(format!(
            "`{s}`: the speed must be a positive factor, or `max` (or 0)"
        ));
    }
    Ok(Speed::Factor(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_and_reject_nonsense() {
        assert_eq!(parse_speed("max"), Ok(Speed::Max));
        assert_eq!(parse_speed("MAX"), Ok(Speed::Max));
        assert_eq!(parse_speed("0"), Ok(Speed::Max));
        assert_eq!(parse_speed("2.5"), Ok(Speed::Factor(2.5)));
        assert_eq!(parse_speed("1"), Ok(Speed::Factor(1.0)));
        for bad in ["-1", "NaN", "inf", "fast", ""] {
            assert!(parse_speed(bad).is_err(), "{bad}");
        }
    }
}
