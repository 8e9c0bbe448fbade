//! Writer exclusivity and liveness cannot be disturbed by readers: a process of another user
//! that can only read the state file takes every lock a read-only descriptor allows (`flock`
//! shared and exclusive, POSIX and OFD read locks) and holds them, and still a writer starts at
//! once, a second writer is refused with the first one's pid, and readers' `writer_alive` says
//! exactly whether the writer lives — while it lives, after it drops its handle, after it dies,
//! and for a recycled pid.
//!
//! The other user is a child process of this test binary started with another uid (the suite
//! runs as root in CI; where it does not, the cross-user test says so and checks the same locks
//! from this user).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{pread_u64, TempDir, PATH_ENV};
use mapped_state::format::off;
use mapped_state::{CreateOptions, Error, Insecurity, RawReader, Writer};

/// The uid of the other user.
const OTHER_UID: u32 = 54_321;
const CHILD: &str = "child_process";

/// Takes every lock a read-only descriptor of `path` allows, reports, and holds them until
/// killed.
#[test]
fn child_process() {
    if common::child_role().as_deref() != Some("lock-hog") {
        return;
    }
    let path = PathBuf::from(common::child_env(PATH_ENV));
    let flock_sh = std::fs::File::open(&path).expect("open for reading");
    flock_sh.try_lock_shared().expect("flock shared");
    let posix = std::fs::File::open(&path).expect("open for reading");
    // POSIX and OFD read locks over the whole file: what blocked a writer's write lock.
    let whole = libc::flock {
        l_type: libc::F_RDLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: `fcntl(F_SETLK)` with a pointer to a valid `flock` struct living across the call.
    let rc = unsafe { libc::fcntl(posix.as_raw_fd(), libc::F_SETLK, &whole) };
    assert_eq!(rc, 0, "posix read lock");
    let ofd = std::fs::File::open(&path).expect("open for reading");
    // SAFETY: as above, `F_OFD_SETLK` takes the same struct (with `l_pid` zero).
    let rc = unsafe { libc::fcntl(ofd.as_raw_fd(), libc::F_OFD_SETLK, &whole) };
    assert_eq!(rc, 0, "OFD read lock");
    common::report(
        "lock-hog",
        &[("uid", rustix::process::getuid().as_raw().to_string())],
    );
    std::thread::sleep(Duration::from_secs(60));
}

/// A directory other users can enter, with a state file they can read.
fn shared_dir(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("s.state");
    (dir, path)
}

fn spawn_hog(path: &Path, uid: Option<u32>) -> (std::process::Child, u32) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", CHILD, "--nocapture", "--test-threads=1"])
        .env(common::ROLE_ENV, "lock-hog")
        .env(PATH_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().expect("spawn lock hog");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(r) = common::parse_report(&line) {
                let _ = tx.send(r);
            }
        }
    });
    let r = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the lock hog took its locks");
    (child, common::field(&r, "uid") as u32)
}

#[test]
fn a_reader_of_another_user_can_neither_delay_a_writer_nor_fake_or_hide_its_liveness() {
    if common::child_role().is_some() {
        return;
    }
    let (_dir, path) = shared_dir("lock-other-user");
    let opts = CreateOptions::new().mode(0o644);
    let w = Writer::<[u64; 2]>::create_with(&path, &[1, 1], &opts).unwrap();
    drop(w);
    let root = rustix::process::geteuid().is_root();
    let (mut hog, uid) = spawn_hog(&path, root.then_some(OTHER_UID));
    println!("lock hog pid {} runs as uid {uid}", hog.id());
    if root {
        assert_eq!(uid, OTHER_UID, "the hog runs as the other user");
    } else {
        println!("not root: the locks are taken by this user instead");
    }
    let r = RawReader::open(&path).unwrap();
    assert!(
        !r.writer_alive(),
        "the closed file has no writer, locks or not"
    );

    // The writer starts at once despite every lock the reader holds.
    let t = Instant::now();
    let mut w = Writer::<[u64; 2]>::open(&path).expect("a writer starts");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    assert!(r.writer_alive(), "the live writer is seen alive");
    assert_eq!(r.writer_pid(), Some(std::process::id()));
    // A second writer is refused, naming the first.
    match Writer::<[u64; 2]>::open(&path) {
        Err(Error::WriterActive { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("second writer: {other:?}"),
    }
    w.publish(&[2, 2]);
    drop(w);
    assert!(
        !r.writer_alive(),
        "a dropped writer is gone, though its process lives"
    );
    let _ = hog.kill();
    let _ = hog.wait();
}

#[test]
fn a_recycled_pid_is_not_the_writer() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("lock-recycled");
    let path = dir.join("s.state");
    let _w = Writer::<[u64; 2]>::create(&path, &[1, 1]).unwrap();
    let r = RawReader::open(&path).unwrap();
    assert!(r.writer_alive());
    let start = pread_u64(&path, off::WRITER_START as u64);
    assert_ne!(start, 0, "the writer recorded its start time");
    // The same pid with another start time: a new process that got the dead writer's pid.
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&(start + 1).to_ne_bytes(), off::WRITER_START as u64)
        .unwrap();
    assert!(
        !r.writer_alive(),
        "a pid with another start time is not the writer"
    );
    f.write_all_at(&start.to_ne_bytes(), off::WRITER_START as u64)
        .unwrap();
    assert!(r.writer_alive());
}

#[test]
fn a_lock_file_others_could_hold_is_refused() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("lock-untrusted");
    let path = dir.join("s.state");
    drop(Writer::<[u64; 2]>::create(&path, &[1, 1]).unwrap());
    let lock = dir.join(".s.state.lock");
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    match Writer::<[u64; 2]>::open(&path) {
        Err(Error::Insecure {
            path: p,
            why: Insecurity::UntrustedLockFile { mode: 0o644, .. },
        }) => assert_eq!(p, lock),
        other => panic!("a lock file others can open: {other:?}"),
    }
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap();
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(&lock, Some(OTHER_UID), None).unwrap();
        let e = Writer::<[u64; 2]>::open(&path).unwrap_err();
        assert!(
            matches!(&e, Error::Insecure { why: Insecurity::UntrustedLockFile { owner, .. }, .. } if *owner == OTHER_UID),
            "{e:?}"
        );
        assert!(
            e.to_string().contains(&format!("owned by uid {OTHER_UID}")),
            "{e}"
        );
        std::os::unix::fs::chown(&lock, Some(0), None).unwrap();
    }
    drop(Writer::<[u64; 2]>::open(&path).expect("the repaired lock file is accepted"));
}
