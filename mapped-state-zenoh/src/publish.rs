//! The publishing side: follows a local state file and publishes each version it observes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mapped_state::{Error, RawReader};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::wire::{encode_snapshot, Meta};
use crate::{keys, Event, EventSink, MirrorError, Network};

/// How a [`Publisher`] runs.
#[derive(Clone)]
pub struct PublishOptions {
    /// The zenoh session.
    pub network: Network,
    /// How long to wait between attempts to open a missing or invalid source file, and between
    /// liveness looks while its writer is gone (default 100 ms).
    pub poll: Duration,
    /// Called with each [`Event`] (default: none).
    pub events: Option<EventSink>,
}

impl std::fmt::Debug for PublishOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishOptions")
            .field("network", &self.network)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl PublishOptions {
    /// Listens on [`DEFAULT_LISTEN`](crate::DEFAULT_LISTEN) (loopback), no events.
    pub fn new() -> Self {
        PublishOptions {
            network: Network::listen(crate::DEFAULT_LISTEN),
            poll: Duration::from_millis(100),
            events: None,
        }
    }
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of a running [`Publisher`].
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Values published.
    pub published: AtomicU64,
    /// Source versions not published (newer ones were, by then).
    pub skipped: AtomicU64,
    /// Snapshot queries answered.
    pub snapshots: AtomicU64,
    /// Times the source file was (re)opened.
    pub opens: AtomicU64,
}

/// The newest published value, for the queryable.
struct Latest {
    manifest: Arc<[u8]>,
    value: Vec<u8>,
    meta: Meta,
}

/// A running publisher: a thread following the source file, and its zenoh session. Stops (and
/// closes the session, withdrawing its liveliness tokens) on [`stop`](Self::stop) or drop.
#[derive(Debug)]
pub struct Publisher {
    task: crate::task::Task,
    stats: Arc<PublishStats>,
}

impl Publisher {
    /// Opens the zenoh session (the error if it cannot), then follows `path` on a thread and
    /// publishes on `key`. The source file need not exist yet.
    pub fn spawn(
        path: impl Into<PathBuf>,
        key: &str,
        opts: PublishOptions,
    ) -> Result<Publisher, MirrorError> {
        let keys = keys(key)?;
        let path = path.into();
        let session = zenoh::open(opts.network.zenoh_config()?)
            .wait()
            .map_err(MirrorError::zenoh("open the zenoh session"))?;
        let publisher = session
            .declare_publisher(keys.data.clone())
            // Newest wins: while a slow link blocks `put`, the source moves on, and the next
            // read takes its newest version (counted as skipped) — conflation at the source,
            // never a dropped newest value.
            .congestion_control(CongestionControl::Block)
            .express(true)
            .wait()
            .map_err(MirrorError::zenoh("declare the publisher"))?;
        let latest: Arc<Mutex<Option<Latest>>> = Arc::new(Mutex::new(None));
        let stats = Arc::new(PublishStats::default());
        let queryable = {
            let latest = latest.clone();
            let stats = stats.clone();
            let snapshot_key = keys.snapshot.clone();
            session
                .declare_queryable(keys.snapshot.clone())
                .callback(move |query| {
                    let reply = {
                        let guard = latest.lock().unwrap_or_else(|p| p.into_inner());
                        guard
                            .as_ref()
                            .map(|l| (encode_snapshot(&l.manifest, &l.value), l.meta.encode()))
                    };
                    if let Some((payload, meta)) = reply {
                        let _ = query
                            .reply(snapshot_key.clone(), payload)
                            .attachment(meta.to_vec())
                            .wait();
                        stats.snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .wait()
                .map_err(MirrorError::zenoh("declare the snapshot queryable"))?
        };
        let token = session
            .liveliness()
            .declare_token(keys.publisher.clone())
            .wait()
            .map_err(MirrorError::zenoh(
                "declare the publisher's liveliness token",
            ))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("mirror-publish".into())
                .spawn(move || {
                    let mut run = Run {
                        path,
                        keys,
                        session,
                        publisher,
                        latest,
                        stats,
                        stop,
                        opts,
                        writer_token: None,
                    };
                    let result = run.follow();
                    drop(queryable);
                    drop(token);
                    let _ = run.session.close().wait();
                    result
                })
                .map_err(|e| MirrorError::Config {
                    what: "spawn the publisher thread".into(),
                    why: e.to_string(),
                })?
        };
        Ok(Publisher {
            task: crate::task::Task::new(stop, thread, "the publisher thread"),
            stats,
        })
    }

    /// The publisher's counters.
    pub fn stats(&self) -> &PublishStats {
        &self.stats
    }

    /// Whether the publishing thread has ended (it ends only on `stop` or a zenoh failure).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops publishing, withdraws the liveliness tokens and closes the session.
    pub fn stop(mut self) -> Result<(), MirrorError> {
        self.task.finish()
    }
}

struct Run {
    path: PathBuf,
    keys: crate::Keys,
    session: zenoh::Session,
    publisher: zenoh::pubsub::Publisher<'static>,
    latest: Arc<Mutex<Option<Latest>>>,
    stats: Arc<PublishStats>,
    stop: Arc<AtomicBool>,
    opts: PublishOptions,
    writer_token: Option<zenoh::liveliness::LivelinessToken>,
}

impl Run {
    fn event(&self, e: Event) {
        if let Some(sink) = &self.opts.events {
            sink(&e);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Opens the source, publishes it until it is replaced or unreadable, and again.
    fn follow(&mut self) -> Result<(), MirrorError> {
        let mut missing_said = false;
        while !self.stopped() {
            let (reader, manifest) = match open_source(&self.path) {
                Ok(r) => r,
                Err(e) => {
                    if !missing_said {
                        self.event(Event::SourceUnavailable(e.to_string()));
                        missing_said = true;
                    }
                    std::thread::sleep(self.opts.poll);
                    continue;
                }
            };
            missing_said = false;
            self.stats.opens.fetch_add(1, Ordering::Relaxed);
            self.event(Event::SourceOpened {
                path: self.path.clone(),
                schema_hash: reader.header().schema_hash,
                version: reader.version(),
            });
            if let Err(e) = self.publish_file(&reader, manifest) {
                self.event(Event::SourceUnavailable(e.to_string()));
            }
        }
        self.set_writer_alive(false)?;
        Ok(())
    }

    fn set_writer_alive(&mut self, alive: bool) -> Result<(), MirrorError> {
        if alive && self.writer_token.is_none() {
            self.writer_token = Some(
                self.session
                    .liveliness()
                    .declare_token(self.keys.writer.clone())
                    .wait()
                    .map_err(MirrorError::zenoh("declare the writer's liveliness token"))?,
            );
        } else if !alive {
            if let Some(t) = self.writer_token.take() {
                let _ = t.undeclare().wait();
            }
        }
        Ok(())
    }

    /// Publishes the versions of one source file until it is superseded (`Ok`) or fails.
    fn publish_file(&mut self, reader: &RawReader, manifest: Arc<[u8]>) -> Result<(), Error> {
        let hash = reader.header().schema_hash;
        let nonce = reader.header().nonce;
        let mut last: Option<u64> = None;
        let mut alive = reader.writer_alive();
        let _ = self.set_writer_alive(alive);
        if !alive {
            self.event(Event::SourceWriterGone);
        }
        let mut buf = vec![0u8; reader.header().payload_size as usize];
        while !self.stopped() {
            let version = match reader.snapshot_into(&mut buf) {
                Ok(v) => v,
                Err(Error::Contended { .. }) => continue,
                Err(e) => return Err(e),
            };
            if last != Some(version) {
                let skipped = last.map_or(0, |l| version.saturating_sub(l + 1));
                let meta = Meta {
                    version,
                    schema_hash: hash,
                    commit_ns: reader
                        .last_commit()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64),
                    skipped,
                    source_nonce: nonce,
                    writer_alive: alive,
                    big_endian: cfg!(target_endian = "big"),
                };
                self.put(&buf, meta, &manifest);
                self.stats.skipped.fetch_add(skipped, Ordering::Relaxed);
                last = Some(version);
            }
            match reader.wait_for_update(version, Some(self.opts.poll)) {
                Ok(_) => {
                    if !alive && reader.writer_alive() {
                        alive = true;
                        let _ = self.set_writer_alive(true);
                        self.event(Event::SourceWriterAlive);
                        // Republish the current value with the new liveness.
                        last = None;
                    }
                }
                Err(Error::WriterGone {
                    superseded: true, ..
                }) => return Ok(()),
                Err(Error::WriterGone { .. }) => {
                    if reader.superseded() {
                        return Ok(());
                    }
                    if alive {
                        alive = false;
                        let _ = self.set_writer_alive(false);
                        self.event(Event::SourceWriterGone);
                        last = None;
                    }
                    // Versions committed just before the writer died are still read above;
                    // then wait for a new writer, a replacement or a late commit.
                    let v = reader.wait_for_version_change(version, self.opts.poll);
                    if v == version && reader.writer_alive() {
                        alive = true;
                        let _ = self.set_writer_alive(true);
                        self.event(Event::SourceWriterAlive);
                        last = None;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn put(&self, value: &[u8], meta: Meta, manifest: &Arc<[u8]>) {
        {
            let mut guard = self.latest.lock().unwrap_or_else(|p| p.into_inner());
            *guard = Some(Latest {
                manifest: manifest.clone(),
                value: value.to_vec(),
                meta,
            });
        }
        match self
            .publisher
            .put(value.to_vec())
            .attachment(meta.encode().to_vec())
            .wait()
        {
            Ok(()) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.event(Event::NetworkError(e.to_string())),
        }
    }
}

/// Opens the source and reads its manifest bytes, checked against the header's schema hash.
pub(crate) fn open_source(path: &Path) -> Result<(RawReader, Arc<[u8]>), MirrorError> {
    let reader = RawReader::open(path)?;
    let h = *reader.header();
    let file = std::fs::File::open(path).map_err(|e| MirrorError::Io {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    let mut manifest = vec![0u8; h.manifest_len as usize];
    file.read_exact_at(&mut manifest, h.manifest_offset)
        .map_err(|e| MirrorError::Io {
            path: path.to_owned(),
            why: format!("read manifest: {e}"),
        })?;
    if mapped_state::schema::fnv1a64(&manifest) != h.schema_hash {
        // Replaced between the two opens: the caller retries.
        return Err(MirrorError::Io {
            path: path.to_owned(),
            why: "replaced while being opened".into(),
        });
    }
    Ok((reader, manifest.into()))
}
