//! A dependency-free fuzzer over the whole open -> validate -> decode -> render path: mutates
//! hostile and valid state files (bytes and structure), runs every way of reading each through
//! the library and the CLI's renderers, and counts panics, refusals and costs.
//!
//! Runs on stable Rust (no libFuzzer). The includer declares `corpus` and `telemetry` beside
//! this module and owns the global allocator, which it lends through [`Probe`].

// Each includer uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mapped_state::format::{off, Header};
use mapped_state::manifest::Type;
use mapped_state::schema::fnv1a64;
use mapped_state::{dynamic, Error, MappedState, OpenOptions, RawReader, RawWriter, Reader};

use super::corpus;
use super::telemetry::Telemetry;

/// SplitMix64: small, fast and reproducible from one seed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Heap measurement lent by the includer's counting allocator.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Starts a measurement.
    pub reset: fn(),
    /// Peak heap bytes since the last reset, beyond what was live at it.
    pub peak: fn() -> usize,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Stats {
    pub inputs: u64,
    /// Inputs every opener accepted and that rendered.
    pub opened: u64,
    /// Refusals by error kind.
    pub refused: BTreeMap<String, u64>,
    /// Inputs that panicked, saved under these paths.
    pub panics: Vec<PathBuf>,
    /// The slowest input (all operations on it, in thread CPU time) and its index.
    pub slowest: (Duration, u64),
    /// The highest peak heap of one input, the file's length then, and the worst excess over
    /// 16 times the file.
    pub peak: (usize, usize),
    pub worst_excess: i64,
}

/// Valid files of several types, plus the hand-made hostile ones: what mutation starts from.
pub fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = corpus::seeds().into_iter().map(|h| h.bytes).collect();
    let path = dir.join("seed.state");
    let mut valid = |write: &dyn Fn(&Path)| {
        let _ = std::fs::remove_file(&path);
        write(&path);
        out.push(std::fs::read(&path).expect("read a seed"));
    };
    valid(&|p| drop(mapped_state::Writer::create(p, &telemetry()).expect("seed")));
    valid(&|p| drop(mapped_state::Writer::create(p, &[u128::MAX, 7]).expect("seed")));
    valid(&|p| drop(mapped_state::Writer::create(p, &['x', 'é', '\u{10ffff}']).expect("seed")));
    valid(&|p| drop(mapped_state::Writer::create(p, &[[true, false]; 3]).expect("seed")));
    let _ = std::fs::remove_file(&path);
    out
}

fn telemetry() -> Telemetry {
    use super::telemetry::{Limits, Mode};
    Telemetry {
        rpm: 3100,
        temperature_c: 81.5,
        uptime_s: 99,
        mode: Mode::Running,
        healthy: true,
        grade: 'B',
        samples: [0.5; 8],
        limits: Limits {
            min_rpm: 800,
            max_rpm: 7200,
        },
        label: mapped_state::FixedStr::new("engine-1").expect("fits"),
    }
}

const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    7,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0xffff_fffe,
    1 << 30,
    u64::MAX,
];

fn get64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    if let Some(w) = b.get_mut(at..at + 8) {
        w.copy_from_slice(&v.to_ne_bytes());
    }
}

/// Where the manifest of `b` starts, by its header (clamped into the file).
fn manifest_start(b: &[u8]) -> usize {
    (get64(b, off::MANIFEST_OFFSET) as usize).min(b.len())
}

/// A position to mutate: mostly in the manifest, where hostile structure lives.
fn position(rng: &mut Rng, b: &[u8]) -> usize {
    let m = manifest_start(b);
    match rng.below(10) {
        0..=5 if m < b.len() => m + rng.below(b.len() - m),
        6..=7 if m > 256 => 256 + rng.below(m - 256),
        _ => rng.below(b.len().max(1)),
    }
}

/// One random change to `b`.
fn mutate_once(rng: &mut Rng, b: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    if b.is_empty() {
        b.push(0);
    }
    let at = position(rng, b);
    match rng.below(11) {
        0 => b[at] ^= 1 << rng.below(8),
        1 => b[at] = rng.next() as u8,
        2 => {
            let v = INTERESTING[rng.below(INTERESTING.len())] as u32;
            let end = (at + 4).min(b.len());
            b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
        3 => {
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let end = (at + 8).min(b.len());
            b[at..end].copy_from_slice(&v.to_ne_bytes()[..end - at]);
        }
        4 => {
            let n = 1 + rng.below(16);
            let chunk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(at..at, chunk);
        }
        5 => {
            let n = (1 + rng.below(16)).min(b.len() - at);
            b.drain(at..at + n);
        }
        6 => {
            // Repeat a stretch of the file: copies a subtree or a field list of the manifest.
            let n = (1 + rng.below(64)).min(b.len() - at);
            let chunk = b[at..at + n].to_vec();
            let to = position(rng, b);
            b.splice(to..to, chunk);
        }
        7 => b.truncate(at),
        8 => {
            // Another seed's manifest: a type that does not match the payload or header.
            let other = &seeds[rng.below(seeds.len())];
            let m = manifest_start(other);
            let start = manifest_start(b);
            b.truncate(start);
            b.extend_from_slice(&other[m..]);
        }
        9 => {
            // A header field set to an interesting value.
            let field = 8 * (3 + rng.below(10));
            put64(b, field, INTERESTING[rng.below(INTERESTING.len())]);
        }
        _ => {
            let v = rng.next();
            let end = (at + 8).min(b.len());
            b[at..end].copy_from_slice(&v.to_ne_bytes()[..end - at]);
        }
    }
}

/// Makes the header agree with a mutated manifest, so mutations reach the checks behind the
/// hash and checksum: either only the length, hash and checksum fields (`fix`), or a new file
/// laid out for the size and alignment the manifest states (`rebuild`).
fn reseal(rng: &mut Rng, b: &mut Vec<u8>) {
    let m = manifest_start(b);
    if m < 256 || m >= b.len() {
        return;
    }
    let manifest = b[m..].to_vec();
    if rng.chance(2) && manifest.len() >= 13 {
        let size = u32::from_le_bytes(manifest[5..9].try_into().expect("4 bytes")) as usize;
        let align = u32::from_le_bytes(manifest[9..13].try_into().expect("4 bytes")) as usize;
        // Files up to 4 MiB: bigger payloads are legal but make every input slow.
        let h = Header::for_payload(fnv1a64(&manifest), size, align, 2, manifest.len(), 7);
        if h.is_some_and(|h| h.file_len <= 4 << 20) {
            let old = &b[256..m.min(256 + size)];
            let mut payload = vec![0u8; size];
            payload[..old.len()].copy_from_slice(old);
            *b = corpus::state_file(&manifest, &payload);
            return;
        }
    }
    put64(b, off::MANIFEST_LEN, manifest.len() as u64);
    let len = b.len() as u64;
    put64(b, off::FILE_LEN, len);
    put64(b, off::SCHEMA_HASH, fnv1a64(&manifest));
    let sum = fnv1a64(&b[..off::CHECKSUM]);
    put64(b, off::CHECKSUM, sum);
}

/// A new input derived from the seeds.
pub fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut b, seeds);
    }
    if !rng.chance(4) {
        reseal(rng, &mut b);
    }
    b
}

/// Every way of reading `path`: the untyped reader, validation, the value tree, the CLI's text
/// and JSON reports, diffs against known types, the typed reader and the writer's open.
/// Returns whether the file was accepted.
pub fn exercise(path: &Path) -> Result<(), Error> {
    let opts = OpenOptions::new();
    let r = RawReader::open_with(path, &opts)?;
    let (payload, _) = r.snapshot()?;
    let valid = dynamic::validate(r.schema(), &payload);
    let decoded = dynamic::decode(r.schema(), &payload);
    if let (Ok(v), Err(e)) = (&decoded, &valid) {
        panic!("decode accepted what validate refused ({e}): {v:?}");
    }
    for json in [false, true] {
        let _ = mapped_state_cli::inspect::report(path, &opts, json, &mut std::io::sink());
    }
    let known = [
        Type::from_desc(Telemetry::TYPE),
        Type::from_desc(<[u64; 4]>::TYPE),
    ];
    for k in &known {
        let d = r.schema().diff(k);
        let back = k.diff(r.schema());
        assert!(d.len() <= mapped_state::manifest::MAX_DIFFERENCES + 1);
        assert!(back.len() <= mapped_state::manifest::MAX_DIFFERENCES + 1);
    }
    let _ = r.schema().diff(r.schema());
    let _ = Reader::<Telemetry>::open_with(path, &opts).map(|t| t.load());
    drop(r);
    let _ = RawWriter::open(path, &opts);
    valid.map_err(|source| Error::InvalidValue {
        path: path.to_owned(),
        source,
    })
}

/// A short name for an error's kind, for the refusal table.
fn kind(e: &Error) -> String {
    let d = format!("{e:?}");
    d.split([' ', '{', '(']).next().unwrap_or("?").to_owned()
}

/// CPU time of this thread: unlike wall time, not inflated when other processes share the
/// cores, so the slowest input is slow for what it is.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Runs `n` inputs from `seed` in `dir`, calling `progress` every 10,000 inputs.
pub fn run(n: u64, seed: u64, dir: &Path, probe: Probe, progress: &mut dyn FnMut(&Stats)) -> Stats {
    let seeds = seeds(dir);
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let path = dir.join("input.state");
    for i in 0..n {
        let bytes = input(&mut rng, &seeds);
        std::fs::write(&path, &bytes).expect("write the input");
        (probe.reset)();
        let t = cpu_time();
        let outcome = catch_unwind(AssertUnwindSafe(|| exercise(&path)));
        let took = cpu_time().saturating_sub(t);
        let peak = (probe.peak)();
        stats.inputs += 1;
        if took > stats.slowest.0 {
            stats.slowest = (took, i);
            // Kept for a look at what is slow (the includer removes the directory on success).
            let _ = std::fs::write(dir.join("slowest.state"), &bytes);
        }
        if peak > stats.peak.0 {
            stats.peak = (peak, bytes.len());
        }
        stats.worst_excess = stats
            .worst_excess
            .max(peak as i64 - 16 * bytes.len() as i64);
        match outcome {
            Ok(Ok(())) => stats.opened += 1,
            Ok(Err(e)) => *stats.refused.entry(kind(&e)).or_default() += 1,
            Err(_) => {
                let saved = dir.join(format!("panic-{seed}-{i}.state"));
                std::fs::write(&saved, &bytes).expect("save the input");
                stats.panics.push(saved);
            }
        }
        if (i + 1) % 10_000 == 0 {
            progress(&stats);
        }
    }
    stats
}
