//! The thread behind a [`Publisher`](crate::Publisher) or a [`Follower`](crate::Follower): a stop
//! flag it polls, and joining it on stop or drop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::MirrorError;

/// A running mirror thread, stopped and joined on [`finish`](Self::finish) or drop.
#[derive(Debug)]
pub(crate) struct Task {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), MirrorError>>>,
    /// What the thread is, for the error of one that panicked.
    what: &'static str,
}

impl Task {
    pub(crate) fn new(
        stop: Arc<AtomicBool>,
        thread: JoinHandle<Result<(), MirrorError>>,
        what: &'static str,
    ) -> Self {
        Task {
            stop,
            thread: Some(thread),
            what,
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Tells the thread to stop and returns how it ended.
    pub(crate) fn finish(&mut self) -> Result<(), MirrorError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(MirrorError::Config {
                    what: self.what.into(),
                    why: "panicked".into(),
                })
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
