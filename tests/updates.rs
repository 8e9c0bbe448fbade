//! Waiting for updates across processes: a reader process blocked on a read-only mapping is woken
//! by another process's publish, `updates()` accounts exactly for every commit of a writer
//! publishing as fast as it can, a reader learns that a SIGKILLed writer is gone, and the
//! coalescing wake policy delivers a commit whose wake it skipped. Payloads are `[u64; N]`.
//!
//! Latencies are printed, never asserted.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{child_env, child_role, field, report, spawn_child, TempDir, PATH_ENV};
use mapped_state::{Error, Reader, Update, WakePolicy, Writer};

/// Environment variable: a file whose appearance tells a waiting child to start.
const GO_ENV: &str = "MS_CHILD_GO";
/// Environment variable: the wake policy a writer child uses (`every` or `default`).
const WAKE_ENV: &str = "MS_CHILD_WAKE";

/// Generous bound for anything that should take milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// Where a thread is blocked in `futex(addr, op, val, ...)`, from `/proc/<pid>/task/<tid>/syscall`.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[derive(Debug, Clone, Copy)]
struct FutexWait {
    addr: u64,
    op: u64,
    val: u64,
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const SYS_FUTEX: u64 = 202;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const SYS_FUTEX: u64 = 98;

/// The futex call thread `tid` of `pid` is blocked in, if it is in one.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn futex_wait_of(pid: u32, tid: u32) -> Option<FutexWait> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let mut nums = text.split_whitespace().map(|t| {
        let t = t.trim_start_matches("0x");
        u64::from_str_radix(t, 16).or_else(|_| t.parse())
    });
    // The first field is the syscall number in decimal ("running" when not in a syscall).
    let nr = text.split_whitespace().next()?.parse::<u64>().ok()?;
    nums.next();
    let args: Vec<u64> = nums.take(3).collect::<Result<_, _>>().ok()?;
    (nr == SYS_FUTEX && args.len() == 3).then(|| FutexWait {
        addr: args[0],
        op: args[1],
        val: args[2],
    })
}

/// The address ranges at which process `pid` maps `path`.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn mapped_ranges(pid: u32, path: &Path) -> Vec<(u64, u64)> {
    let canon = std::fs::canonicalize(path).expect("canonicalize");
    let canon = canon.to_str().expect("utf-8 path");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .filter(|l| l.ends_with(canon))
        .filter_map(|l| {
            let (lo, hi) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(lo, 16).ok()?,
                u64::from_str_radix(hi, 16).ok()?,
            ))
        })
        .collect()
}

/// Waits (bounded by `PATIENCE`) until a thread of `pid` (only `tid`, if given) sleeps in a
/// shared `FUTEX_WAIT` (op 0: no `FUTEX_PRIVATE_FLAG`) on the mapping of `path`, with expected
/// value `val` if given; returns that call. Panics if none does in time.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn await_futex_sleep(pid: u32, tid: Option<u32>, path: &Path, val: Option<u32>) -> FutexWait {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ranges = mapped_ranges(pid, path);
        let tids: Vec<u32> = match tid {
            Some(t) => vec![t],
            None => std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|d| {
                    d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        };
        for t in tids {
            if let Some(w) = futex_wait_of(pid, t) {
                let on_file = ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&w.addr));
                if on_file && w.op == 0 && val.is_none_or(|v| w.val == u64::from(v)) {
                    return w;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no thread of {pid} blocked in a shared FUTEX_WAIT on {} within {PATIENCE:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Elsewhere `/proc/<pid>/task/*/syscall` cannot be read portably: give the waiter time to block.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn await_futex_sleep(_pid: u32, _tid: Option<u32>, _path: &Path, _val: Option<u32>) {
    std::thread::sleep(Duration::from_millis(200));
}

/// The control block's `notify` word, read with `pread`.
fn notify_word(path: &Path) -> u32 {
    let at = mapped_state::format::off::NOTIFY as u64;
    u32::from_ne_bytes(common::pread(path, at, 4).try_into().expect("4 bytes"))
}

// ---------------------------------------------------------------------------------------------
// A reader process blocked on a read-only mapping is woken by another process's publish.

#[test]
fn child_waiter() {
    if child_role().as_deref() != Some("waiter") {
        return;
    }
    let path = child_env(PATH_ENV);
    let mut r = Reader::<[u64; 2]>::open(&path).expect("child opens the state file");
    // Only the futex wake can end the wait before the parent's patience runs out: no liveness
    // probe and no timeout wakes it to re-check the version within a minute.
    r.set_liveness_interval(Duration::from_secs(60));
    let since = r.version();
    report(
        "waiter",
        &[("ready", "1".into()), ("version", since.to_string())],
    );
    let u = r
        .wait_for_update_after(since, Duration::from_secs(60))
        .expect("wait")
        .expect("the publish wakes the waiter before its timeout");
    let latency_ns = wall_ns().saturating_sub(u.value[1]);
    #[cfg(target_os = "linux")]
    let perms = common::mapping_perms(Path::new(&path)).join(",");
    #[cfg(not(target_os = "linux"))]
    let perms = String::from("r--s");
    report(
        "waiter",
        &[
            ("version", u.version.to_string()),
            ("skipped", u.skipped.to_string()),
            ("marker", u.value[0].to_string()),
            ("latency_ns", latency_ns.to_string()),
            ("perms", perms),
        ],
    );
}

#[test]
fn a_reader_process_blocked_on_a_read_only_mapping_is_woken_by_a_publish() {
    if child_role().is_some() {
        return;
    }
    let dir = TempDir::new("updates-wake");
    let path = dir.join("wake.state");
    let mut w = Writer::<[u64; 2]>::create(&path, &[0, 0]).expect("create");
    // Readers need only read permission: take the write bits away (the writer keeps its fd).
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o400))
        .expect("chmod 0400");
    let child = spawn_child(
        "child_waiter",
        "waiter",
        &[(PATH_ENV, path.display().to_string())],
    );
    let ready = child
        .next_report(Instant::now() + PATIENCE)
        .expect("the waiter reports ready");
    assert_eq!(field(&ready, "version"), 0);
    // Publish only once the child sleeps in the kernel on the file's futex word.
    let sleeping = await_futex_sleep(child.id(), None, &path, None);
    println!("waiter pid {} sleeps in {sleeping:?}", child.id());
    w.publish(&[0xfeed, wall_ns()]);
    let woke = child.finish(Instant::now() + PATIENCE);
    assert_eq!(field(&woke, "version"), 1);
    assert_eq!(field(&woke, "skipped"), 0);
    assert_eq!(field(&woke, "marker"), 0xfeed);
    let perms = &woke["perms"];
    assert!(
        !perms.is_empty() && perms.split(',').all(|p| p == "r--s"),
        "the waiter maps the file read-only and shared, found {perms}"
    );
    println!(
        "cross-process wake latency (publish to the reader running, wall clock): {:.1} us",
        field(&woke, "latency_ns") as f64 / 1e3
    );
}

// ---------------------------------------------------------------------------------------------
// `updates()` accounting is exact under a writer publishing as fast as it can.

/// Longest the fast writer publishes.
const FAST_RUN: Duration = Duration::from_secs(2);
/// Most commits the fast writer makes.
const FAST_MAX_COMMITS: u64 = 20_000_000;

#[test]
fn child_fast_writer() {
    if child_role().as_deref() != Some("fast-writer") {
        return;
    }
    let path = child_env(PATH_ENV);
    let go = child_env(GO_ENV);
    let mut w = Writer::<[u64; 4]>::create(&path, &[0; 4]).expect("child creates the state file");
    if child_env(WAKE_ENV) == "every" {
        w.set_wake_policy(WakePolicy::EveryCommit);
    }
    report("fast-writer", &[("ready", "1".into())]);
    let deadline = Instant::now() + PATIENCE;
    while !Path::new(&go).exists() {
        assert!(Instant::now() < deadline, "never told to go");
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    let mut v = w.version();
    while v < FAST_MAX_COMMITS && start.elapsed() < FAST_RUN {
        let next = v + 1;
        // Every word holds the version it is committed in: a torn read would mix two.
        v = w.publish(&[next; 4]);
        assert_eq!(v, next);
    }
    report(
        "fast-writer",
        &[
            ("final", v.to_string()),
            ("wakes", w.raw().wakes_issued().to_string()),
        ],
    );
    // Dropping the writer releases the lock: the reader's `updates()` then ends.
}

fn exact_accounting(wake: &str) {
    let dir = TempDir::new("updates-fast");
    let path = dir.join("fast.state");
    let go = dir.join("go");
    let child = spawn_child(
        "child_fast_writer",
        "fast-writer",
        &[
            (PATH_ENV, path.display().to_string()),
            (GO_ENV, go.display().to_string()),
            (WAKE_ENV, wake.to_owned()),
        ],
    );
    child
        .next_report(Instant::now() + PATIENCE)
        .expect("the writer reports ready");
    let r = Reader::<[u64; 4]>::open(&path).expect("open");
    let mut updates = r.updates().timeout(PATIENCE);
    assert_eq!(
        updates.last_version(),
        0,
        "the writer has not committed yet"
    );
    std::fs::write(&go, b"").expect("create go file");

    let (mut yielded, mut skipped, mut last) = (0u64, 0u64, 0u64);
    let mut ended_by = None;
    for item in updates.by_ref() {
        match item {
            Ok(Update {
                value,
                version,
                skipped: s,
                ..
            }) => {
                assert!(version > last, "version {version} after {last}");
                assert_eq!(version, last + 1 + s, "skipped count of version {version}");
                assert_eq!(value, [version; 4], "value of version {version}");
                yielded += 1;
                skipped += s;
                last = version;
            }
            Err(e) => {
                ended_by = Some(e);
                break;
            }
        }
    }
    let end = child.finish(Instant::now() + PATIENCE);
    let commits = field(&end, "final");
    match ended_by {
        Some(Error::WriterGone {
            superseded: false, ..
        }) => {}
        other => panic!("updates() ended with {other:?}, expected WriterGone (a timeout is None)"),
    }
    assert!(
        updates.next().is_none(),
        "the iterator ends after WriterGone"
    );
    assert_eq!(
        yielded + skipped,
        commits,
        "every commit is yielded or counted as skipped"
    );
    assert_eq!(
        last, commits,
        "the last commit is delivered before WriterGone"
    );
    assert!(yielded > 1, "the reader kept up at least a little");
    println!(
        "wake policy {wake}: {commits} commits in <= {FAST_RUN:?}, {} wakes; reader got {yielded} items, skipped {skipped}",
        field(&end, "wakes")
    );
}

#[test]
fn updates_accounting_is_exact_under_a_fast_writer_coalescing_wakes() {
    if child_role().is_some() {
        return;
    }
    exact_accounting("default");
}

#[test]
fn updates_accounting_is_exact_under_a_fast_writer_waking_every_commit() {
    if child_role().is_some() {
        return;
    }
    exact_accounting("every");
}

// ---------------------------------------------------------------------------------------------
// A reader blocked in `updates()` learns that a SIGKILLed writer is gone.

#[test]
fn child_idle_writer() {
    if child_role().as_deref() != Some("idle-writer") {
        return;
    }
    let path = child_env(PATH_ENV);
    let mut w = Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("child creates the state file");
    for i in 1..=3 {
        w.publish(&[i, i]);
    }
    report("idle-writer", &[("version", w.version().to_string())]);
    // Waits to be killed; bounded so a lost parent leaves no process behind for long.
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn a_reader_waiting_in_updates_learns_that_a_killed_writer_is_gone() {
    if child_role().is_some() {
        return;
    }
    let dir = TempDir::new("updates-kill");
    let path = dir.join("kill.state");
    let mut child = spawn_child(
        "child_idle_writer",
        "idle-writer",
        &[(PATH_ENV, path.display().to_string())],
    );
    let writer_pid = child.id();
    let ready = child
        .next_report(Instant::now() + PATIENCE)
        .expect("the writer reports its version");
    assert_eq!(field(&ready, "version"), 3);
    let r = Reader::<[u64; 2]>::open(&path).expect("open");
    assert!(r.writer_alive());
    assert_eq!(r.writer_pid(), Some(writer_pid));

    let waiter_tid = rustix::thread::gettid().as_raw_pid() as u32;
    let killer = {
        let path = path.clone();
        std::thread::spawn(move || {
            // Kill only once the reader sleeps in the kernel inside `updates()`.
            await_futex_sleep(std::process::id(), Some(waiter_tid), &path, None);
            let status = child.kill9();
            (status, Instant::now())
        })
    };
    let mut updates = r.updates_after(3).timeout(PATIENCE);
    let item = updates.next();
    let learned = Instant::now();
    let (status, killed) = killer.join().expect("killer thread");
    assert!(!status.success(), "the writer was killed: {status}");
    match item {
        Some(Err(Error::WriterGone {
            pid,
            superseded: false,
            ..
        })) => assert_eq!(pid, Some(writer_pid)),
        other => panic!("expected WriterGone within {PATIENCE:?}, got {other:?}"),
    }
    assert!(
        updates.next().is_none(),
        "the iterator ends after WriterGone"
    );
    assert!(!r.writer_alive());
    assert_eq!(
        r.load().expect("load"),
        [3, 3],
        "the last commit stays readable"
    );
    println!(
        "reader learned the writer was gone {:.1} ms after SIGKILL (liveness interval 100 ms)",
        learned.saturating_duration_since(killed).as_secs_f64() * 1e3
    );
}

// ---------------------------------------------------------------------------------------------
// In one process: the wake policy, timeouts, a clean exit, a superseded file.

/// Under the default policy the commits of a burst make no wake call of their own; the
/// writer's wake keeper announces them within a period, so a waiter asleep for the last one of
/// the burst still gets it; after the burst an isolated commit wakes at once again.
#[test]
fn the_commits_of_a_burst_reach_a_sleeping_waiter_through_the_wake_keeper() {
    if child_role().is_some() {
        return;
    }
    const BURST: u64 = 2_000;
    let dir = TempDir::new("updates-coalesce");
    let path = dir.join("c.state");
    let mut w = Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("create");
    let period = Duration::from_millis(20);
    w.set_wake_policy(WakePolicy::Coalesce(period));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter_path = path.clone();
    // Not scoped: if the waiter missed the last commit it would sleep a minute, and the test
    // must fail after `PATIENCE` instead of waiting for it.
    std::thread::spawn(move || {
        let mut r = Reader::<[u64; 2]>::open(&waiter_path).expect("open");
        // Only a wake can end the sleep within a minute: no probe, no timeout.
        r.set_liveness_interval(Duration::from_secs(60));
        tid_tx
            .send(rustix::thread::gettid().as_raw_pid() as u32)
            .expect("send tid");
        let _ = done_tx.send(r.wait_for_update_after(BURST - 1, Duration::from_secs(60)));
    });
    let tid = tid_rx.recv_timeout(PATIENCE).expect("waiter tid");
    let me = std::process::id();
    await_futex_sleep(me, Some(tid), &path, Some(notify_word(&path)));
    let before = w.raw().wakes_issued();
    for i in 1..=BURST {
        w.publish(&[i, i]);
    }
    let during = w.raw().wakes_issued() - before;
    let got = done_rx
        .recv_timeout(PATIENCE)
        .expect("the burst's last commit reaches the waiter (within a period), well within 10 s")
        .expect("wait");
    let u = got.expect("an update, not a timeout");
    assert_eq!((u.value, u.version, u.skipped), ([BURST, BURST], BURST, 0));
    assert!(
        during < BURST / 4,
        "{during} wakes for a burst of {BURST} commits: the burst was not coalesced"
    );
    // After the burst, once the keeper has seen a few quiet periods, an isolated commit wakes
    // at once, by itself.
    std::thread::sleep(period * 4);
    let quiet = w.raw().wakes_issued();
    w.publish(&[0, 0]);
    assert_eq!(
        w.raw().wakes_issued(),
        quiet + 1,
        "an isolated commit wakes at once"
    );
}

#[test]
fn every_commit_policy_wakes_on_every_commit() {
    if child_role().is_some() {
        return;
    }
    let dir = TempDir::new("updates-every");
    let path = dir.join("e.state");
    let mut w = Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("create");
    assert_eq!(w.wake_policy(), WakePolicy::default());
    w.set_wake_policy(WakePolicy::EveryCommit);
    for i in 1..=10 {
        w.publish(&[i, i]);
    }
    assert_eq!(w.raw().wakes_issued(), 10);
}

#[test]
fn waits_time_out_with_a_live_writer_and_return_newer_versions_at_once() {
    if child_role().is_some() {
        return;
    }
    let dir = TempDir::new("updates-timeout");
    let path = dir.join("t.state");
    let mut w = Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("create");
    let r = Reader::<[u64; 2]>::open(&path).expect("open");
    assert_eq!(
        r.wait_for_update(Duration::from_millis(30)).expect("wait"),
        None
    );
    let mut updates = r.updates().timeout(Duration::from_millis(30));
    assert!(updates.next().is_none(), "a timeout yields None");
    for i in 1..=3 {
        w.publish(&[i, i]);
    }
    let u = r
        .wait_for_update_after(0, PATIENCE)
        .expect("wait")
        .expect("already newer");
    assert_eq!((u.value, u.version, u.skipped), ([3, 3], 3, 2));
    // The iterator is not fused by a timeout, and its accounting starts at its creation.
    let u = updates.next().expect("an item").expect("an update");
    assert_eq!((u.version, u.skipped), (3, 2));
    assert_eq!(updates.last_version(), 3);
    assert_eq!(
        updates
            .next_timeout(Duration::from_millis(10))
            .expect("wait"),
        None
    );
}

#[test]
fn updates_deliver_the_last_commit_of_a_writer_that_exits_then_end() {
    if child_role().is_some() {
        return;
    }
    let dir = TempDir::new("updates-exit");
    let path = dir.join("x.state");
    let mut w = Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("create");
    let r = Reader::<[u64; 2]>::open(&path).expect("open");
    let mut updates = r.updates();
    for i in 1..=5 {
        w.publish(&[i, i]);
    }
    drop(w);
    let u = updates.next().expect("an item").expect("an update");
    assert_eq!((u.value, u.version, u.skipped), ([5, 5], 5, 4));
    match updates.next() {
        Some(Err(Error::WriterGone {
            pid,
            superseded: false,
            ..
        })) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected WriterGone, got {other:?}"),
    }
    assert!(updates.next().is_none());
    let err = r
        .wait_for_update(PATIENCE)
        .expect_err("nothing can come without a writer");
    assert!(matches!(err, Error::WriterGone { .. }), "{err}");
    println!("{err}");
}

#[test]
fn a_superseded_file_ends_the_wait() {
    if child_role().is_some() {
        return;
    }
    let dir = TempDir::new("updates-superseded");
    let path = dir.join("s.state");
    let w = Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("create");
    let mut r = Reader::<[u64; 2]>::open(&path).expect("open");
    // The probe would also end the wait (no writer); make sure the flag is what ends it.
    r.set_liveness_interval(Duration::from_secs(60));
    std::thread::scope(|s| {
        let waiter = s.spawn(|| r.wait_for_update(PATIENCE));
        drop(w);
        let _new = Writer::<[u64; 2]>::create_with(
            &path,
            &[1, 1],
            &mapped_state::CreateOptions::new().replace(true),
        )
        .expect("replace");
        match waiter.join().expect("waiter thread") {
            Err(Error::WriterGone {
                superseded: true, ..
            }) => {}
            other => panic!("expected WriterGone {{ superseded: true }}, got {other:?}"),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Liveness probes never keep a starting writer out.

/// Environment variable: what a short-lived writer child does (`create` or `open`).
const STEP_ENV: &str = "MS_CHILD_STEP";

#[test]
fn child_brief_writer() {
    if child_role().as_deref() != Some("brief-writer") {
        return;
    }
    let path = child_env(PATH_ENV);
    let mut w = match child_env(STEP_ENV).as_str() {
        "create" => Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("create"),
        // Readers probe the lock all the while; the writer's lock retry must get through.
        _ => Writer::<[u64; 2]>::open(&path).expect("a new writer opens despite probing readers"),
    };
    let v = w.update(|x| x[0] += 1);
    report("brief-writer", &[("version", v.to_string())]);
}

#[test]
fn probing_readers_do_not_keep_a_new_writer_out() {
    if child_role().is_some() {
        return;
    }
    let dir = TempDir::new("updates-probe");
    let path = dir.join("p.state");
    let run = |step: &str| {
        let child = spawn_child(
            "child_brief_writer",
            "brief-writer",
            &[
                (PATH_ENV, path.display().to_string()),
                (STEP_ENV, step.to_owned()),
            ],
        );
        field(&child.finish(Instant::now() + PATIENCE), "version")
    };
    assert_eq!(run("create"), 1);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (probes, gone) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let r = Reader::<[u64; 2]>::open(&path).expect("open");
            let (mut probes, mut gone) = (0u64, 0u64);
            let deadline = Instant::now() + PATIENCE;
            // A zero timeout probes at once: as many shared-lock probes as one core can make.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                probes += 1;
                match r.wait_for_update_after(u64::MAX, Duration::ZERO) {
                    Err(Error::WriterGone { .. }) => gone += 1,
                    Ok(None) => {}
                    other => panic!("unexpected wait result {other:?}"),
                }
            }
            (probes, gone)
        });
        for n in 2..=7 {
            assert_eq!(run("open"), n);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        prober.join().expect("prober thread")
    });
    assert!(gone > 0, "the prober saw the file without a writer");
    println!("{probes} liveness probes ({gone} found no writer) while 6 writers took over");
}

#[test]
fn an_invalid_value_is_reported_once_and_counted_as_skipped() {
    if child_role().is_some() {
        return;
    }
    use mapped_state::WriteView;
    let dir = TempDir::new("updates-invalid");
    let path = dir.join("b.state");
    let mut w = Writer::<[bool; 8]>::create(&path, &[false; 8]).expect("create");
    let r = Reader::<[bool; 8]>::open(&path).expect("open");
    let mut updates = r.updates();
    // Another writer implementation could store any byte: 2 is no `bool`.
    w.raw_mut().write_bytes(3, &[2]);
    match updates.next_timeout(PATIENCE) {
        Err(Error::InvalidValue { source, .. }) => assert_eq!(source.field, "[3]"),
        other => panic!("expected InvalidValue, got {other:?}"),
    }
    // Not the same error again at once: the next wait is for a newer commit.
    assert_eq!(
        updates
            .next_timeout(Duration::from_millis(50))
            .expect("wait"),
        None
    );
    w.publish(&[true; 8]);
    let u = updates
        .next_timeout(PATIENCE)
        .expect("wait")
        .expect("the valid commit");
    assert_eq!((u.value, u.version, u.skipped), ([true; 8], 2, 1));
}

#[test]
#[should_panic(expected = "goes past the payload")]
fn a_raw_write_whose_end_overflows_panics_instead_of_committing_nothing() {
    use mapped_state::WriteView;
    let dir = TempDir::new("updates-overflow");
    let path = dir.join("o.state");
    let mut w = Writer::<u64>::create(&path, &0).expect("create");
    // `offset + len` wraps to 1: a check without overflow checking would pass and commit an
    // empty write.
    w.raw_mut().write_bytes(usize::MAX, &[1, 2]);
}
