//! Smoke test of the foundation: create, read, update, reopen with `[u64; N]` (no derive).

use mapped_state::{Reader, Writer};

#[test]
fn create_read_update_reopen() {
    let dir = std::env::temp_dir().join(format!("ms-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.state");
    let _ = std::fs::remove_file(&path);
    let mut w = Writer::<[u64; 5]>::create(&path, &[7; 5]).unwrap();
    let r = Reader::<[u64; 5]>::open(&path).unwrap();
    assert_eq!(r.load().unwrap(), [7; 5]);
    assert_eq!(r.version(), 0);
    assert_eq!(w.publish(&[9; 5]), 1);
    assert_eq!(r.load().unwrap(), [9; 5]);
    w.update(|v| v[2] = 1);
    assert_eq!(r.load_versioned().unwrap(), ([9, 9, 1, 9, 9], 2));
    assert!(r.writer_alive());
    assert!(matches!(
        Writer::<[u64; 5]>::open(&path),
        Err(mapped_state::Error::WriterActive { .. })
    ));
    drop(w);
    assert!(!r.writer_alive());
    let mut w = Writer::<[u64; 5]>::open(&path).unwrap();
    assert_eq!(w.get(), [9, 9, 1, 9, 9]);
    w.publish(&[3; 5]);
    assert_eq!(r.load().unwrap(), [3; 5]);
    let err = Reader::<[u32; 5]>::open(&path).unwrap_err();
    println!("{err}");
    assert!(matches!(err, mapped_state::Error::SchemaMismatch { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}
