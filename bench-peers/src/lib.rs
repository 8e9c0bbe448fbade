//! The contenders of `benches/peers/` that are not libraries: the hand seqlock (the lower bound of
//! a sound snapshot protocol over a mapped file) and the raw shared futex (the lower bound of a
//! blocking wake across processes). Both map their file with memmap2's `MmapRaw`, so no `&[u8]`
//! is ever formed over memory another process changes.

pub mod futex;
pub mod seqlock;
