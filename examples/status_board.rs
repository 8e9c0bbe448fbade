//! A service that publishes its status counters for dashboards and operators' tools.
//!
//! ```sh
//! cargo run --release --example status_board -- /tmp/status.state 60   # publish for 60 s
//! mapped-state watch /tmp/status.state                                 # in another terminal
//! mapped-state inspect --json /tmp/status.state
//! ```
//!
//! The service pays a few nanoseconds per counter update; readers (the CLI, a dashboard exporter)
//! see a consistent set of counters whenever they look, without ever blocking the service.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use mapped_state::{CreateOptions, FixedStr, MappedState, Writer};

/// Lifecycle of the service.
#[derive(MappedState, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ServiceState {
    Starting = 0,
    Serving = 1,
    Draining = 2,
    Stopped = 3,
}

/// Latency summary over the last reporting interval.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub p50_ms: f32,
    pub p99_ms: f32,
    pub max_ms: f32,
}

/// Everything the service publishes.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[mapped_state(name = "ServiceStatus")]
pub struct ServiceStatus {
    pub state: ServiceState,
    pub healthy: bool,
    pub in_flight: u32,
    pub requests_total: u64,
    pub errors_total: u64,
    pub started_at_unix_s: u64,
    pub latency: Latency,
    /// Requests per second over the last 8 intervals, newest first.
    pub rate_history: [f32; 8],
    pub last_error: FixedStr<48>,
}

fn default_path() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let dir = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    dir.join("status_board.state")
}

/// A cheap deterministic pseudo-random sequence (xorshift), so the example needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(PathBuf::from).unwrap_or_else(default_path);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);

    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let initial = ServiceStatus {
        state: ServiceState::Starting,
        healthy: false,
        in_flight: 0,
        requests_total: 0,
        errors_total: 0,
        started_at_unix_s: started,
        latency: Latency {
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        },
        rate_history: [0.0; 8],
        last_error: FixedStr::EMPTY,
    };
    // Replace a file left by an earlier run; 0644 lets tools of other users read it.
    let mut w = Writer::create_with(
        &path,
        &initial,
        &CreateOptions::new().mode(0o644).replace(true),
    )?;
    println!("publishing status to {} for {seconds} s", path.display());
    println!("watch it with: mapped-state watch {}", path.display());

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    w.set_state(ServiceState::Serving);
    w.set_healthy(true);
    let mut tick = 0u64;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        tick += 1;
        let served = 200 + rng.next() % 300;
        let failed = u64::from(rng.next().is_multiple_of(40));
        // One atomic commit: a reader never sees the new request count with the old error count.
        w.update(|s| {
            s.requests_total += served;
            s.errors_total += failed;
            s.in_flight = (rng.next() % 64) as u32;
            let p50 = 2.0 + (rng.next() % 100) as f32 / 100.0;
            s.latency = Latency {
                p50_ms: p50,
                p99_ms: p50 * 4.0,
                max_ms: p50 * 9.0,
            };
            s.rate_history.rotate_right(1);
            s.rate_history[0] = served as f32 * 4.0;
            if failed == 1 {
                s.last_error = FixedStr::truncate(&format!("upstream timeout at tick {tick}"));
            }
            s.healthy = s.errors_total * 100 <= s.requests_total;
        });
    }
    w.set_state(ServiceState::Draining);
    std::thread::sleep(Duration::from_millis(250));
    w.update(|s| {
        s.state = ServiceState::Stopped;
        s.in_flight = 0;
    });
    let last = w.get();
    println!(
        "stopped after {} versions: {} requests, {} errors",
        w.version(),
        last.requests_total,
        last.errors_total
    );
    Ok(())
}
