//! A supervisor hands typed configuration to worker processes and changes it live.
//!
//! ```sh
//! cargo run --release --example config_reload
//! ```
//!
//! The supervisor creates the configuration file and starts two workers (this same program,
//! re-executed with `worker` as its first argument). Each worker opens the file read-only, takes
//! its initial configuration, then blocks in `Reader::updates()` and applies every change the
//! moment it is published — no polling, no signals, no parsing. The supervisor changes a few
//! settings, one commit each, and finally asks the workers to stop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mapped_state::{FixedStr, MappedState, Reader, Writer};

#[derive(MappedState, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

/// The configuration every worker runs with.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[mapped_state(name = "WorkerConfig")]
pub struct WorkerConfig {
    pub log_level: LogLevel,
    pub accept_new_jobs: bool,
    pub max_concurrency: u32,
    pub rate_limit_per_s: f64,
    pub upstream: FixedStr<64>,
    /// Set last: tells the workers to exit.
    pub shutdown: bool,
}

fn worker(path: &Path, id: u32) -> Result<(), Box<dyn std::error::Error>> {
    let config = Reader::<WorkerConfig>::open(path)?;
    let (mut current, version) = config.load_versioned()?;
    println!("worker {id}: started with v{version}: {current:?}");
    // Each wait gives up after 10 s so a worker never outlives a stuck supervisor by much.
    for update in config
        .updates_after(version)
        .timeout(Duration::from_secs(10))
    {
        let update = update?; // Err(WriterGone) if the supervisor died
        let new = update.value;
        if new.shutdown {
            println!(
                "worker {id}: v{}: shutdown requested, exiting",
                update.version
            );
            return Ok(());
        }
        if new.max_concurrency != current.max_concurrency {
            println!(
                "worker {id}: v{}: resizing pool {} -> {}",
                update.version, current.max_concurrency, new.max_concurrency
            );
        }
        if new.log_level != current.log_level {
            println!(
                "worker {id}: v{}: log level {:?} -> {:?}",
                update.version, current.log_level, new.log_level
            );
        }
        if new.upstream != current.upstream {
            println!(
                "worker {id}: v{}: reconnecting to {}",
                update.version, new.upstream
            );
        }
        if new.accept_new_jobs != current.accept_new_jobs {
            println!(
                "worker {id}: v{}: accept_new_jobs = {}",
                update.version, new.accept_new_jobs
            );
        }
        if update.skipped > 0 {
            println!(
                "worker {id}: (conflated {} intermediate versions)",
                update.skipped
            );
        }
        current = new;
    }
    Err("timed out waiting for the supervisor".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let path = PathBuf::from(&args[2]);
        let id: u32 = args[3].parse()?;
        return worker(&path, id);
    }

    let dir = std::env::temp_dir().join(format!("config-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("worker.config");
    let initial = WorkerConfig {
        log_level: LogLevel::Info,
        accept_new_jobs: true,
        max_concurrency: 8,
        rate_limit_per_s: 500.0,
        upstream: FixedStr::new("db-primary:5432")?,
        shutdown: false,
    };
    let mut w = Writer::create(&path, &initial)?;
    println!("supervisor: configuration at {}", path.display());

    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for id in 1..=2u32 {
        let mut child = Command::new(&exe)
            .arg("worker")
            .arg(&path)
            .arg(id.to_string())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().ok_or("no worker stdout")?);
        let printer = std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                println!("  {line}");
            }
        });
        workers.push((child, printer));
    }
    std::thread::sleep(Duration::from_millis(500));

    println!("supervisor: raising concurrency");
    w.set_max_concurrency(32);
    std::thread::sleep(Duration::from_millis(300));
    println!("supervisor: debugging for a while");
    w.set_log_level(LogLevel::Debug);
    std::thread::sleep(Duration::from_millis(300));
    println!("supervisor: failing over (one atomic commit of two fields)");
    w.update(|c| {
        c.upstream = FixedStr::truncate("db-replica-2:5432");
        c.accept_new_jobs = false;
    });
    std::thread::sleep(Duration::from_millis(300));
    println!("supervisor: shutting down workers");
    w.set_shutdown(true);

    for (mut child, printer) in workers {
        let status = child.wait()?;
        let _ = printer.join();
        if !status.success() {
            return Err(format!("a worker failed: {status}").into());
        }
    }
    println!(
        "supervisor: all workers exited after {} versions",
        w.version()
    );
    drop(w);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
