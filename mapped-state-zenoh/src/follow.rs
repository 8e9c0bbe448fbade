//! The following side: receives a source's versions and commits them into a local replica.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mapped_state::{CreateOptions, Error, OpenOptions, RawWriter, Writer};
use zenoh::handlers::RingChannel;
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait;

use crate::status::{status_path, MirrorStatus, SourceEntry};
use crate::wire::{decode_snapshot, Meta};
use crate::{keys, Event, EventSink, MirrorError, Network};

/// How a [`Follower`] runs.
#[derive(Clone)]
pub struct FollowOptions {
    /// The zenoh session.
    pub network: Network,
    /// How the replica is created (mode, group, slots); `replace` is always set, so a schema
    /// change at the source replaces the replica.
    pub create: CreateOptions,
    /// How long a snapshot query waits for its reply, and how often one is retried while the
    /// replica has no value yet (default 500 ms).
    pub query_timeout: Duration,
    /// Called with each [`Event`] (default: none).
    pub events: Option<EventSink>,
}

impl std::fmt::Debug for FollowOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowOptions")
            .field("network", &self.network)
            .field("create", &self.create)
            .field("query_timeout", &self.query_timeout)
            .finish_non_exhaustive()
    }
}

impl FollowOptions {
    /// Connects to [`DEFAULT_CONNECT`](crate::DEFAULT_CONNECT) (loopback), no events.
    pub fn new() -> Self {
        FollowOptions {
            network: Network::connect(crate::DEFAULT_CONNECT),
            create: CreateOptions::new(),
            query_timeout: Duration::from_millis(500),
            events: None,
        }
    }
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of a running [`Follower`].
#[derive(Debug, Default)]
pub struct FollowStats {
    /// Values committed into the replica.
    pub committed: AtomicU64,
    /// Source versions never committed (skipped by the publisher, or lost on the way).
    pub skipped: AtomicU64,
    /// Times the replica file was created (first value, schema change, source recreated with
    /// another schema).
    pub replicas: AtomicU64,
    /// Values received that were older than the replica's (late snapshot replies): ignored.
    pub stale: AtomicU64,
}

/// A running follower: a thread committing received values into the replica, and its zenoh
/// session. Stops on [`stop`](Self::stop) or drop; the replica stays, with no writer.
#[derive(Debug)]
pub struct Follower {
    task: crate::task::Task,
    stats: Arc<FollowStats>,
}

impl Follower {
    /// Opens the zenoh session, then follows `key` into the replica at `to` on a thread.
    pub fn spawn(
        key: &str,
        to: impl Into<PathBuf>,
        opts: FollowOptions,
    ) -> Result<Follower, MirrorError> {
        let keys = keys(key)?;
        let to = to.into();
        let session = zenoh::open(opts.network.zenoh_config()?)
            .wait()
            .map_err(MirrorError::zenoh("open the zenoh session"))?;
        // Newest wins: a slow follower keeps only the newest sample, and counts the rest as
        // skipped from the versions.
        let subscriber = session
            .declare_subscriber(keys.data.clone())
            .with(RingChannel::new(1))
            .wait()
            .map_err(MirrorError::zenoh("declare the subscriber"))?;
        let liveness = session
            .liveliness()
            .declare_subscriber(format!("{}/_mirror/*", keys.data))
            .history(true)
            .with(zenoh::handlers::FifoChannel::new(64))
            .wait()
            .map_err(MirrorError::zenoh("declare the liveliness subscriber"))?;
        let status = open_status(&status_path(&to))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(FollowStats::default());
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("mirror-follow".into())
                .spawn(move || {
                    let mut run = Run {
                        to,
                        keys,
                        session,
                        replica: None,
                        status,
                        stats,
                        stop,
                        opts,
                        publisher_alive: false,
                        writer_alive: false,
                    };
                    let result = run.follow(&subscriber, &liveness);
                    drop(subscriber);
                    drop(liveness);
                    let _ = run.session.close().wait();
                    result
                })
                .map_err(|e| MirrorError::Config {
                    what: "spawn the follower thread".into(),
                    why: e.to_string(),
                })?
        };
        Ok(Follower {
            task: crate::task::Task::new(stop, thread, "the follower thread"),
            stats,
        })
    }

    /// The follower's counters.
    pub fn stats(&self) -> &FollowStats {
        &self.stats
    }

    /// Whether the following thread has ended (on `stop`, or an error it cannot get past,
    /// such as a replica path held by another writer).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops following, closes the session and returns how the thread ended.
    pub fn stop(mut self) -> Result<(), MirrorError> {
        self.task.finish()
    }
}

/// Opens (takes over) or creates the status file.
fn open_status(path: &Path) -> Result<Writer<MirrorStatus>, MirrorError> {
    match Writer::<MirrorStatus>::open(path) {
        Ok(mut w) => {
            w.update(|s| s.follower_pid = u64::from(std::process::id()));
            Ok(w)
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Writer::create(path, &MirrorStatus::empty(0))?)
        }
        // Not a status file of this type: replaced (a live writer is still refused).
        Err(Error::SchemaMismatch { .. }) | Err(Error::UnsupportedVersion { .. }) => {
            Ok(Writer::create_with(
                path,
                &MirrorStatus::empty(0),
                &CreateOptions::new().replace(true),
            )?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The replica being written.
struct Replica {
    writer: RawWriter,
    schema_hash: u64,
    /// The source file and version the replica's current value came from.
    source: Option<(u64, u64)>,
}

struct Run {
    to: PathBuf,
    keys: crate::Keys,
    session: zenoh::Session,
    replica: Option<Replica>,
    status: Writer<MirrorStatus>,
    stats: Arc<FollowStats>,
    stop: Arc<AtomicBool>,
    opts: FollowOptions,
    publisher_alive: bool,
    writer_alive: bool,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Run {
    fn event(&self, e: Event) {
        if let Some(sink) = &self.opts.events {
            sink(&e);
        }
    }

    fn follow(
        &mut self,
        subscriber: &zenoh::pubsub::Subscriber<zenoh::handlers::RingChannelHandler<Sample>>,
        liveness: &zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<Sample>>,
    ) -> Result<(), MirrorError> {
        let mut want_snapshot = true;
        let mut last_query: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(Some(s)) = liveness.try_recv() {
                let alive = s.kind() == SampleKind::Put;
                let key = s.key_expr().as_str();
                if key == self.keys.publisher.as_str() && alive != self.publisher_alive {
                    self.publisher_alive = alive;
                    self.event(if alive {
                        Event::PublisherUp
                    } else {
                        Event::PublisherGone
                    });
                    // Back after a network loss or a restart: the value may have moved on
                    // while nothing was received.
                    want_snapshot |= alive;
                } else if key == self.keys.writer.as_str() && alive != self.writer_alive {
                    self.writer_alive = alive;
                    self.event(if alive {
                        Event::SourceWriterAlive
                    } else {
                        Event::SourceWriterGone
                    });
                }
                let (p, w) = (self.publisher_alive, self.writer_alive);
                self.status.update(|st| {
                    st.publisher_alive = p;
                    st.source_writer_alive = w;
                    st.heard_ns = now_ns();
                });
            }
            if want_snapshot && last_query.is_none_or(|t| t.elapsed() >= self.opts.query_timeout) {
                last_query = Some(Instant::now());
                want_snapshot = !self.query_snapshot()?;
            }
            match subscriber.recv_timeout(Duration::from_millis(50)) {
                Ok(Some(sample)) => {
                    let meta = match sample.attachment().map(|a| Meta::decode(&a.to_bytes())) {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            self.event(Event::Refused(e.to_string()));
                            continue;
                        }
                        None => {
                            self.event(Event::Refused("value without attachment".into()));
                            continue;
                        }
                    };
                    match &self.replica {
                        Some(r) if r.schema_hash == meta.schema_hash => {
                            self.commit(&sample.payload().to_bytes(), meta)?;
                        }
                        // A new schema (or no replica yet): the manifest comes with a snapshot.
                        _ => {
                            if !self.query_snapshot()? {
                                want_snapshot = true;
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(MirrorError::zenoh("receive")(e)),
            }
        }
        Ok(())
    }

    /// Asks the publisher for the manifest and newest value; `Ok(false)` when nobody answered.
    fn query_snapshot(&mut self) -> Result<bool, MirrorError> {
        let replies = match self
            .session
            .get(self.keys.snapshot.clone())
            .timeout(self.opts.query_timeout)
            .wait()
        {
            Ok(r) => r,
            Err(e) => {
                self.event(Event::NetworkError(e.to_string()));
                return Ok(false);
            }
        };
        let mut got = false;
        while let Ok(reply) = replies.recv() {
            let Ok(sample) = reply.result() else { continue };
            let meta = match sample.attachment().map(|a| Meta::decode(&a.to_bytes())) {
                Some(Ok(m)) => m,
                _ => {
                    self.event(Event::Refused("snapshot without a valid attachment".into()));
                    continue;
                }
            };
            let payload = sample.payload().to_bytes();
            let (manifest, value) = match decode_snapshot(&payload) {
                Ok(x) => x,
                Err(e) => {
                    self.event(Event::Refused(e.to_string()));
                    continue;
                }
            };
            if meta.big_endian != cfg!(target_endian = "big") {
                self.event(Event::Refused(
                    "snapshot from a machine of the other byte order".into(),
                ));
                continue;
            }
            if mapped_state::schema::fnv1a64(manifest) != meta.schema_hash {
                self.event(Event::Refused(format!(
                    "snapshot's manifest does not hash to its schema hash {:#018x}",
                    meta.schema_hash
                )));
                continue;
            }
            self.ensure_replica(manifest, value, meta)?;
            self.commit(value, meta)?;
            got = true;
        }
        Ok(got)
    }

    /// Makes `self.replica` a replica of schema `meta.schema_hash`: keeps it, takes over the
    /// file at the path if it has that schema, or creates one (replacing what is there).
    fn ensure_replica(
        &mut self,
        manifest: &[u8],
        value: &[u8],
        meta: Meta,
    ) -> Result<(), MirrorError> {
        if self
            .replica
            .as_ref()
            .is_some_and(|r| r.schema_hash == meta.schema_hash)
        {
            return Ok(());
        }
        let old_hash = self.replica.take().map(|r| r.schema_hash);
        let writer = match RawWriter::open(&self.to, &OpenOptions::new()) {
            Ok(w) if w.header().schema_hash == meta.schema_hash => {
                self.event(Event::ReplicaTakenOver {
                    path: self.to.clone(),
                    version: w.version(),
                });
                Some(w)
            }
            Ok(_) => None,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
            Err(e @ Error::WriterActive { .. }) => return Err(e.into()),
            // Anything else at the path (another schema, an invalid file) is replaced below;
            // what cannot be replaced (not a state file, insecure) fails there.
            Err(_) => None,
        };
        let writer = match writer {
            Some(w) => w,
            None => {
                let w = RawWriter::create_from_manifest(
                    &self.to,
                    manifest,
                    value,
                    &self.opts.create.clone().replace(true),
                )?;
                self.stats.replicas.fetch_add(1, Ordering::Relaxed);
                self.event(Event::ReplicaCreated {
                    path: self.to.clone(),
                    schema_hash: meta.schema_hash,
                    replaced_schema: old_hash,
                });
                w
            }
        };
        let nonce = writer.header().nonce;
        let (p, w) = (self.publisher_alive, self.writer_alive);
        self.status.update(|s| {
            (s.publisher_alive, s.source_writer_alive) = (p, w);
            if s.replica_nonce != nonce {
                // Entries of another file mean nothing for this one.
                let keep = (s.received, s.skipped_total);
                *s = MirrorStatus::empty(nonce);
                (s.received, s.skipped_total) = keep;
            }
            s.source_schema_hash = meta.schema_hash;
        });
        let st = self.status.get();
        let source = (st.source_nonce != 0 || st.source_version != 0)
            .then_some((st.source_nonce, st.source_version))
            .filter(|_| st.replica_nonce == nonce && st.source_schema_hash == meta.schema_hash);
        self.replica = Some(Replica {
            writer,
            schema_hash: meta.schema_hash,
            source,
        });
        Ok(())
    }

    /// Commits `value` (source version `meta.version`) into the replica, after recording it
    /// in the status file. Ignores a value no newer than the replica's.
    fn commit(&mut self, value: &[u8], meta: Meta) -> Result<(), MirrorError> {
        let events = self.opts.events.clone();
        let event = |e: Event| {
            if let Some(sink) = &events {
                sink(&e);
            }
        };
        let Some(r) = self.replica.as_mut() else {
            return Ok(());
        };
        if meta.big_endian != cfg!(target_endian = "big") {
            event(Event::Refused(
                "value from a machine of the other byte order (payloads are native-endian)".into(),
            ));
            return Ok(());
        }
        if value.len() != r.writer.header().payload_size as usize {
            event(Event::Refused(format!(
                "value of {} bytes for a payload of {}",
                value.len(),
                r.writer.header().payload_size
            )));
            return Ok(());
        }
        let skipped = match r.source {
            Some((nonce, v)) if nonce == meta.source_nonce => {
                if meta.version <= v {
                    // A late snapshot reply or a repeat (liveness change): nothing new, but
                    // the liveness it carries is news.
                    if meta.version < v {
                        self.stats.stale.fetch_add(1, Ordering::Relaxed);
                    }
                    let alive = meta.writer_alive;
                    self.status.update(|s| {
                        s.source_writer_alive = alive;
                        s.heard_ns = now_ns();
                    });
                    return Ok(());
                }
                meta.version - v - 1
            }
            Some(_) => {
                event(Event::SourceRecreated {
                    schema_hash: meta.schema_hash,
                });
                0
            }
            None => 0,
        };
        let created_now = r.source.is_none() && r.writer.version() == 0;
        let entry = SourceEntry {
            source_version: meta.version,
            skipped,
            source_commit_ns: meta.commit_ns,
        };
        // Version 0 of a fresh replica already holds the value it was created with.
        let replica_version = if created_now && r.writer.current() == value {
            0
        } else {
            r.writer.version() + 1
        };
        let nonce = r.writer.header().nonce;
        let publisher_alive = self.publisher_alive;
        self.status.update(|s| {
            s.publisher_alive = publisher_alive;
            if s.replica_nonce != nonce {
                *s = MirrorStatus {
                    received: s.received,
                    skipped_total: s.skipped_total,
                    ..MirrorStatus::empty(nonce)
                };
            }
            s.record(replica_version, entry);
            s.source_nonce = meta.source_nonce;
            s.source_schema_hash = meta.schema_hash;
            s.source_writer_alive = meta.writer_alive;
            s.heard_ns = now_ns();
        });
        if replica_version != 0 {
            r.writer.write_bytes(0, value);
        }
        r.source = Some((meta.source_nonce, meta.version));
        self.stats.committed.fetch_add(1, Ordering::Relaxed);
        self.stats.skipped.fetch_add(skipped, Ordering::Relaxed);
        Ok(())
    }
}
