//! `RawWriter`: the single writer of a state file, with no Rust type attached. Creates files
//! (`create.rs`), takes over existing ones (lock, validate, recover), and commits through the
//! ring, storing into each commit's slot only the words it lacks (`slots.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::create::{create, nonce, CreateOptions};
use crate::error::Error;
use crate::format::Header;
use crate::lock::{acquire, record_closed, record_writer, WriterLock};
use crate::map::Mapping;
use crate::notify::{WakePolicy, Waker};
use crate::open::{open_checked, validate, OpenOptions, Validated};
use crate::schema::{manifest_bytes, TypeDesc};
use crate::slots::{Changed, Slots};
use crate::words::{bytes_of, bytes_of_mut, word_of, word_span};

/// The writer of a state file, with no Rust type attached. Holds the exclusive lock for its life.
#[derive(Debug)]
pub struct RawWriter {
    // Dropped first: stops the wake keeper, which wakes waiters for the last commits.
    waker: Waker,
    path: PathBuf,
    header: Header,
    map: Arc<Mapping>,
    /// The ring's `seq`: only this writer stores it, so it keeps its own copy.
    seq: u64,
    /// The committed payload, `payload_words` words.
    current: Vec<u64>,
    /// What each slot lacks compared with `current`.
    slots: Slots,
    /// Reused per commit: the words that change.
    changed: Vec<u32>,
    /// Publishes since the last one that compared the new value with the current one; `None`
    /// while publishes change few words (and are compared, so that a slot gets only those).
    blind: Option<u32>,
    /// The writer lock, dropped last (after `Drop` flagged the file closed).
    _lock: WriterLock,
}

impl Drop for RawWriter {
    fn drop(&mut self) {
        // Announce the last commits (the keeper's final look), then tell readers nobody writes
        // any more, and wake them so a waiter learns it at its next liveness look.
        self.waker.stop();
        record_closed(&self.map);
        self.map.notify().fetch_add(1, Ordering::Release);
        crate::os::futex_wake_all(self.map.notify());
    }
}

impl RawWriter {
    /// Creates a state file for a payload described by `ty` with initial bytes `initial`
    /// (`ty.size` long), atomically: it appears at `path` complete or not at all.
    pub fn create(
        path: &Path,
        ty: &TypeDesc,
        initial: &[u8],
        opts: &CreateOptions,
    ) -> Result<Self, Error> {
        assert_eq!(initial.len(), ty.size, "initial value of the wrong size");
        let manifest = manifest_bytes(ty);
        let name = crate::manifest::Type::from_desc(ty).name();
        Self::create_described(path, &manifest, &name, ty.size, ty.align, initial, opts)
    }

    /// Creates a state file from a schema manifest's bytes (as stored in another state file, see
    /// `docs/FORMAT.md`) and the initial payload bytes, with no Rust type: the untyped create
    /// that a replica of a remote file needs. The manifest is decoded and validated first
    /// ([`Error::CorruptManifest`] naming the byte), and `initial` must be exactly the payload
    /// size it describes ([`Error::UnsupportedType`] otherwise). The file gets the manifest's
    /// schema hash, so `Reader<T>` of the same type opens it.
    pub fn create_from_manifest(
        path: &Path,
        manifest: &[u8],
        initial: &[u8],
        opts: &CreateOptions,
    ) -> Result<Self, Error> {
        let ty =
            crate::manifest::Type::from_manifest(manifest).map_err(|e| Error::CorruptManifest {
                path: path.to_owned(),
                offset: e.offset,
                reason: e.reason,
            })?;
        if initial.len() != ty.size {
            return Err(Error::UnsupportedType {
                path: path.to_owned(),
                name: ty.name(),
                reason: format!(
                    "initial value of {} bytes, the manifest's type has {} bytes",
                    initial.len(),
                    ty.size
                ),
            });
        }
        Self::create_described(path, manifest, &ty.name(), ty.size, ty.align, initial, opts)
    }

    /// `create` from a validated manifest of a type named `name`, `size` bytes aligned to
    /// `align`; `initial` is `size` bytes.
    fn create_described(
        path: &Path,
        manifest: &[u8],
        name: &str,
        size: usize,
        align: usize,
        initial: &[u8],
        opts: &CreateOptions,
    ) -> Result<Self, Error> {
        let hash = crate::schema::fnv1a64(manifest);
        let unsupported = |reason: String| Error::UnsupportedType {
            path: path.to_owned(),
            name: name.to_owned(),
            reason,
        };
        if !crate::format::slots_ok(opts.slots) {
            return Err(unsupported(format!(
                "a ring of {} slots (format v2 takes a power of two from {} to {})",
                opts.slots,
                crate::format::MIN_SLOTS,
                crate::format::MAX_SLOTS
            )));
        }
        let header = Header::for_payload(hash, size, align, opts.slots, manifest.len(), nonce())
            .ok_or_else(|| {
                unsupported(format!(
                    "payload of {} bytes aligned to {} in {} slots (format v2 takes 1 byte to 1 GiB, alignment up to 64, a ring up to 4 GiB)",
                    size, align, opts.slots
                ))
            })?;
        let created = create(path, &header, manifest, initial, opts)?;
        let map =
            Mapping::read_write(&created.file, &header).map_err(|e| Error::io(path, "mmap", e))?;
        let mut current = vec![0u64; header.payload_words()];
        bytes_of_mut(&mut current)[..initial.len()].copy_from_slice(initial);
        drop(created.file);
        Ok(Self::assemble(
            path,
            created.lock,
            header,
            map,
            0,
            current,
            true,
        ))
    }

    fn assemble(
        path: &Path,
        lock: WriterLock,
        header: Header,
        map: Mapping,
        seq: u64,
        current: Vec<u64>,
        slots_known: bool,
    ) -> Self {
        let words = header.payload_words();
        RawWriter {
            waker: Waker::new(),
            path: path.to_owned(),
            slots: Slots::new(header.slot_count as usize, words, slots_known),
            header,
            map: Arc::new(map),
            seq,
            current,
            changed: Vec::new(),
            blind: None,
            _lock: lock,
        }
    }

    /// Takes over an existing, valid state file of any schema: locks it, validates it, and
    /// completes a commit a dead writer left half done.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self, Error> {
        Self::open_vetted(path, opts, |_| Ok(()))
    }

    /// `open`, with `check` vetting the validated file before anything is changed (the typed
    /// writer checks the schema here).
    pub(crate) fn open_vetted(
        path: &Path,
        opts: &OpenOptions,
        check: impl FnOnce(&Validated) -> Result<(), Error>,
    ) -> Result<Self, Error> {
        // Header and manifest never change once published: validate before taking the lock, so
        // refusing a file leaves no lock file behind it.
        let v = validate(path, open_checked(path, true, opts)?)?;
        check(&v)?;
        let lock = acquire(path, || crate::create::recorded_pid(path))?;
        let map =
            Mapping::read_write(&v.file, &v.header).map_err(|e| Error::io(path, "mmap", e))?;
        let ring = map.ring();
        let (seq, _) = ring.recover();
        let mut current = vec![0u64; v.header.payload_words()];
        // We hold the lock: nobody commits, so the first read is accepted.
        let words = current.len();
        ring.read(0, words, u32::MAX, |i, w| current[i] = w)
            .map_err(|attempts| Error::Contended {
                path: path.to_owned(),
                attempts,
            })?;
        record_writer(&map);
        // The slots' contents are the dead writer's business: rewrite each whole on first use.
        Ok(Self::assemble(
            path, lock, v.header, map, seq, current, false,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The committed payload bytes (`payload_size` long).
    pub fn current(&self) -> &[u8] {
        &bytes_of(&self.current)[..self.header.payload_size as usize]
    }

    /// Number of commits since the file was created.
    pub fn version(&self) -> u64 {
        self.seq >> 1
    }

    /// Commits `bytes` as the payload from byte `offset` on, storing only the words that the
    /// commit's slot lacks, then wakes waiting readers as the wake policy says. Returns the new
    /// version. Every call is one commit, even when no word changes (the version still advances:
    /// a heartbeat). Panics when the bytes do not fit in the payload.
    pub fn write_bytes(&mut self, offset: usize, bytes: &[u8]) -> u64 {
        let size = self.header.payload_size as usize;
        let end = offset.checked_add(bytes.len());
        assert!(
            end.is_some_and(|e| e <= size),
            "write of {} bytes at payload byte {offset} goes past the payload ({size} bytes)",
            bytes.len()
        );
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        let (first, words) = word_span(offset, bytes.len());
        let cur = bytes_of_mut(&mut self.current);
        for w in first..first + words {
            let old = word_of(cur, w);
            let (lo, hi) = ((w * 8).max(offset), (w * 8 + 8).min(offset + bytes.len()));
            cur[lo..hi].copy_from_slice(&bytes[lo - offset..hi - offset]);
            if word_of(cur, w) != old {
                changed.push(w as u32);
            }
        }
        let all = changed.len() > self.slots.limit();
        let version = self.commit_changes(if all {
            Changed::All
        } else {
            Changed::Words(&changed)
        });
        self.changed = changed;
        version
    }

    /// Commits a whole new payload, `payload_size` bytes (the bytes past it, to the end of the
    /// last word, are zero). Compares it with the current value word by word while storing, so
    /// an unchanged word costs no store unless the slot lacks it.
    // One index walks three slices of proven lengths (source, current value, slot): the
    // iterator form clippy suggests zips them and measured slower.
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn publish_bytes(&mut self, bytes: &[u8]) -> u64 {
        debug_assert_eq!(bytes.len(), self.header.payload_size as usize);
        if self.slots.stores_whole() {
            return self.publish_small(bytes);
        }
        let wake = self.waker.before_commit(&self.map);
        let target = self.target_slot();
        let whole = self.slots.lacks_all(target);
        let limit = self.slots.limit();
        // After a publish that changed most words, the next ones are stored blind, and one in
        // `RECHECK` is compared again to notice when publishes start changing few words.
        const RECHECK: u32 = 16;
        let blind = self.slots.stores_whole()
            || self
                .blind
                .is_some_and(|since| !since.is_multiple_of(RECHECK));
        let mut changed = std::mem::take(&mut self.changed);
        // Indexed, not pushed: no capacity check per word in the loop below.
        changed.resize(limit, 0);
        let mut n = 0usize;
        let current = self.current.as_mut_slice();
        let slots = &self.slots;
        self.seq = self.map.ring().commit(self.seq, |slot| {
            let (full, tail) = bytes.split_at(bytes.len() / 8 * 8);
            let words = full.len() / 8;
            let (cur, cur_tail) = current.split_at_mut(words);
            let list = &mut changed[..limit];
            // Plain index loops over slices of proven lengths (no bounds checks left), one for
            // a slot that lacks everything (stored as we go) and one for a slot brought up to
            // date from the list afterwards.
            let (src, dst) = (&full[..words * 8], &slot[..words]);
            let word = |i: usize| {
                let b = &src[i * 8..i * 8 + 8];
                u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            };
            if blind {
                // Store it whole and track nothing: a small payload (`slots::WHOLE_UP_TO`), or
                // publishes that change most words anyway, where comparing costs more than the
                // stores it saves.
                for i in 0..words {
                    let w = word(i);
                    // Relaxed: published by the ring's release store of the new `seq`.
                    dst[i].store(w, Ordering::Relaxed);
                    cur[i] = w;
                }
            } else if whole {
                for i in 0..words {
                    let w = word(i);
                    // Relaxed: published by the ring's release store of the new `seq`.
                    dst[i].store(w, Ordering::Relaxed);
                    if w != cur[i] {
                        cur[i] = w;
                        if n < list.len() {
                            list[n] = i as u32;
                        }
                        n += 1;
                    }
                }
            } else {
                for i in 0..words {
                    let w = word(i);
                    if w != cur[i] {
                        cur[i] = w;
                        if n < list.len() {
                            list[n] = i as u32;
                        }
                        n += 1;
                    }
                }
            }
            if !tail.is_empty() {
                let w = word_of(tail, 0);
                if w != cur_tail[0] {
                    cur_tail[0] = w;
                    if n < list.len() {
                        list[n] = words as u32;
                    }
                    n += 1;
                }
                if whole {
                    slot[words].store(w, Ordering::Relaxed);
                }
            }
            let now = if blind || n > limit {
                Changed::All
            } else {
                Changed::Words(&changed[..n])
            };
            slots.bring_up_to_date(target, now, current, slot, whole || blind);
        });
        let all = blind || n > limit;
        self.blind = match (blind, all) {
            (true, _) => self.blind.map(|since| since + 1),
            (false, true) => Some(1),
            (false, false) => None,
        };
        let now = if all {
            Changed::All
        } else {
            Changed::Words(&changed[..n])
        };
        self.slots.committed(target, now);
        self.changed = changed;
        self.waker.after_commit(&self.map, wake);
        self.seq >> 1
    }

    /// `publish_bytes` of a small payload (`slots::WHOLE_UP_TO`): every word stored, nothing
    /// compared or tracked — the hand-written seqlock's loop.
    #[inline]
    fn publish_small(&mut self, bytes: &[u8]) -> u64 {
        let wake = self.waker.before_commit(&self.map);
        let current = self.current.as_mut_slice();
        self.seq = self.map.ring().commit(self.seq, |slot| {
            for (i, (s, c)) in slot.iter().zip(current.iter_mut()).enumerate() {
                let w = word_of(bytes, i);
                // Relaxed: published by the ring's release store of the new `seq`.
                s.store(w, Ordering::Relaxed);
                *c = w;
            }
        });
        self.waker.after_commit(&self.map, wake);
        self.seq >> 1
    }

    /// The slot the next commit writes.
    fn target_slot(&self) -> usize {
        (((self.seq >> 1) + 1) & (self.header.slot_count - 1)) as usize
    }

    /// Commits the words `changed` of `current` (already updated).
    fn commit_changes(&mut self, changed: Changed<'_>) -> u64 {
        let wake = self.waker.before_commit(&self.map);
        let target = self.target_slot();
        let (slots, current) = (&self.slots, &self.current);
        self.seq = self.map.ring().commit(self.seq, |slot| {
            slots.bring_up_to_date(target, changed, current, slot, false);
        });
        self.slots.committed(target, changed);
        self.waker.after_commit(&self.map, wake);
        self.seq >> 1
    }

    /// Commits the field of type `F` at payload byte `offset`: stores only that field's words
    /// (and those the commit's slot lacks). Used by the derive's setters.
    #[doc(hidden)]
    #[inline]
    pub fn write_field<F: crate::MappedState>(&mut self, offset: usize, value: &F) -> u64 {
        crate::words::with_encoding(value, |bytes| self.write_bytes(offset, bytes))
    }

    /// Sets when commits wake waiting readers (default: [`WakePolicy::default`]). See
    /// [`WakePolicy`] for what each policy costs.
    pub fn set_wake_policy(&mut self, policy: WakePolicy) {
        self.waker.set_policy(policy);
    }

    /// When commits wake waiting readers.
    pub fn wake_policy(&self) -> WakePolicy {
        self.waker.policy()
    }

    /// How many `FUTEX_WAKE` calls this writer (and its wake keeper) made.
    #[cfg(feature = "test-hooks")]
    pub fn wakes_issued(&self) -> u64 {
        self.waker.wakes()
    }

    /// Writes the mapping's dirty pages to disk (`msync`), for durability across a machine crash.
    /// Not needed for readers to see commits: they share the page cache.
    pub fn flush(&self) -> Result<(), Error> {
        self.map
            .flush()
            .map_err(|e| Error::io(&self.path, "msync", e))
    }
}
