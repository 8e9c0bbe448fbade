//! Helpers shared by the integration tests: scratch directories, files written with exact
//! permissions, and child processes made by re-running the test binary itself.
//!
//! A multi-process test re-executes `std::env::current_exe()` with
//! `--exact <child test> --nocapture --test-threads=1` and sets `MS_CHILD_ROLE` (plus its own
//! variables); the child `#[test]` returns at once when that variable is absent, so in a normal
//! run it is an empty test. Children report on stdout with one `MS-REPORT key=value ...` line,
//! which the parent finds even when libtest prints on the same line.

// Each test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

pub mod paged;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Environment variable naming a child's role; absent in the parent.
pub const ROLE_ENV: &str = "MS_CHILD_ROLE";
/// Environment variable carrying the state file's path to a child.
pub const PATH_ENV: &str = "MS_CHILD_PATH";
/// Environment variable carrying how long a child runs, in milliseconds.
pub const MILLIS_ENV: &str = "MS_CHILD_MILLIS";
/// Prefix of a child's report line.
pub const REPORT: &str = "MS-REPORT";

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/ms-<tag>-<pid>-<n>`, unique within and across test processes.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ms-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        // The default umask may leave it group-writable; nothing here needs more than 0700.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod scratch dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names of the directory's entries, sorted (to prove no temporary file is left).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read scratch dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `bytes` to a new file at `path` with mode exactly `mode` (the umask does not apply).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .expect("create test file");
    f.write_all(bytes).expect("write test file");
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .expect("chmod test file");
}

/// Reads `len` bytes at `offset` of the file at `path` with `pread` (no mapping involved).
pub fn pread(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).expect("open for pread");
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, offset).expect("pread");
    b
}

/// The `u64` at `offset` of the file at `path`, native-endian.
pub fn pread_u64(path: &Path, offset: u64) -> u64 {
    let b = pread(path, offset, 8);
    u64::from_ne_bytes(b.try_into().expect("8 bytes"))
}

/// The role this process was started in, or `None` in the parent test run.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// A required environment variable of a child.
pub fn child_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child started without {name}"))
}

/// Prints a report line `MS-REPORT role=<role> k=v ...` on stdout and flushes it.
pub fn report(role: &str, fields: &[(&str, String)]) {
    use std::io::Write;
    let mut line = format!("\n{REPORT} role={role}");
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("flush stdout");
}

/// Parses the `key=value` pairs of a report line (anything before the marker is ignored).
pub fn parse_report(line: &str) -> Option<HashMap<String, String>> {
    let at = line.find(REPORT)?;
    Some(
        line[at + REPORT.len()..]
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// A field of a parsed report as a number.
pub fn field(r: &HashMap<String, String>, key: &str) -> u64 {
    r.get(key)
        .unwrap_or_else(|| panic!("report {r:?} lacks `{key}`"))
        .parse()
        .unwrap_or_else(|_| panic!("report field `{key}` in {r:?} is not a number"))
}

/// A child process running one test of this test binary. Killed on drop if still running, so a
/// failing parent leaves no stragglers.
#[derive(Debug)]
pub struct ChildProc {
    child: Child,
    /// Report lines, forwarded by a thread that drains stdout so the pipe never fills.
    reports: mpsc::Receiver<HashMap<String, String>>,
    reaped: Option<ExitStatus>,
}

/// Starts `current_exe() --exact <test> --nocapture --test-threads=1` with `envs` and
/// `MS_CHILD_ROLE=<role>`.
pub fn spawn_child(test: &str, role: &str, envs: &[(&str, String)]) -> ChildProc {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child test process");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || forward_reports(stdout, tx));
    ChildProc {
        child,
        reports: rx,
        reaped: None,
    }
}

fn forward_reports(stdout: ChildStdout, tx: mpsc::Sender<HashMap<String, String>>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(r) = parse_report(&line) {
            if tx.send(r).is_err() {
                break;
            }
        }
    }
}

impl ChildProc {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next report line, waiting at most until `deadline`.
    pub fn next_report(&self, deadline: Instant) -> Option<HashMap<String, String>> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.reports.recv_timeout(left).ok()
    }

    /// The newest report received so far, without waiting (older ones are dropped).
    pub fn latest_report(&self) -> Option<HashMap<String, String>> {
        self.reports.try_iter().last()
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill9(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for killed child");
        self.reaped = Some(status);
        status
    }

    /// Waits for the child to exit until `deadline`; kills it (and panics) if it does not.
    pub fn wait_until(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.reaped = Some(s);
                return s;
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!("child {} did not exit in time and was killed", self.id());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for exit (bounded by `deadline`), asserts success and returns the last report.
    pub fn finish(mut self, deadline: Instant) -> HashMap<String, String> {
        let status = self.wait_until(deadline);
        assert!(status.success(), "child {} failed: {status}", self.id());
        // The forwarding thread ends with the pipe; every line it saw is queued by now or soon.
        let mut last = None;
        while let Some(r) = self.next_report(deadline) {
            last = Some(r);
        }
        last.unwrap_or_else(|| panic!("child {} exited without a report", self.id()))
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A small deterministic generator (xorshift64*), seeded per run and printed, so a failing run
/// can be replayed with the same delays.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from `env` when set, else from the clock and pid.
    pub fn from_env_or_clock(env: &str) -> Rng {
        let seed = std::env::var(env)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1);
                t ^ (u64::from(std::process::id()) << 32)
            });
        Rng(seed.max(1))
    }

    /// The current state (print it before drawing to replay a run).
    pub fn seed(&self) -> u64 {
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// On Linux, the permissions (`r--s`, ...) of this process's mappings of `path`, from
/// `/proc/self/maps`: proves that readers map the file read-only.
#[cfg(target_os = "linux")]
pub fn mapping_perms(path: &Path) -> Vec<String> {
    let canon = std::fs::canonicalize(path).expect("canonicalize");
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter(|l| l.ends_with(canon.to_str().expect("utf-8 path")))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}
