//! The two-page payload of the crash and history tests, and the invariant that tells a
//! committed value from a torn one.

use mapped_state::{MappedState, Writer};

/// Words of `mid`: with `lo` and `hi` the payload is 8 KiB, two pages.
pub const MID: usize = 1022;

/// The payload. The writer's commits for counter `c` are `set_lo(c)`, `set_hi(c)`, then
/// `publish` of `c` everywhere, so every committed value is one of `(lo, hi, mid)` =
/// `(m, m, m)`, `(m + 1, m, m)` or `(m + 1, m + 1, m)` with every word of `mid` equal to `m`,
/// and its *progress* `3m + (lo - m) + (hi - m)` counts the commits that made it.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Paged {
    pub lo: u64,
    pub mid: [u64; MID],
    pub hi: u64,
}

impl Paged {
    pub fn all(c: u64) -> Self {
        Paged {
            lo: c,
            mid: [c; MID],
            hi: c,
        }
    }

    /// The progress of a value, or `None` when it is not one the writer ever committed (torn).
    pub fn progress(&self) -> Option<u64> {
        let m = self.mid[0];
        if self.mid.iter().any(|&w| w != m) {
            return None;
        }
        match (self.lo.checked_sub(m)?, self.hi.checked_sub(m)?) {
            (0, 0) => Some(3 * m),
            (1, 0) => Some(3 * m + 1),
            (1, 1) => Some(3 * m + 2),
            _ => None,
        }
    }

    /// The value of progress `p`.
    pub fn at(p: u64) -> Self {
        let (m, step) = (p / 3, p % 3);
        Paged {
            lo: m + u64::from(step >= 1),
            mid: [m; MID],
            hi: m + u64::from(step >= 2),
        }
    }
}

/// Makes the commit that takes the writer's value from progress `p - 1` to `p`: a single-field
/// commit on the first page, one on the second, or a whole publish. Returns the new version.
pub fn commit_progress(w: &mut Writer<Paged>, p: u64) -> u64 {
    let v = Paged::at(p);
    match p % 3 {
        1 => w.set_lo(v.lo),
        2 => w.set_hi(v.hi),
        _ => w.publish(&v),
    }
}
