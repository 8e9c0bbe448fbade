//! The process's async waker thread: started by the first wait that blocks, stopped when the
//! last waiter is gone, whether the waits completed or were cancelled. A test binary of its own
//! (and one test), so that no other test's waits change the thread count it observes.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use common::TempDir;
use mapped_state::test_hooks::async_waker_threads;
use mapped_state::{wait_any_async, AsyncUpdates, Reader, Writer};

const PATIENCE: Duration = Duration::from_secs(10);

/// Waits (bounded) until the waker thread count is `n`.
fn await_threads(n: usize, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while async_waker_threads() != n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} waker threads, expected {n}",
            async_waker_threads()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn cancelled_waits_leak_nothing_and_the_waker_thread_stops_with_the_last_waiter() {
    let dir = TempDir::new("async-waker");
    let path = dir.join("w.state");
    let mut w = Writer::<u64>::create(&path, &0).expect("create");
    let reader = std::sync::Arc::new(Reader::<u64>::open(&path).expect("open"));
    assert_eq!(async_waker_threads(), 0, "no thread before any wait");

    // A wait that finds its update at once starts nothing.
    let mut updates = AsyncUpdates::new(std::sync::Arc::clone(&reader));
    w.publish(&1);
    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut fut = pin!(updates.changed());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(u)) => assert_eq!(u.version, 1),
            other => panic!("expected the update at once, got {other:?}"),
        }
    }
    assert_eq!(
        async_waker_threads(),
        0,
        "a wait that did not block starts no thread"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A pending wait, cancelled by a timeout: the thread runs while it waits.
        let r = tokio::time::timeout(Duration::from_millis(30), updates.changed()).await;
        assert!(r.is_err(), "nothing was committed: the wait times out");
        assert_eq!(async_waker_threads(), 1, "one thread while a waiter exists");
        // Cancelled, nothing lost: a commit made now is the next update.
        w.publish(&2);
        let u = updates.changed().await.expect("update");
        assert_eq!((u.value, u.version, u.skipped), (2, 2, 0));

        // Several waiters on several files share the one thread.
        let other = dir.join("o.state");
        let mut w2 = Writer::<u64>::create(&other, &0).expect("create");
        let r2 = Reader::<u64>::open(&other).expect("open");
        let mut second = r2.updates_async();
        let mut follow = Reader::<u64>::follow(&other);
        assert!(matches!(
            futures_next(&mut follow).await,
            Some(Ok(mapped_state::Event::Opened(_)))
        ));
        let a = tokio::time::timeout(Duration::from_millis(20), updates.changed());
        let b = tokio::time::timeout(Duration::from_millis(20), second.changed());
        let c = tokio::time::timeout(Duration::from_millis(20), futures_next(&mut follow));
        let any = wait_any_async(&[(reader.raw(), reader.version()), (r2.raw(), 0)], None);
        let d = tokio::time::timeout(Duration::from_millis(20), any);
        let (a, b, c, d) = tokio::join!(a, b, c, d);
        assert!(
            a.is_err() && b.is_err() && c.is_err() && d.is_err(),
            "all time out"
        );
        assert_eq!(async_waker_threads(), 1, "one thread for every waiter");
        w2.publish(&1);
        let u = second.changed().await.expect("update of the other file");
        assert_eq!(u.version, 1);
        drop(second);
        drop(follow);
    });
    // Every wait is over but `updates` still lives: its slot keeps the thread (sleeping).
    assert_eq!(async_waker_threads(), 1);
    drop(updates);
    await_threads(0, "after the last waiter was dropped");

    // And it starts again for the next wait, and stops again.
    let mut again = AsyncUpdates::new(std::sync::Arc::clone(&reader));
    {
        let mut fut = pin!(again.changed());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(async_waker_threads(), 1);
    }
    drop(again);
    await_threads(0, "after a pending wait was dropped");

    // A waker whose drop drops another waiter (as an executor may, dropping a task with its
    // last waker): re-arming with another waker drops the old one, never under the waker's
    // lock (which the other waiter's drop takes). Bounded: a deadlock fails the test.
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::sync::Arc::clone(&reader);
    std::thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        let mut b = AsyncUpdates::new(std::sync::Arc::clone(&r));
        assert!(pin!(b.changed()).as_mut().poll(&mut cx).is_pending());
        let dropper = Waker::from(std::sync::Arc::new(DropsOnDrop(std::sync::Mutex::new(
            Some(b),
        ))));
        let mut a = AsyncUpdates::new(std::sync::Arc::clone(&r));
        let mut fut = pin!(a.changed());
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&dropper))
            .is_pending());
        drop(dropper); // the waker thread's registry holds the last reference
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let _ = tx.send(());
    });
    rx.recv_timeout(PATIENCE)
        .expect("re-arming with another waker dropped the old one without deadlocking");
    await_threads(0, "after the re-armed waiters were dropped");
}

/// A waker that owns a waiter, dropped with the waker's last reference.
struct DropsOnDrop(std::sync::Mutex<Option<AsyncUpdates<u64>>>);

impl std::task::Wake for DropsOnDrop {
    fn wake(self: std::sync::Arc<Self>) {}
}

impl Drop for DropsOnDrop {
    fn drop(&mut self) {
        let inner = self.0.lock().map(|mut g| g.take());
        drop(inner);
    }
}

/// The next item of a stream, without a `StreamExt`.
async fn futures_next<S: mapped_state::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}
