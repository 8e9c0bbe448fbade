//! Every JSON object the CLI prints, as serde types written by `serde_json`: `inspect --json`
//! and each `watch --json` event. Nothing else in the CLI writes JSON. Values are serialized
//! straight from the payload bytes ([`ValueRef`]) in the form `--help` documents.

use std::io;

use mapped_state::dynamic::ValueRef;
use mapped_state::manifest::Type;
use mapped_state::RawReader;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::exit::Exit;
use crate::render;

/// `"writer":{"pid":N|null,"alive":B}`.
#[derive(Debug, Serialize)]
pub struct WriterInfo {
    pub pid: Option<u32>,
    pub alive: bool,
}

/// `"schema":{"name":..,"hash":"0x..",("size":N,"align":N)}`.
#[derive(Debug, Serialize)]
pub struct SchemaInfo {
    pub name: String,
    /// `0x` and 16 hex digits, as `check --schema-hash` takes it.
    pub hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub align: Option<u64>,
}

impl SchemaInfo {
    /// Name and hash; with `layout`, also the payload's size and alignment.
    pub fn of(r: &RawReader, layout: bool) -> Self {
        let h = r.header();
        SchemaInfo {
            name: r.schema().name(),
            hash: format!("{:#018x}", h.schema_hash),
            size: layout.then_some(h.payload_size),
            align: layout.then_some(h.payload_align),
        }
    }
}

/// What is known of the file now: who writes it, which version it holds and how old that is.
#[derive(Debug, Serialize)]
pub struct Live {
    pub writer: WriterInfo,
    pub version: u64,
    /// RFC 3339 UTC.
    pub last_commit: String,
    pub age_s: f64,
    pub superseded: bool,
}

impl Live {
    pub fn of(r: &RawReader, version: u64, pid: Option<u32>, alive: bool) -> Self {
        Live {
            writer: WriterInfo { pid, alive },
            version,
            last_commit: render::timestamp(r.last_commit()),
            age_s: r.age().as_secs_f64(),
            superseded: r.superseded(),
        }
    }
}

/// `inspect --json`.
#[derive(Debug, Serialize)]
pub struct Inspect<'a> {
    pub file: String,
    pub format_version: u32,
    pub file_size: u64,
    pub slots: u64,
    pub schema: SchemaInfo,
    #[serde(flatten)]
    pub live: Live,
    pub value: ValueRef<'a>,
}

/// `watch --json`: one object per line, told apart by `"event"`.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// Nothing is at the path yet: the watch waits for a file to appear there.
    Waiting {
        file: String,
    },
    /// The watch is armed: the whole state.
    Start(Full<'a>),
    /// A new version, the fields that changed and the whole new value.
    Version(Version<'a>),
    WriterExited {
        pid: Option<u32>,
    },
    WriterStarted {
        pid: Option<u32>,
    },
    /// A newer file replaced this one at its path; a `reopened` event follows once it is open.
    Superseded,
    /// The newer file at the path, opened: its whole state.
    Reopened(Full<'a>),
}

/// The whole state of a watched file.
#[derive(Debug, Serialize)]
pub struct Full<'a> {
    pub file: String,
    pub schema: SchemaInfo,
    #[serde(flatten)]
    pub live: Live,
    pub value: ValueRef<'a>,
}

/// A new version (its number is in `live`, once).
#[derive(Debug, Serialize)]
pub struct Version<'a> {
    pub not_seen: u64,
    pub changes: Changes<'a>,
    #[serde(flatten)]
    pub live: Live,
    pub value: ValueRef<'a>,
}

/// One changed leaf: where it is in the payload and its key in `changes`.
#[derive(Debug)]
pub struct Changed<'t> {
    /// The leaf's path as a JSON key ([`render::key_string`]): distinct leaves have distinct keys.
    pub key: String,
    pub ty: &'t Type,
    pub offset: usize,
}

impl<'t> Changed<'t> {
    /// The leaf's value in `payload`.
    fn value<'b>(&self, payload: &'b [u8]) -> ValueRef<'b>
    where
        't: 'b,
    {
        let bytes = self
            .offset
            .checked_add(self.ty.size)
            .and_then(|end| payload.get(self.offset..end))
            .unwrap_or(&[]);
        ValueRef::new(self.ty, bytes)
    }
}

/// `"changes":{"path":{"old":..,"new":..},...}`, rendered from the two payloads.
#[derive(Debug)]
pub struct Changes<'a> {
    pub list: &'a [Changed<'a>],
    pub old: &'a [u8],
    pub new: &'a [u8],
}

/// `{"old":..,"new":..}`.
#[derive(Serialize)]
struct OldNew<'a> {
    old: ValueRef<'a>,
    new: ValueRef<'a>,
}

impl Serialize for Changes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.list.len()))?;
        for c in self.list {
            let (old, new) = (c.value(self.old), c.value(self.new));
            map.serialize_entry(&c.key, &OldNew { old, new })?;
        }
        map.end()
    }
}

/// An `io::Write` that keeps nothing and refuses to pass `left` bytes: measures JSON output
/// against the budget without storing it.
struct CountCap {
    left: usize,
}

impl io::Write for CountCap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.left {
            return Err(io::Error::other("output budget exceeded"));
        }
        self.left -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `value`, as one line of JSON and its newline, fits in `budget` bytes: serialized
/// only counting, nothing kept.
pub fn fits(value: &impl Serialize, budget: usize) -> Result<(), serde_json::Error> {
    let mut count = CountCap {
        left: budget.saturating_sub(1),
    };
    serde_json::to_writer(&mut count, value)
}

/// Writes `value` as one line of JSON to `out`, if it fits the file's output budget; otherwise
/// writes nothing and gives the `too_large` error. The value is serialized twice, first only
/// counting, so that neither a cut-off document (it would not parse) nor a buffer of the whole
/// output is needed.
pub fn line(r: &RawReader, out: &mut dyn io::Write, value: &impl Serialize) -> Result<(), Exit> {
    let budget = render::output_budget(r.header().file_len);
    if fits(value, budget).is_err() {
        return Err(crate::inspect::too_large(r, "JSON rendering"));
    }
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}
