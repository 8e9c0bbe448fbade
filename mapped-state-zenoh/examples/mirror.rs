//! A writer and a remote-style reader connected through the mirror, on loopback:
//!
//! writer (`Writer<Telemetry>`) → source file → `Publisher` → zenoh (tcp/127.0.0.1) →
//! `Follower` → replica file → reader (`Reader<Telemetry>`, as on another machine).
//!
//! ```sh
//! cargo run --release --example mirror [SECONDS]
//! ```
//!
//! Ends with a summary: versions published, seen by the reader, skipped, torn (always 0), and
//! the update-to-observe latency through the mirror. Both zenoh sessions listen or connect only
//! on a loopback port, with multicast scouting off.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use mapped_state::{FixedStr, MappedState, Reader, Writer};
use mapped_state_zenoh::{
    status_path, FollowOptions, Follower, MirrorStatus, Network, PublishOptions, Publisher,
};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Telemetry {
    pub seq: u64,
    /// Wall clock of the commit, ns: the reader measures latency from it (same machine here).
    pub sent_ns: u64,
    pub rpm: u32,
    pub temperature_c: f32,
    pub samples: [f32; 16],
    pub label: FixedStr<24>,
    /// `seq` again, last: a torn copy would show two different sequence numbers.
    pub seq_check: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn value(seq: u64) -> Telemetry {
    let mut samples = [0f32; 16];
    for (i, s) in samples.iter_mut().enumerate() {
        *s = (seq as f32) + i as f32;
    }
    Telemetry {
        seq,
        sent_ns: now_ns(),
        rpm: 3000 + (seq % 500) as u32,
        temperature_c: 80.0 + (seq % 10) as f32 / 10.0,
        samples,
        label: FixedStr::try_from("engine-1").unwrap(),
        seq_check: seq,
    }
}

fn consistent(t: &Telemetry) -> bool {
    t.seq == t.seq_check
        && t.samples
            .iter()
            .enumerate()
            .all(|(i, s)| *s == (t.seq as f32) + i as f32)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = match std::env::args().nth(1) {
        None => 5.0,
        Some(s) => s.parse().map_err(|e| {
            format!("usage: mirror [SECONDS]; `{s}` is not a number of seconds: {e}")
        })?,
    };
    let dir = std::env::temp_dir().join(format!("mirror-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (source, replica) = (dir.join("engine.state"), dir.join("engine-replica.state"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let key = "example/engine";
    println!(
        "mirror {} -> {key} on {endpoint} -> {}",
        source.display(),
        replica.display()
    );

    let mut writer = Writer::<Telemetry>::create(&source, &value(0))?;
    let publisher = Publisher::spawn(
        &source,
        key,
        PublishOptions {
            network: Network::listen(&endpoint),
            ..PublishOptions::new()
        },
    )?;
    let follower = Follower::spawn(
        key,
        &replica,
        FollowOptions {
            network: Network::connect(&endpoint),
            ..FollowOptions::new()
        },
    )?;

    // The remote-style reader: only the replica's path, the ordinary API.
    let reader_thread = std::thread::spawn({
        let replica = replica.clone();
        let run_for = Duration::from_secs_f64(seconds) + Duration::from_secs(3);
        move || {
            let start = Instant::now();
            let r = loop {
                if let Ok(r) = Reader::<Telemetry>::open(&replica) {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let (mut seen, mut skipped, mut torn, mut last) = (0u64, 0u64, 0u64, None::<u64>);
            let mut latencies = Vec::new();
            let mut version = r.version();
            while start.elapsed() < run_for {
                match r
                    .raw()
                    .wait_for_update(version, Some(Duration::from_millis(200)))
                {
                    Ok(Some(_)) => {}
                    Ok(None) => continue,
                    Err(_) => break,
                }
                let (t, v) = r.load_versioned().expect("load");
                version = v;
                if !consistent(&t) {
                    torn += 1;
                    continue;
                }
                if last.is_none_or(|l| t.seq > l) {
                    skipped += last.map_or(t.seq, |l| t.seq - l - 1);
                    latencies.push(now_ns().saturating_sub(t.sent_ns));
                    seen += 1;
                    last = Some(t.seq);
                }
                if t.seq == u64::MAX {
                    break;
                }
            }
            (seen, skipped, torn, last, latencies)
        }
    });

    // The writer: 1,000 updates per second.
    let start = Instant::now();
    let mut seq = 0;
    while start.elapsed().as_secs_f64() < seconds {
        seq += 1;
        writer.publish(&value(seq));
        std::thread::sleep(Duration::from_millis(1));
    }
    let published = seq;
    let (seen, skipped, torn, last, mut lat) = reader_thread.join().unwrap();
    let status = Reader::<MirrorStatus>::open(status_path(&replica))?.load()?;
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |&ns| ns as f64 / 1000.0)
    };
    println!("summary");
    println!(
        "  versions published  {published} (writer), {} sent by the mirror",
        publisher.stats().published.load(Ordering::Relaxed)
    );
    println!(
        "  seen by the reader  {seen} (last seq {})",
        last.unwrap_or(0)
    );
    println!(
        "  skipped             {skipped} (reader), {} (mirror, status file)",
        status.skipped_total
    );
    println!(
        "  seen + skipped      {} of {} versions (0..={published})",
        seen + skipped,
        published + 1
    );
    println!("  torn                {torn}");
    println!(
        "  latency writer->replica reader  p50 {:.0} us  p99 {:.0} us  max {:.0} us",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    follower.stop()?;
    publisher.stop()?;
    drop(writer);
    let _ = std::fs::remove_dir_all(&dir);
    if torn != 0 || last != Some(published) || seen + skipped != published + 1 {
        return Err("torn values, or the newest value never arrived".into());
    }
    Ok(())
}
