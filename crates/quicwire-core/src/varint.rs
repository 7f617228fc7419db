//! QUIC variable-length integers (RFC 9000 §16): 1, 2, 4 or 8 bytes, the top two bits give
//! the length. Used for frame lengths and ids so small values cost one byte.

use bytes::BufMut;

pub const MAX: u64 = (1 << 62) - 1;

/// Bytes needed to encode `v` (which must be at most [`MAX`]).
pub const fn size(v: u64) -> usize {
    if v < 1 << 6 {
        1
    } else if v < 1 << 14 {
        2
    } else if v < 1 << 30 {
        4
    } else {
        8
    }
}

/// Appends `v`. Values above [`MAX`] are a caller bug; they are clamped to keep the output
/// decodable (frame lengths are bounded far below it).
pub fn put(out: &mut impl BufMut, v: u64) {
    let v = v.min(MAX);
    match size(v) {
        1 => out.put_u8(v as u8),
        2 => out.put_u16(0x4000 | v as u16),
        4 => out.put_u32(0x8000_0000 | v as u32),
        _ => out.put_u64(0xC000_0000_0000_0000 | v),
    }
}

/// Reads a varint from the front of `buf`: `Some((value, bytes used))`, or `None` when
/// `buf` does not hold all of it yet.
pub fn get(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut v = u64::from(first & 0x3F);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_size_class() {
        for v in [0, 1, 63, 64, 16_383, 16_384, (1 << 30) - 1, 1 << 30, MAX] {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), size(v));
            assert_eq!(get(&out), Some((v, out.len())));
            assert_eq!(get(&out[..out.len() - 1]), None, "truncated {v}");
        }
    }

    #[test]
    fn rfc_examples_decode() {
        assert_eq!(get(&[0x25]), Some((37, 1)));
        assert_eq!(get(&[0x7b, 0xbd]), Some((15_293, 2)));
        assert_eq!(get(&[0x9d, 0x7f, 0x3e, 0x7d]), Some((494_878_333, 4)));
    }
}
