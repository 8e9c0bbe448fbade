//! Benchmark of the mirror on loopback, against zenoh's own pub/sub of the same bytes (the
//! floor: what any mirror over zenoh pays).
//!
//! ```sh
//! cargo run --release -p mapped-state-zenoh --example mirror_bench [ROUNDS] [SECONDS]
//! ```
//!
//! - latency: one update at a time, update-to-observe (writer commit → replica reader sees it;
//!   floor: `put` → subscriber callback), p50 / p99 over ROUNDS (default 2000) rounds;
//! - versions/s: the writer commits flat out for SECONDS (default 2); distinct versions the
//!   replica reader observes per second (the mirror conflates: newest wins), and for the floor
//!   values a subscriber receives per second from a `put` loop (congestion control Block).
//!
//! Payloads of 64 B and 4 KiB. Everything runs in this process: two zenoh sessions on a
//! loopback port, multicast scouting off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mapped_state::{MappedState, Reader, Writer};
use mapped_state_zenoh::zenoh::{self, Wait};
use mapped_state_zenoh::{FollowOptions, Follower, Network, PublishOptions, Publisher};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Small {
    pub seq: u64,
    pub sent_ns: u64,
    pub rest: [u64; 6],
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Large {
    pub seq: u64,
    pub sent_ns: u64,
    pub rest: [u64; 510],
}

trait Payload: MappedState + mapped_state::Fields + Copy + Send + 'static {
    const NAME: &'static str;
    fn make(seq: u64, sent_ns: u64) -> Self;
    fn seq(&self) -> u64;
    fn sent(&self) -> u64;
}

impl Payload for Small {
    const NAME: &'static str = "64 B";
    fn make(seq: u64, sent_ns: u64) -> Self {
        Small {
            seq,
            sent_ns,
            rest: [seq; 6],
        }
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn sent(&self) -> u64 {
        self.sent_ns
    }
}

impl Payload for Large {
    const NAME: &'static str = "4 KiB";
    fn make(seq: u64, sent_ns: u64) -> Self {
        Large {
            seq,
            sent_ns,
            rest: [seq; 510],
        }
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn sent(&self) -> u64 {
        self.sent_ns
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0
}

struct Row {
    p50: f64,
    p99: f64,
    per_s: f64,
}

fn mirror<T: Payload>(rounds: u64, secs: f64) -> Row {
    let dir = std::env::temp_dir().join(format!(
        "mirror-bench-{}-{}",
        std::process::id(),
        std::mem::size_of::<T>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (source, replica) = (dir.join("s.state"), dir.join("r.state"));
    let ep = format!("tcp/127.0.0.1:{}", port());
    let key = format!("bench/mirror/{}", std::mem::size_of::<T>());
    let base = Instant::now();
    let ns = move || base.elapsed().as_nanos() as u64;
    let mut w = Writer::<T>::create(&source, &T::make(0, ns())).unwrap();
    let p = Publisher::spawn(
        &source,
        &key,
        PublishOptions {
            network: Network::listen(&ep),
            ..PublishOptions::new()
        },
    )
    .unwrap();
    let f = Follower::spawn(
        &key,
        &replica,
        FollowOptions {
            network: Network::connect(&ep),
            ..FollowOptions::new()
        },
    )
    .unwrap();
    let r = loop {
        if let Ok(r) = Reader::<T>::open(&replica) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Warm up until the stream flows.
    let mut seq = 0;
    let wait_for = |r: &Reader<T>, seq: u64| -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (v, ver) = r.load_versioned().unwrap();
            if v.seq() >= seq {
                return v;
            }
            assert!(Instant::now() < deadline, "value {seq} never arrived");
            let _ = r
                .raw()
                .wait_for_update(ver, Some(Duration::from_millis(100)));
        }
    };
    for _ in 0..50 {
        seq += 1;
        w.publish(&T::make(seq, ns()));
        wait_for(&r, seq);
    }
    let mut lat = Vec::new();
    for _ in 0..rounds {
        seq += 1;
        w.publish(&T::make(seq, ns()));
        let v = wait_for(&r, seq);
        lat.push(ns() - v.sent());
    }
    // Throughput: the writer flat out on a thread, the reader counting distinct versions.
    let stop = Arc::new(AtomicU64::new(0));
    // The flat-out writer runs on its own thread: it takes the file over there.
    drop(w);
    let writer = std::thread::spawn({
        let stop = stop.clone();
        let source = source.clone();
        move || {
            let mut w = Writer::<T>::open(&source).unwrap();
            let mut s = seq;
            while stop.load(Ordering::Relaxed) == 0 {
                s += 1;
                w.publish(&T::make(s, 0));
            }
            s
        }
    });
    let start = Instant::now();
    let (mut seen, mut last) = (0u64, seq);
    let mut ver = r.version();
    while start.elapsed().as_secs_f64() < secs {
        let _ = r
            .raw()
            .wait_for_update(ver, Some(Duration::from_millis(50)));
        let (v, nv) = r.load_versioned().unwrap();
        ver = nv;
        if v.seq() > last {
            seen += 1;
            last = v.seq();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(1, Ordering::Relaxed);
    let _ = writer.join();
    f.stop().unwrap();
    p.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Row {
        p50: pct(&mut lat, 0.5),
        p99: pct(&mut lat, 0.99),
        per_s: seen as f64 / elapsed,
    }
}

fn floor<T: Payload>(rounds: u64, secs: f64) -> Row {
    let ep = format!("tcp/127.0.0.1:{}", port());
    let key = format!("bench/floor/{}", std::mem::size_of::<T>());
    let a = zenoh::open(Network::listen(&ep).zenoh_config().unwrap())
        .wait()
        .unwrap();
    let b = zenoh::open(Network::connect(&ep).zenoh_config().unwrap())
        .wait()
        .unwrap();
    let base = Instant::now();
    let ns = move || base.elapsed().as_nanos() as u64;
    let got = Arc::new(AtomicU64::new(0));
    let lat_sum: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let _sub = {
        let got = got.clone();
        b.declare_subscriber(&key)
            .callback(move |s| {
                let bytes = s.payload().to_bytes();
                let seq = u64::from_ne_bytes(bytes[0..8].try_into().unwrap());
                let sent = u64::from_ne_bytes(bytes[8..16].try_into().unwrap());
                got.fetch_add(1, Ordering::Relaxed);
                if sent != 0 {
                    let _ = tx.send(ns() - sent);
                }
                let _ = seq;
            })
            .wait()
            .unwrap()
    };
    let publisher = a
        .declare_publisher(&key)
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .express(true)
        .wait()
        .unwrap();
    let bytes = |seq: u64, sent: u64| {
        let mut v = vec![0u8; std::mem::size_of::<T>()];
        v[0..8].copy_from_slice(&seq.to_ne_bytes());
        v[8..16].copy_from_slice(&sent.to_ne_bytes());
        v
    };
    // Until the subscriber is matched.
    loop {
        publisher.put(bytes(0, ns())).wait().unwrap();
        if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
            break;
        }
    }
    for _ in 0..50 {
        publisher.put(bytes(0, ns())).wait().unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    let mut lat = Vec::new();
    for i in 0..rounds {
        publisher.put(bytes(i, ns())).wait().unwrap();
        lat.push(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
    drop(lat_sum);
    let before = got.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed().as_secs_f64() < secs {
        i += 1;
        publisher.put(bytes(i, 0)).wait().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let per_s = (got.load(Ordering::Relaxed) - before) as f64 / elapsed;
    drop(publisher);
    let _ = a.close().wait();
    let _ = b.close().wait();
    Row {
        p50: pct(&mut lat, 0.5),
        p99: pct(&mut lat, 0.99),
        per_s,
    }
}

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .map_or(2000, |s| s.parse().expect("ROUNDS"));
    let secs: f64 = std::env::args()
        .nth(2)
        .map_or(2.0, |s| s.parse().expect("SECONDS"));
    println!("| payload | path | latency p50 | latency p99 | versions/s observed |");
    println!("|---|---|---|---|---|");
    fn both<T: Payload>(rounds: u64, secs: f64) {
        let m = mirror::<T>(rounds, secs);
        let f = floor::<T>(rounds, secs);
        println!("| {} | mirror: writer → publish → follow → replica reader | {:.0} µs | {:.0} µs | {:.0} |", T::NAME, m.p50, m.p99, m.per_s);
        println!(
            "| {} | floor: zenoh `put` → subscriber callback | {:.0} µs | {:.0} µs | {:.0} |",
            T::NAME,
            f.p50,
            f.p99,
            f.per_s
        );
        println!(
            "| {} | mirror ÷ floor | {:.2}× | {:.2}× | {:.2}× |",
            T::NAME,
            m.p50 / f.p50,
            m.p99 / f.p99,
            m.per_s / f.per_s
        );
    }
    both::<Small>(rounds, secs);
    both::<Large>(rounds, secs);
}
