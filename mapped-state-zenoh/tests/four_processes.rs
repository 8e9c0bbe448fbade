//! End to end across four processes on loopback: a writer commits into a source file,
//! `mapped-state-mirror publish` publishes it, `mapped-state-mirror follow` commits it into a
//! replica, and a reader reads the replica with the ordinary API. The publisher and the
//! follower are killed (SIGKILL) and restarted mid-stream.
//!
//! Checked: every value the reader sees is a value the writer committed (no torn read), the
//! source versions it sees strictly increase and equal the version recorded for them in the
//! status file, and the values it yields plus the versions it skipped equal the writer's
//! commits (so the newest value arrives, after every restart). Bounded: the writer commits a
//! fixed number of times and every wait has a deadline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mapped_state::{Error, MappedState, Reader, Writer};
use mapped_state_zenoh::{status_path, MirrorStatus};

const ROLE: &str = "MSZ_TEST_ROLE";
const COMMITS: u64 = 3000;
const COMMIT_EVERY: Duration = Duration::from_micros(1500);

/// The mirrored state: every word derives from `counter`, so a torn copy is detected.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub counter: u64,
    pub words: [u64; 30],
    pub check: u64,
}

fn sample(counter: u64) -> Sample {
    let mut words = [0u64; 30];
    for (i, w) in words.iter_mut().enumerate() {
        *w = counter.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64);
    }
    Sample {
        counter,
        words,
        check: !counter,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("local addr")
        .port()
}

struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn mirror(name: &'static str, args: &[&str]) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_mapped-state-mirror"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mapped-state-mirror");
        Proc { name, child }
    }

    fn role(
        name: &'static str,
        role: &str,
        envs: &[(&str, &Path)],
    ) -> (Proc, BufReader<std::process::ChildStdout>) {
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.args([
            "--exact",
            "four_processes_with_restarts",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn a child role");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        (Proc { name, child }, out)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("stopping {}", self.name);
            self.kill();
        }
    }
}

/// The `RESULT k=v ...` line a child role prints last.
fn result_line(
    out: &mut BufReader<std::process::ChildStdout>,
) -> std::collections::HashMap<String, u64> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).expect("read child stdout") == 0 {
            panic!("child ended without a RESULT line");
        }
        // libtest prints `test NAME ... ` before the test's own output, on the same line.
        if let Some(at) = line.find("RESULT ") {
            let rest = line[at + "RESULT ".len()..].trim();
            return rest
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
                .collect();
        }
    }
}

fn writer_role() {
    let path = PathBuf::from(std::env::var_os("MSZ_SOURCE").expect("MSZ_SOURCE"));
    let mut w = Writer::<Sample>::create(&path, &sample(0)).expect("create the source");
    let start = Instant::now();
    for c in 1..=COMMITS {
        // Paced by the clock, not by sleeps alone, so the stream lasts about as long anywhere.
        let due = COMMIT_EVERY * c as u32;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        w.publish(&sample(c));
    }
    println!("RESULT commits={} last={}", COMMITS + 1, w.version());
    // Stay the live writer until the parent ends us, so liveness is not what is tested here.
    std::thread::sleep(Duration::from_secs(60));
}

fn reader_role() {
    let replica = PathBuf::from(std::env::var_os("MSZ_REPLICA").expect("MSZ_REPLICA"));
    let deadline = Instant::now() + Duration::from_secs(40);
    let reader = loop {
        match Reader::<Sample>::open(&replica) {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("replica never appeared: {e}"),
        }
    };
    let status = loop {
        match Reader::<MirrorStatus>::open(status_path(&replica)) {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("status file never appeared: {e}"),
        }
    };
    let nonce = reader.raw().header().nonce;
    let (mut yielded, mut skipped, mut torn, mut backwards, mut mismatched, mut matched) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last: Option<u64> = None;
    let mut replica_version = None;
    while Instant::now() < deadline {
        let (value, v) = reader.load_versioned().expect("load the replica");
        if replica_version != Some(v) {
            replica_version = Some(v);
            if value != sample(value.counter) {
                torn += 1;
            } else if last.is_none_or(|l| value.counter > l) {
                skipped += value.counter - last.map_or(0, |l| l + 1);
                yielded += 1;
                last = Some(value.counter);
            } else if last != Some(value.counter) {
                backwards += 1;
            }
            // The mirror's record of this replica version names the same source version.
            if let Ok(st) = status.load() {
                match st.source_of(nonce, v) {
                    Some(e) if e.source_version == value.counter => matched += 1,
                    Some(_) => mismatched += 1,
                    None => {}
                }
            }
            if value.counter == COMMITS {
                break;
            }
        }
        match reader
            .raw()
            .wait_for_update(v, Some(Duration::from_millis(100)))
        {
            Ok(_) => {}
            // The follower was killed: the replica has no writer until it is restarted.
            Err(Error::WriterGone {
                superseded: false, ..
            }) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("replica: {e}"),
        }
    }
    println!(
        "RESULT yielded={yielded} skipped={skipped} torn={torn} backwards={backwards} \
         matched={matched} mismatched={mismatched} last={}",
        last.unwrap_or(0)
    );
}

#[test]
fn four_processes_with_restarts() {
    match std::env::var(ROLE).as_deref() {
        Ok("writer") => return writer_role(),
        Ok("reader") => return reader_role(),
        _ => {}
    }
    let dir = std::env::temp_dir().join(format!("msz-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source.state");
    let replica = dir.join("replica.state");
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let key = format!("msz-test/{}", std::process::id());
    let source_s = source.to_str().unwrap().to_owned();
    let replica_s = replica.to_str().unwrap().to_owned();
    let publish_args = ["publish", &source_s, "--key", &key, "--listen", &endpoint];
    let follow_args = ["follow", &key, "--to", &replica_s, "--connect", &endpoint];

    let started = Instant::now();
    let (mut writer, mut writer_out) = Proc::role("writer", "writer", &[("MSZ_SOURCE", &source)]);
    let mut publisher = Proc::mirror("publisher", &publish_args);
    let mut follower = Proc::mirror("follower", &follow_args);
    let (mut reader, mut reader_out) = Proc::role("reader", "reader", &[("MSZ_REPLICA", &replica)]);

    // Mid-stream (the writer commits for about 4.5 s): kill and restart each mirror process.
    std::thread::sleep(Duration::from_millis(1200));
    publisher.kill();
    std::thread::sleep(Duration::from_millis(400));
    publisher = Proc::mirror("publisher", &publish_args);
    std::thread::sleep(Duration::from_millis(1000));
    follower.kill();
    std::thread::sleep(Duration::from_millis(400));
    follower = Proc::mirror("follower", &follow_args);

    let w = result_line(&mut writer_out);
    let r = result_line(&mut reader_out);
    eprintln!("writer {w:?}\nreader {r:?}\nin {:?}", started.elapsed());
    let st = Reader::<MirrorStatus>::open(status_path(&replica))
        .and_then(|s| s.load())
        .expect("status file");
    eprintln!(
        "status: received {} skipped {} source v{}",
        st.received, st.skipped_total, st.source_version
    );
    for p in [&mut publisher, &mut follower, &mut writer, &mut reader] {
        p.kill();
    }
    assert_eq!(r["torn"], 0, "torn reads");
    assert_eq!(r["backwards"], 0, "source versions went backwards");
    assert_eq!(
        r["mismatched"], 0,
        "status file named another source version"
    );
    assert!(
        r["matched"] > 0,
        "the status file never named a version the reader saw"
    );
    assert_eq!(
        r["last"], COMMITS,
        "the newest value never reached the reader"
    );
    assert_eq!(
        r["yielded"] + r["skipped"],
        w["commits"],
        "yielded + skipped != commits"
    );
    assert!(
        r["yielded"] > 1,
        "the reader saw a single value: nothing streamed"
    );
    assert_eq!(st.source_version, COMMITS);
    let _ = std::fs::remove_dir_all(&dir);
}
