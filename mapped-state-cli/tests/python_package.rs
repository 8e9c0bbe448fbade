//! The Python package (`python/`, importable as `mapped_state`) tested against files the Rust
//! writer wrote: installed with `pip install ./python` into a virtual environment under
//! `target/`, then its `unittest` suite (`python/tests`) is run with environment variables naming
//! the files and the `mapped-state` binary, whose `inspect --json` output and exit codes the
//! Python side must reproduce.
//!
//! The install needs `python3` with the `venv` module (and its bundled pip) and nothing else:
//! the package's build backend is its own (`python/_build/backend.py`, standard library only),
//! so `pip install --no-index` works offline. The test lives in the CLI's crate because it
//! compares with the CLI binary (`CARGO_BIN_EXE_mapped-state`).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mapped_state::{FixedStr, MappedState, WakePolicy, Writer};

#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;

mod common;
use common::Scratch;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The virtual environment's python (`target/tmp/python-venv`), with the package freshly
/// installed by `pip install ./python`: once per test run, shared by the tests of this file.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
        let run = |cmd: &mut Command, what: &str| {
            let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
                panic!("{what}: cannot run ({e}); python3 with venv is needed")
            });
            assert!(
                out.status.success(),
                "{what} failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let python = venv.join("bin/python");
        // Creating the environment (with its pip) takes half a minute on a loaded machine:
        // kept between runs; the package is reinstalled every time. `bin/pip` is written last,
        // so an environment whose creation was interrupted is made again.
        if !venv.join("bin/pip").exists() {
            run(
                Command::new("python3")
                    .args(["-m", "venv", "--clear"])
                    .arg(&venv),
                "python3 -m venv",
            );
        }
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--no-index",
                    "--disable-pip-version-check",
                    "--no-cache-dir",
                    "--force-reinstall",
                    "--quiet",
                ])
                .arg(repo().join("python")),
            "pip install ./python",
        );
        python
    })
}

/// Runs `python -m unittest -v <tests>` in `python/tests` with `env`; fails with its output.
/// The package is imported from the virtual environment (not from the source tree: the tests'
/// directory is `python/tests`, and `src/` is not on the path).
fn unittest(tests: &[&str], env: &[(&str, &Path)]) {
    let mut cmd = Command::new(python());
    cmd.args(["-m", "unittest", "-v"])
        .args(tests)
        .current_dir(repo().join("python/tests"))
        .env("MS_PY_CLI", env!("CARGO_BIN_EXE_mapped-state"))
        .env("MS_PY_SCRIPT", python().with_file_name("mapped-state-py"))
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python -m unittest");
    let err = String::from_utf8_lossy(&out.stderr);
    // unittest reports on stderr; shown with `--nocapture`.
    eprintln!("{err}");
    assert!(
        out.status.success(),
        "python tests failed ({}):\n{err}",
        out.status
    );
    assert!(
        err.contains("\nOK") && !err.contains("skipped"),
        "unittest did not report OK with every test run:\n{err}"
    );
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(i16)]
enum Trend {
    Falling = -1,
    Flat = 0,
    Rising = 1,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Sample {
    at: u32,
    level: f32,
}

/// Every kind the format has. `python/tests/test_files.py` knows these values (`KINDS`).
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Kinds {
    tiny: i8,
    short: u16,
    big: u128,
    debt: i128,
    delta: i64,
    uptime: u64,
    ratio: f64,
    unknown: f64,
    level: f32,
    hot: bool,
    grade: char,
    trend: Trend,
    mode: telemetry::Mode,
    samples: [f32; 3],
    grid: [[u16; 2]; 2],
    history: [Sample; 2],
    label: FixedStr<12>,
    limits: telemetry::Limits,
}

fn kinds() -> Kinds {
    Kinds {
        tiny: -128,
        short: 65535,
        big: u128::MAX,
        debt: i128::MIN + 1,
        delta: i64::MIN,
        uptime: (1 << 53) + 1,
        ratio: 0.1,
        unknown: f64::NAN,
        level: f32::MAX,
        hot: true,
        grade: 'é',
        trend: Trend::Falling,
        mode: telemetry::Mode::Fault,
        samples: [0.1, f32::INFINITY, -0.0],
        grid: [[1, 2], [3, 4]],
        history: [
            Sample { at: 7, level: 0.5 },
            Sample {
                at: 8,
                level: f32::NEG_INFINITY,
            },
        ],
        label: FixedStr::new("pompe-à-eau").unwrap(),
        limits: telemetry::Limits {
            min_rpm: 800,
            max_rpm: 7200,
        },
    }
}

fn sample_telemetry() -> telemetry::Telemetry {
    telemetry::Telemetry {
        rpm: 3100,
        temperature_c: 81.5,
        uptime_s: 12,
        mode: telemetry::Mode::Running,
        healthy: true,
        grade: 'B',
        samples: [0.5, 1.5, 2.5, 3.5, -4.25, 5.0, 0.1, 7.75],
        limits: telemetry::Limits {
            min_rpm: 800,
            max_rpm: 7200,
        },
        label: FixedStr::new("engine-1").unwrap(),
    }
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Files of every kind, by the Rust writer, some with their writer alive during the Python run;
/// the Python side compares its reading of each with `mapped-state inspect --json`, and breaks
/// copies of them to compare errors and exit codes.
#[test]
fn python_package_reads_what_the_rust_writer_wrote() {
    let dir = Scratch::new("files");
    let d = |f: &str| dir.path(f);

    // Alive during the whole Python run.
    let mut kinds_w = Writer::<Kinds>::create(d("kinds.state"), &kinds()).unwrap();
    kinds_w.update(|k| k.tiny = -128);
    let mut tel = Writer::create(d("telemetry.state"), &sample_telemetry()).unwrap();
    for rpm in [3200, 3300, 3400] {
        tel.set_rpm(rpm);
    }
    let opts = mapped_state::CreateOptions::new().slots(8);
    let mut hist = Writer::<[u64; 3]>::create_with(d("history.state"), &[0; 3], &opts).unwrap();
    for k in 1..=10u64 {
        hist.publish(&[k, 2 * k, 3 * k]);
    }
    Writer::<[FixedStr<6>; 3]>::create(
        d("strings.state"),
        &[
            FixedStr::new("ab").unwrap(),
            FixedStr::new("").unwrap(),
            FixedStr::new("日本").unwrap(),
        ],
    )
    .unwrap();
    // Closed by its writer: not alive.
    drop(Writer::<u32>::create(d("closed.state"), &7).unwrap());
    // Flagged open, this process's pid, another start time: a recycled pid, not alive.
    drop(Writer::<u32>::create(d("recycled.state"), &8).unwrap());
    patch(&d("recycled.state"), 140, &0u32.to_ne_bytes());
    patch(&d("recycled.state"), 160, &1u64.to_ne_bytes());
    // Flagged open, the pid of a process that has exited: not alive.
    drop(Writer::<u32>::create(d("dead.state"), &9).unwrap());
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    patch(&d("dead.state"), 140, &0u32.to_ne_bytes());
    patch(&d("dead.state"), 144, &u64::from(dead_pid).to_ne_bytes());

    // Replaced at its path by a newer file: the old one, kept by a hard link, is superseded.
    drop(Writer::<u32>::create(d("replaced.state"), &10).unwrap());
    std::fs::hard_link(d("replaced.state"), d("superseded.state")).unwrap();
    let replace = mapped_state::CreateOptions::new().replace(true);
    drop(Writer::<u32>::create_with(d("replaced.state"), &11, &replace).unwrap());

    unittest(
        &["test_files", "test_errors"],
        &[("MS_PY_FILES", dir.dir())],
    );
    // The writers were alive throughout (the Python side saw `"alive": true` from both readers).
    drop((kinds_w, tel, hist));
}

/// A writer committing as fast as it can, bounded in commits and seconds, while the Python
/// reader takes snapshots: every one must be whole (all words equal its version).
#[cfg(target_arch = "x86_64")]
#[test]
fn python_package_snapshots_are_never_torn_under_load() {
    const WORDS: usize = 32;
    let dir = Scratch::new("load");
    let path = dir.path("live.state");
    let mut w = Writer::<[u64; WORDS]>::create(&path, &[0; WORDS]).unwrap();
    python(); // installed before the writer starts: its time bound is for the reads
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && k < 20_000_000 {
                k += 1;
                assert_eq!(w.publish(&[k; WORDS]), k);
                // About one Python copy: commits land inside many reads (exercising the re-check)
                // but reads also get quiet windows and do not starve into `Contended`.
                let pause = Instant::now() + Duration::from_micros(2);
                while Instant::now() < pause {
                    std::hint::spin_loop();
                }
            }
            k
        })
    };
    unittest(&["test_live.Load"], &[("MS_PY_LIVE", &path)]);
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    assert!(commits > 0, "the writer never committed");
}

/// A writer committing every 10 ms (isolated commits: each wakes waiters at once), bounded,
/// until the Python side asks it to stop by creating `stop` beside the file; then it closes the
/// file, which a blocked Python wait must report as `WriterGone`.
#[test]
fn python_package_waits_on_the_futex() {
    let dir = Scratch::new("wait");
    let path = dir.path("wait.state");
    let marker = dir.path("stop");
    let mut w = Writer::<[u64; 2]>::create(&path, &[0, 0]).unwrap();
    python();
    w.set_wake_policy(WakePolicy::EveryCommit);
    let writer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut k = 0u64;
        while !marker.exists() && Instant::now() < deadline && k < 6000 {
            k += 1;
            w.publish(&[k, k]);
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(w); // sets the closed flag and wakes waiters
        k
    });
    unittest(
        &["test_live.Wait"],
        &[("MS_PY_WAIT", &path), ("MS_PY_STOP", &dir.path("stop"))],
    );
    let commits = writer.join().unwrap();
    assert!(commits > 0, "the writer never committed");
}
