//! Readers make no system call on any read: a reader process locks its reading thread into
//! seccomp strict mode — where any system call but `read`, `write`, `exit` and `sigreturn`
//! kills the process with SIGKILL — and then reads, again and again, with every read method a
//! reader has, while a writer in another process commits. It reports its counts with a plain
//! `write`, then makes a forbidden call on purpose, which kills the thread (strict mode kills
//! the calling thread); the parent checks that the report came, and that the thread then died,
//! proving the restriction was in force. (An `strace -c` of the same loop would show the same,
//! but strace is not installed everywhere this suite runs.)

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{field, spawn_child, TempDir, PATH_ENV};
use mapped_state::{MappedState, Reader, Writer};

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Phase {
    Even,
    Odd,
}

/// More than a page, with fields that decode as plain copies and fields that are validated.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Wide {
    count: u64,
    phase: Phase,
    ok: bool,
    samples: [u64; 600],
    tail: u64,
}

impl Wide {
    fn at(c: u64) -> Self {
        Wide {
            count: c,
            phase: if c.is_multiple_of(2) {
                Phase::Even
            } else {
                Phase::Odd
            },
            ok: true,
            samples: [c; 600],
            tail: c,
        }
    }
}

const CHILD: &str = "child_process";
/// Reads per read method in the restricted child.
const ROUNDS: u64 = 2_000;

#[test]
fn child_process() {
    let Some(role) = common::child_role() else {
        return;
    };
    let path = PathBuf::from(common::child_env(PATH_ENV));
    match role.as_str() {
        "writer" => run_writer(&path),
        "reader" => run_reader(&path),
        other => panic!("unknown role {other}"),
    }
}

/// Commits about 5,000 times a second, mixing whole publishes and single fields, until killed.
fn run_writer(path: &Path) {
    let mut w = Writer::<Wide>::open(path).expect("writer open");
    common::report("writer", &[("ready", "1".into())]);
    let mut c = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        c += 1;
        w.publish(&Wide::at(c));
        w.set_tail(c);
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn run_reader(path: &Path) {
    let r = Reader::<Wide>::open(path).expect("reader open");
    // Everything that could allocate or make a call on first use happens before the lock-in:
    // the report buffer is on the stack, stdout is flushed once already.
    let mut buf = [0u8; 256];
    let mut out = std::io::stdout().lock();
    writeln!(out, "restricting").expect("stdout");
    out.flush().expect("flush");
    let first = r.version();
    let tid = rustix::thread::gettid().as_raw_pid();

    // SAFETY: `prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT)` takes no pointers; from here on this
    // thread may only read, write, exit and return from signals.
    let rc = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) };
    if rc != 0 {
        // The write below is still allowed; the parent fails on this report.
        writeln!(out, "\nMS-REPORT role=reader restricted=0").expect("stdout");
        return;
    }
    let (mut loads, mut torn, mut fields, mut elements, mut history) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for i in 0..ROUNDS {
        let _ = r.version();
        if let Ok(v) = r.load() {
            loads += 1;
            torn += u64::from(
                v != Wide::at(v.count)
                    && v != Wide {
                        tail: v.count + 1,
                        ..Wide::at(v.count)
                    },
            );
        }
        fields += r.count() & 1;
        fields += u64::from(r.ok().unwrap_or(false));
        let _ = r.phase();
        elements += r.samples_at((i % 600) as usize).unwrap_or(0) & 1;
        if r.load_version(r.version()).is_ok() {
            history += 1;
        }
    }
    let last = r.version();
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = writeln!(
        cur,
        "\nMS-REPORT role=reader restricted=1 tid={tid} loads={loads} torn={torn} history={history} fields={fields} elements={elements} versions={}",
        last - first
    );
    let n = cur.position() as usize;
    out.write_all(&buf[..n]).expect("stdout");
    out.flush().expect("flush");
    // Any call but the four: the kernel kills this thread here, after the report.
    // SAFETY: `getppid` has no arguments and no effect on memory.
    unsafe { libc::getppid() };
    // Only reached if the restriction was not in force: the parent sees the thread live on.
    loop {
        std::hint::spin_loop();
    }
}

#[test]
fn readers_make_no_system_call_on_any_read() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("nosys");
    let path = dir.join("wide.state");
    drop(Writer::<Wide>::create(&path, &Wide::at(0)).expect("create"));
    let env = [(PATH_ENV, path.display().to_string())];
    let hard = Instant::now() + Duration::from_secs(60);
    let writer = spawn_child(CHILD, "writer", &env);
    writer.next_report(hard).expect("writer ready");
    let mut reader = spawn_child(CHILD, "reader", &env);
    let report = reader.next_report(hard).expect(
        "the restricted reader died before it finished its reads: a read made a system call",
    );
    println!("{report:?}");
    assert_eq!(
        field(&report, "restricted"),
        1,
        "seccomp strict mode unavailable"
    );
    // The forbidden call after the reads kills the reading thread: the restriction was real.
    let task = PathBuf::from(format!(
        "/proc/{}/task/{}",
        reader.id(),
        field(&report, "tid")
    ));
    let patience = Instant::now() + Duration::from_secs(10);
    while task.exists() && Instant::now() < patience {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !task.exists(),
        "the reading thread survived a forbidden system call"
    );
    reader.kill9();
    assert_eq!(field(&report, "loads"), ROUNDS);
    assert_eq!(field(&report, "torn"), 0);
    assert!(
        field(&report, "versions") > 0,
        "the writer committed during the reads: {report:?}"
    );
    assert!(field(&report, "history") > ROUNDS / 2, "{report:?}");
}
