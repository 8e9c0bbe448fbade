//! The writer's record of what each slot of the ring holds, so that a commit stores only the
//! words in which its slot differs from the new value: a slot last written `N` commits ago lacks
//! the words those commits changed, and nothing else.

use crate::sync::{AtomicU64, Ordering};

/// Most word indices remembered per slot before it is marked for a whole rewrite.
const MAX_PENDING: usize = 4096;

/// Payloads of at most this many words are stored whole on every commit: for them a list of
/// changed words costs more to keep than the stores it saves.
pub(crate) const WHOLE_UP_TO: usize = 16;

/// What a slot lacks compared with the writer's current value.
#[derive(Clone, Debug)]
enum Lacks {
    /// Possibly any word: rewrite it whole.
    All,
    /// At most these words (indices may repeat).
    Words(Vec<u32>),
}

/// The changes one commit made to the current value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Changed<'a> {
    /// These words changed.
    Words(&'a [u32]),
    /// Too many to list: treat every word as changed.
    All,
}

/// Per slot, the words it lacks.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Every commit stores the whole payload (`WHOLE_UP_TO`): nothing is tracked.
    whole: bool,
    lacks: Vec<Lacks>,
    /// A slot lacking more words than this is rewritten whole (cheaper than the list).
    limit: usize,
}

impl Slots {
    /// `n` slots of `words`-word payloads, all holding the current value (`known`), or of
    /// unknown contents (after taking over a file), to be rewritten whole when first used.
    pub(crate) fn new(n: usize, words: usize, known: bool) -> Self {
        let fresh = || {
            if known {
                Lacks::Words(Vec::new())
            } else {
                Lacks::All
            }
        };
        Slots {
            whole: words <= WHOLE_UP_TO,
            lacks: (0..n).map(|_| fresh()).collect(),
            limit: (words / 2).clamp(1, MAX_PENDING),
        }
    }

    /// Most words a commit should list before reporting [`Changed::All`].
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether slot `t` must be rewritten whole by the next commit into it.
    #[inline]
    pub(crate) fn lacks_all(&self, t: usize) -> bool {
        self.whole || matches!(self.lacks[t], Lacks::All)
    }

    /// Whether every commit stores the whole payload (small payloads), tracking nothing.
    #[inline]
    pub(crate) fn stores_whole(&self) -> bool {
        self.whole
    }

    /// Stores into `slot` (slot `t`) every word it lacks, plus the words `changed`, from
    /// `current`; skips the whole rewrite when the caller already stored every word (`stored`).
    #[inline]
    pub(crate) fn bring_up_to_date(
        &self,
        t: usize,
        changed: Changed<'_>,
        current: &[u64],
        slot: &[AtomicU64],
        stored: bool,
    ) {
        if stored {
            return;
        }
        if self.whole {
            for (w, &v) in slot.iter().zip(current) {
                w.store(v, Ordering::Relaxed);
            }
            return;
        }
        let store = |i: u32| {
            let i = i as usize;
            // Relaxed: published by the ring's release store of the new `seq`.
            slot[i].store(current[i], Ordering::Relaxed);
        };
        match (&self.lacks[t], changed) {
            (Lacks::All, _) | (_, Changed::All) => {
                for (w, &v) in slot.iter().zip(current) {
                    w.store(v, Ordering::Relaxed);
                }
            }
            (Lacks::Words(lacks), Changed::Words(now)) => {
                lacks.iter().copied().for_each(store);
                now.iter().copied().for_each(store);
            }
        }
    }

    /// Records a commit into slot `t` that changed `changed`: `t` lacks nothing now, every
    /// other slot lacks those words too.
    #[inline]
    pub(crate) fn committed(&mut self, t: usize, changed: Changed<'_>) {
        if self.whole {
            return;
        }
        let limit = self.limit;
        for (j, lacks) in self.lacks.iter_mut().enumerate() {
            if j == t {
                match lacks {
                    Lacks::Words(v) => v.clear(),
                    Lacks::All => *lacks = Lacks::Words(Vec::new()),
                }
                continue;
            }
            match (&mut *lacks, changed) {
                (Lacks::All, _) => {}
                (_, Changed::All) => *lacks = Lacks::All,
                (Lacks::Words(v), Changed::Words(now)) => {
                    if v.len() + now.len() > limit {
                        *lacks = Lacks::All;
                    } else {
                        v.extend_from_slice(now);
                    }
                }
            }
        }
    }
}
