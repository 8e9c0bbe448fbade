//! The three payload types every contender shares, and what the harness needs of each per
//! library (mapped-state's generated accessors and setter, mmap-sync's typed reads and writes):
//! the harness's code is generic over the payload, the libraries' APIs are per type.

use std::fmt::Debug;

use bytecheck::CheckBytes;
use iceoryx2::prelude::*;
use mapped_state::{Fields, MappedState, Reader, Writer};
use rkyv::{Archive, Deserialize, Serialize};

use crate::peers::{sync_load, sync_write, Sync};

/// 64 B: eight `u64` fields.
#[derive(MappedState, Archive, Serialize, Deserialize, ZeroCopySend, Clone, Copy, Debug)]
#[archive_attr(derive(CheckBytes))]
#[repr(C)]
pub struct S64 {
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub e: u64,
    pub f: u64,
    pub g: u64,
    pub h: u64,
}

/// 4 KiB: a `u64` and a `[u64; 511]`.
#[derive(MappedState, Archive, Serialize, Deserialize, ZeroCopySend, Clone, Copy, Debug)]
#[archive_attr(derive(CheckBytes))]
#[repr(C)]
pub struct S4K {
    pub a: u64,
    pub b: [u64; 511],
}

/// 64 KiB: a `u64` and a `[u64; 8191]`.
#[derive(MappedState, Archive, Serialize, Deserialize, ZeroCopySend, Clone, Copy, Debug)]
#[archive_attr(derive(CheckBytes))]
#[repr(C)]
pub struct S64K {
    pub a: u64,
    pub b: [u64; 8191],
}

/// The payload sizes, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    B64,
    K4,
    K64,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::B64, Size::K4, Size::K64];

    pub fn label(self) -> &'static str {
        match self {
            Size::B64 => "64 B",
            Size::K4 => "4 KiB",
            Size::K64 => "64 KiB",
        }
    }

    /// For file and service names.
    pub fn tag(self) -> &'static str {
        match self {
            Size::B64 => "64",
            Size::K4 => "4k",
            Size::K64 => "64k",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Size> {
        Size::ALL.into_iter().find(|s| s.tag() == tag)
    }
}

/// A payload type, with each library's way to reach its fields.
///
/// # Safety
///
/// `Self` is `#[repr(C)]` and made of `u64`s only: its size is a multiple of 8, its alignment 8,
/// it has no padding, and every bit pattern is a valid value — so it can be viewed as `[u64]`.
pub unsafe trait Payload:
    MappedState + Fields + ZeroCopySend + Copy + Send + Debug + 'static
{
    const SIZE: Size;
    /// The payload word that the element row reads (the last element of `b`), if there is an
    /// array field; its index in `b` is one less.
    const ELEMENT: Option<usize>;

    /// A value holding `x` in every word.
    fn filled(x: u64) -> Self;

    /// The payload as words.
    fn words(&self) -> &[u64] {
        // SAFETY: the trait's contract: `size_of::<Self>() / 8` `u64`s, no padding, 8-aligned.
        unsafe {
            std::slice::from_raw_parts((self as *const Self).cast::<u64>(), size_of::<Self>() / 8)
        }
    }

    /// The payload as words, to fill.
    fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `words`; every bit pattern is a valid `Self`, so any words written
        // through the slice leave a valid value.
        unsafe {
            std::slice::from_raw_parts_mut((self as *mut Self).cast::<u64>(), size_of::<Self>() / 8)
        }
    }

    /// The first and the last word: equal in every value the harness writes, so a torn copy
    /// (first word from one value, last from another) shows as a difference.
    fn ends(&self) -> (u64, u64) {
        let w = self.words();
        (w[0], w[w.len() - 1])
    }

    /// mapped-state's generated accessor of field `a`.
    fn ms_a(r: &Reader<Self>) -> u64;
    /// mapped-state's generated element accessor of `b` at payload word `word` (`b_at(word - 1)`).
    fn ms_element(r: &Reader<Self>, word: usize) -> u64;
    /// mapped-state's generated setter of field `a`.
    fn ms_set_a(w: &mut Writer<Self>, x: u64) -> u64;

    /// mmap-sync: publish; true when the writer reset a reader count (a reader taken for dead).
    fn sync_write(s: &mut Sync, value: &Self) -> bool;
    /// mmap-sync: a copy of the whole value.
    fn sync_load(s: &mut Sync, check_bytes: bool) -> Self;
    /// mmap-sync: field `a`, read from the archived value in place.
    fn sync_a(s: &mut Sync, check_bytes: bool) -> u64;
    /// mmap-sync: element `word - 1` of `b`, read from the archived value in place.
    fn sync_element(s: &mut Sync, check_bytes: bool, word: usize) -> u64;
}

macro_rules! payload {
    ($t:ident, $size:expr, $filled:expr, element = $element:expr, $($arrays:tt)*) => {
        // SAFETY: `$t` is `#[repr(C)]` with `u64` fields and `u64` arrays only.
        unsafe impl Payload for $t {
            const SIZE: Size = $size;
            const ELEMENT: Option<usize> = $element;
            fn filled(x: u64) -> Self {
                $filled(x)
            }
            fn ms_a(r: &Reader<Self>) -> u64 {
                r.a()
            }
            fn ms_set_a(w: &mut Writer<Self>, x: u64) -> u64 {
                w.set_a(x)
            }
            fn sync_write(s: &mut Sync, value: &Self) -> bool {
                sync_write(s, value)
            }
            fn sync_load(s: &mut Sync, check_bytes: bool) -> Self {
                sync_load(s, check_bytes)
            }
            fn sync_a(s: &mut Sync, check_bytes: bool) -> u64 {
                // SAFETY: the guard lives only for this statement, far shorter than mmap-sync's
                // grace period, after which the writer would reuse the copy it points into.
                unsafe { s.read::<Self>(check_bytes) }.expect("mmap-sync read").a
            }
            payload!(@arrays $($arrays)*);
        }
    };
    (@arrays array) => {
        fn ms_element(r: &Reader<Self>, word: usize) -> u64 {
            r.b_at(word - 1).expect("element in range")
        }
        fn sync_element(s: &mut Sync, check_bytes: bool, word: usize) -> u64 {
            // SAFETY: as in `sync_a`.
            unsafe { s.read::<Self>(check_bytes) }.expect("mmap-sync read").b[word - 1]
        }
    };
    (@arrays no_array) => {
        fn ms_element(_: &Reader<Self>, _: usize) -> u64 {
            unreachable!("no array field")
        }
        fn sync_element(_: &mut Sync, _: bool, _: usize) -> u64 {
            unreachable!("no array field")
        }
    };
}

payload!(
    S64,
    Size::B64,
    |x| S64 {
        a: x,
        b: x,
        c: x,
        d: x,
        e: x,
        f: x,
        g: x,
        h: x
    },
    element = None,
    no_array
);
payload!(
    S4K,
    Size::K4,
    |x| S4K { a: x, b: [x; 511] },
    element = Some(511),
    array
);
payload!(
    S64K,
    Size::K64,
    |x| S64K { a: x, b: [x; 8191] },
    element = Some(8191),
    array
);

/// Calls `$body` with `$t` bound to the payload type of `$size`.
macro_rules! with_payload {
    ($size:expr, $t:ident => $body:expr) => {
        match $size {
            $crate::payload::Size::B64 => {
                type $t = $crate::payload::S64;
                $body
            }
            $crate::payload::Size::K4 => {
                type $t = $crate::payload::S4K;
                $body
            }
            $crate::payload::Size::K64 => {
                type $t = $crate::payload::S64K;
                $body
            }
        }
    };
}
pub(crate) use with_payload;
