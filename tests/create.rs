//! Creating a file leaves nothing behind but the file: a creator killed at any moment of a
//! create leaves no partial file (the new file is built unnamed, `O_TMPFILE`, and linked when
//! complete) and at most the empty writer lock file; a temporary left by a creator that died
//! where unnamed files are not available is removed by the next create of that path.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{spawn_child, TempDir, PATH_ENV};
use mapped_state::{CreateOptions, Error, Insecurity, OpenOptions, Reader, Writer};

/// 32 MiB: with 2 slots a create writes 64 MiB, long enough to be killed in the middle.
const WORDS: usize = 4 << 20;

type Huge = [u64; WORDS];

/// Built on the heap: 32 MiB would not fit on a test thread's stack.
fn huge() -> Box<Huge> {
    vec![7u64; WORDS]
        .into_boxed_slice()
        .try_into()
        .expect("length")
}

const CHILD: &str = "child_process";

#[test]
fn child_process() {
    if common::child_role().as_deref() == Some("group-reader") {
        let path = PathBuf::from(common::child_env(PATH_ENV));
        let got = match Reader::<[u64; 2]>::open(&path) {
            Ok(r) => format!("{}", r.load().expect("load")[0]),
            Err(Error::Io { source, .. }) => format!("io-{:?}", source.kind()),
            Err(e) => format!("error-{e}").replace(' ', "_"),
        };
        common::report("group-reader", &[("got", got)]);
        return;
    }
    if common::child_role().as_deref() != Some("creator") {
        return;
    }
    let path = PathBuf::from(common::child_env(PATH_ENV));
    let value = huge();
    common::report("creator", &[("creating", "1".into())]);
    let opts = CreateOptions::new().slots(2);
    drop(Writer::<Huge>::create_with(&path, &value, &opts).expect("create"));
    common::report("creator", &[("created", "1".into())]);
}

#[test]
fn a_creator_killed_mid_create_leaves_no_partial_file() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("create-kill");
    let path = dir.join("big.state");
    let mut rng = common::Rng::from_env_or_clock("MS_CREATE_SEED");
    let (mut killed_before, mut finished) = (0, 0);
    for round in 0..8 {
        let _ = std::fs::remove_file(&path);
        let mut c = spawn_child(CHILD, "creator", &[(PATH_ENV, path.display().to_string())]);
        let hard = Instant::now() + Duration::from_secs(60);
        c.next_report(hard).expect("creator started");
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        c.kill9();
        let names = dir.names();
        let done = names.contains(&"big.state".to_string());
        if done {
            finished += 1;
            // A finished create: the file is complete and opens.
            assert!(
                Reader::<Huge>::open(&path).is_ok(),
                "round {round}: {names:?}"
            );
        } else {
            killed_before += 1;
        }
        for n in &names {
            assert!(
                n == "big.state" || n == ".big.state.lock",
                "round {round}: a killed creator left {n:?} behind ({names:?})"
            );
        }
        if let Ok(m) = std::fs::metadata(dir.join(".big.state.lock")) {
            assert_eq!(m.len(), 0, "the lock file is empty");
        }
    }
    println!("{killed_before} creators killed before publishing, {finished} finished");
    assert!(killed_before > 0, "no kill landed inside a create");
}

#[test]
fn a_stale_temporary_is_removed_by_the_next_create() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("create-stale");
    let path = dir.join("s.state");
    // What a creator that died before this release's unnamed files left.
    std::fs::write(
        dir.join(".s.state.4242.00000000deadbeef.tmp"),
        vec![1u8; 4096],
    )
    .unwrap();
    std::fs::write(dir.join(".other.state.4242.00000000deadbeef.tmp"), b"x").unwrap();
    drop(Writer::<[u64; 2]>::create(&path, &[1, 2]).unwrap());
    assert_eq!(
        dir.names(),
        [
            ".other.state.4242.00000000deadbeef.tmp",
            ".s.state.lock",
            "s.state"
        ],
        "only the temporaries of this path are removed"
    );
}

/// A mode that lets group or other users write the file is refused at create: every reader
/// would refuse the file. Asked for explicitly, it is created, and readers still refuse it
/// unless they opt in too.
#[test]
fn a_mode_every_reader_would_refuse_is_refused_at_create() {
    if common::child_role().is_some() {
        return;
    }
    let dir = TempDir::new("create-mode");
    let path = dir.join("w.state");
    let opts = CreateOptions::new().mode(0o666);
    match Writer::<[u64; 2]>::create_with(&path, &[1, 2], &opts) {
        Err(Error::Insecure {
            why: Insecurity::WritableByOthers { mode: 0o666 },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        dir.names().is_empty(),
        "a refused create leaves nothing: {:?}",
        dir.names()
    );
    let _w = Writer::<[u64; 2]>::create_with(&path, &[1, 2], &opts.allow_shared_writable(true))
        .expect("asked for explicitly");
    assert!(matches!(
        Reader::<[u64; 2]>::open(&path),
        Err(Error::Insecure {
            why: Insecurity::WritableByOthers { .. },
            ..
        })
    ));
    let r = Reader::<[u64; 2]>::open_with(&path, &OpenOptions::new().allow_shared_writable(true))
        .expect("a reader that opts in");
    assert_eq!(r.load().unwrap(), [1, 2]);
}

/// `CreateOptions::group` with mode 0640 shares a file with exactly one group: a process of
/// another user in that group reads it; one outside it cannot open it. (Needs root to create
/// for another group and to run the readers as other users; says so and checks only the group
/// otherwise.)
#[test]
fn a_group_shares_the_file_with_its_members_only() {
    if common::child_role().is_some() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    const GROUP: u32 = 4_242;
    let root = rustix::process::geteuid().is_root();
    let dir = TempDir::new("create-group");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("g.state");
    let gid = if root {
        GROUP
    } else {
        rustix::process::getegid().as_raw()
    };
    let opts = CreateOptions::new().mode(0o640).group(gid);
    let _w = Writer::<[u64; 2]>::create_with(&path, &[7, 7], &opts).expect("create for the group");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o7777), (gid, 0o640));
    if !root {
        println!("NOT RUN (needs root): readers of other users");
        return;
    }
    let read_as = |uid: u32, gid: u32| {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(common::ROLE_ENV, "group-reader")
            .env(PATH_ENV, &path)
            .uid(uid)
            .gid(gid)
            .output()
            .expect("run a reader as another user");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let report = text
            .lines()
            .find_map(common::parse_report)
            .unwrap_or_else(|| panic!("no report from the reader: {text}"));
        report["got"].clone()
    };
    assert_eq!(
        read_as(54_321, GROUP),
        "7",
        "a member of the group reads the file"
    );
    assert_eq!(
        read_as(54_322, 54_322),
        "io-PermissionDenied",
        "a user outside the group cannot open it"
    );
}
