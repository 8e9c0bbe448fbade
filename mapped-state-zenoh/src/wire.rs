//! What travels on the wire: the attachment of every published value ([`Meta`]) and the
//! snapshot a queryable answers late joiners with (manifest + value). Little-endian, fixed
//! layout, checked on decode: a malformed message is a [`WireError`], never a panic.

use std::fmt;

/// The metadata attached to every published value (and every snapshot reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The source file's version of this value (commits since the source file was created).
    pub version: u64,
    /// The source file's schema hash (FNV-1a 64 of its manifest).
    pub schema_hash: u64,
    /// The source's commit time, nanoseconds since the Unix epoch (the source machine's clock).
    pub commit_ns: u64,
    /// Versions of the source the publisher did not publish between the previous published
    /// value and this one (it publishes the newest it observes).
    pub skipped: u64,
    /// The source file's identity (its header nonce): changes when the file is recreated, and
    /// versions restart with it.
    pub source_nonce: u64,
    /// Whether the source file's writer was alive when the value was read.
    pub writer_alive: bool,
    /// Whether the source machine is big-endian: payload bytes are native-endian, so a
    /// follower of the other byte order refuses the value.
    pub big_endian: bool,
}

/// Why bytes received from the network were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No attachment, or one of the wrong size.
    #[error("attachment of {0} bytes, expected {META_LEN}")]
    MetaLength(usize),
    /// The attachment does not start with the magic.
    #[error("attachment does not start with \"MSZ1\" (found {0:02x?})")]
    MetaMagic([u8; 4]),
    /// A snapshot reply is too short or inconsistent.
    #[error("snapshot reply of {len} bytes: {why}")]
    Snapshot {
        /// Its length.
        len: usize,
        /// What is wrong.
        why: String,
    },
}

const META_MAGIC: [u8; 4] = *b"MSZ1";
const SNAPSHOT_MAGIC: [u8; 4] = *b"MSZS";
/// Length of an encoded [`Meta`].
pub const META_LEN: usize = 48;
const FLAG_WRITER_ALIVE: u32 = 1;
const FLAG_BIG_ENDIAN: u32 = 2;

impl Meta {
    /// The 48-byte encoding: `"MSZ1"`, flags `u32` (bit 0: writer alive, bit 1: big-endian
    /// source), then version,
    /// schema hash, commit time, skipped and source nonce as `u64`, all little-endian.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..4].copy_from_slice(&META_MAGIC);
        let flags = if self.writer_alive {
            FLAG_WRITER_ALIVE
        } else {
            0
        } | if self.big_endian { FLAG_BIG_ENDIAN } else { 0 };
        b[4..8].copy_from_slice(&flags.to_le_bytes());
        for (i, v) in [
            self.version,
            self.schema_hash,
            self.commit_ns,
            self.skipped,
            self.source_nonce,
        ]
        .into_iter()
        .enumerate()
        {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Decodes [`encode`](Self::encode)'s bytes. Unknown flag bits are ignored.
    pub fn decode(b: &[u8]) -> Result<Meta, WireError> {
        if b.len() != META_LEN {
            return Err(WireError::MetaLength(b.len()));
        }
        let magic: [u8; 4] = b[0..4].try_into().expect("4 bytes");
        if magic != META_MAGIC {
            return Err(WireError::MetaMagic(magic));
        }
        let flags = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
        let u = |i: usize| u64::from_le_bytes(b[8 + i * 8..16 + i * 8].try_into().expect("8"));
        Ok(Meta {
            version: u(0),
            schema_hash: u(1),
            commit_ns: u(2),
            skipped: u(3),
            source_nonce: u(4),
            writer_alive: flags & FLAG_WRITER_ALIVE != 0,
            big_endian: flags & FLAG_BIG_ENDIAN != 0,
        })
    }
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{} (schema {:#018x}, {} skipped, writer {})",
            self.version,
            self.schema_hash,
            self.skipped,
            if self.writer_alive { "alive" } else { "gone" }
        )
    }
}

/// A snapshot reply's payload: `"MSZS"`, the manifest's length as `u32` LE, the manifest, then
/// the payload bytes.
pub fn encode_snapshot(manifest: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + manifest.len() + value.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    out.extend_from_slice(manifest);
    out.extend_from_slice(value);
    out
}

/// Splits a snapshot reply's payload into (manifest, value).
pub fn decode_snapshot(b: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let bad = |why: &str| WireError::Snapshot {
        len: b.len(),
        why: why.to_owned(),
    };
    if b.len() < 8 {
        return Err(bad("shorter than its 8-byte head"));
    }
    if b[0..4] != SNAPSHOT_MAGIC {
        return Err(bad("does not start with \"MSZS\""));
    }
    let n = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) as usize;
    if n > b.len() - 8 {
        return Err(bad(&format!("manifest length {n} goes past the end")));
    }
    Ok((&b[8..8 + n], &b[8 + n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_refuses_bad_bytes() {
        let m = Meta {
            version: 7,
            schema_hash: 0x1234_5678_9abc_def0,
            commit_ns: 99,
            skipped: 3,
            source_nonce: 42,
            writer_alive: true,
            big_endian: false,
        };
        assert_eq!(Meta::decode(&m.encode()), Ok(m));
        assert_eq!(Meta::decode(&[0; 3]), Err(WireError::MetaLength(3)));
        let mut b = m.encode();
        b[0] = b'X';
        assert!(matches!(Meta::decode(&b), Err(WireError::MetaMagic(_))));
    }

    #[test]
    fn snapshot_round_trips_and_refuses_bad_lengths() {
        let s = encode_snapshot(b"MSMFabc", &[1, 2, 3]);
        assert_eq!(decode_snapshot(&s), Ok((&b"MSMFabc"[..], &[1u8, 2, 3][..])));
        let mut bad = s.clone();
        bad[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert!(decode_snapshot(&bad).is_err());
        assert!(decode_snapshot(&s[..5]).is_err());
        assert!(decode_snapshot(b"XXXX\0\0\0\0").is_err());
    }
}
