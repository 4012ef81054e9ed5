//! Bit packing of indices into `rawValue` (spec §3.7): one MSB-first bit stream, no
//! per-channel alignment, zero padding, at least one byte for fewer than 8 bits.

use rayon::prelude::*;

use super::KernelError;

/// Indices per parallel work item; a multiple of 8, so every item starts on a byte boundary.
const CHUNK: usize = 1 << 16;

/// Byte length of `n` packed `nbits`-bit indices: `n` for 8 bits, else `max(1, ⌈n·b/8⌉)`.
pub fn packed_len(n: usize, nbits: u8) -> usize {
    if nbits >= 8 {
        n
    } else {
        (n * nbits as usize).div_ceil(8).max(1)
    }
}

/// Packs `indices` with `nbits` bits each (only the low `nbits` bits of an index are kept).
pub fn pack(indices: &[u8], nbits: u8) -> Vec<u8> {
    pack_with(indices.len(), nbits, |start, buf| {
        buf.copy_from_slice(&indices[start..start + buf.len()]);
    })
}

/// Packs `n` indices produced on the fly: `fill(start, buf)` must write the indices of
/// positions `start..start + buf.len()` into `buf`. Runs in parallel on fixed chunks, so the
/// result does not depend on the thread count.
pub fn pack_with<F>(n: usize, nbits: u8, fill: F) -> Vec<u8>
where
    F: Fn(usize, &mut [u8]) + Sync,
{
    let nbits = nbits.clamp(1, 8);
    let mut out = zeroed(packed_len(n, nbits));
    let chunk_bytes = CHUNK * nbits as usize / 8;
    if nbits == 8 {
        // One byte per index: the indices go straight into the output.
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, dst)| fill(i * CHUNK, dst));
        return out;
    }
    out.par_chunks_mut(chunk_bytes).enumerate().for_each_init(
        || vec![0u8; CHUNK],
        |buf, (i, dst)| {
            let start = i * CHUNK;
            let len = CHUNK.min(n.saturating_sub(start));
            let buf = &mut buf[..len];
            fill(start, buf);
            pack_into(buf, nbits, dst);
        },
    );
    out
}

/// Buffers from this size on are advised to use huge pages.
pub(crate) const HUGE_FROM: usize = 4 << 20;

/// `len` zeroed bytes in `buffer` when it can hold them, else a fresh [`zeroed`] buffer.
pub(crate) fn zeroed_in(mut buffer: Vec<u8>, len: usize) -> Vec<u8> {
    if buffer.capacity() < len {
        return zeroed(len);
    }
    buffer.clear();
    buffer.resize(len, 0);
    buffer
}

/// A zero-filled output buffer of `len` bytes. A large one is a fresh mapping that every
/// kernel fills completely, and its first touch costs a page fault and the zeroing of every
/// 4 KiB page; asking for transparent huge pages (Linux) turns that into one fault per 2 MiB.
pub(crate) fn zeroed(len: usize) -> Vec<u8> {
    let v = vec![0u8; len];
    if len >= HUGE_FROM {
        advise_huge(v.as_ptr(), len);
    }
    v
}

/// Advises the whole 2 MiB pages inside `ptr..ptr + len` to be huge pages (Linux; a hint
/// only, ignored where unsupported).
pub(crate) fn advise_huge<T>(ptr: *const T, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: madvise only changes how the kernel backs pages of this range, which
            // lies inside a live allocation; MADV_HUGEPAGE never changes its contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Packs `indices` into the first `⌈len·b/8⌉` bytes of `dst` (whatever they held before).
pub fn pack_into(indices: &[u8], nbits: u8, dst: &mut [u8]) {
    let b = nbits as usize;
    if b == 8 {
        let n = indices.len().min(dst.len());
        dst[..n].copy_from_slice(&indices[..n]);
        return;
    }
    let mask = (1u64 << b) - 1;
    let mut groups = indices.chunks_exact(8);
    let mut out = dst.chunks_exact_mut(b);
    for (g, o) in (&mut groups).zip(&mut out) {
        let mut acc = 0u64;
        for &q in g {
            acc = (acc << b) | (q as u64 & mask);
        }
        // 8·b bits, right-aligned in acc: its last b big-endian bytes.
        let be = acc.to_be_bytes();
        o.copy_from_slice(&be[8 - b..]);
    }
    // Tail: fewer than 8 indices, written bit by bit into bytes cleared first.
    let done = indices.len() / 8 * 8;
    let mut bit = done * b;
    let tail_end = (indices.len() * b).div_ceil(8).min(dst.len());
    if let Some(t) = dst.get_mut(bit / 8..tail_end) {
        t.fill(0);
    }
    for &q in groups.remainder() {
        let v = q as u64 & mask;
        for k in (0..b).rev() {
            if (v >> k) & 1 == 1 {
                if let Some(byte) = dst.get_mut(bit / 8) {
                    *byte |= 0x80 >> (bit % 8);
                }
            }
            bit += 1;
        }
    }
}

/// Unpacks the first `n` indices of `nbits` bits each from `bytes` (padding is ignored).
pub fn unpack(bytes: &[u8], nbits: u8, n: usize) -> Result<Vec<u8>, KernelError> {
    let b = nbits as usize;
    if !(1..=8).contains(&b) {
        return Err(KernelError::UnsupportedBits(nbits));
    }
    let need = (n * b).div_ceil(8);
    if bytes.len() < need {
        return Err(KernelError::RawTooShort {
            have: bytes.len(),
            need,
            count: n,
            nbits,
        });
    }
    let mut out = vec![0u8; n];
    let chunk_bytes = CHUNK * b / 8;
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, dst)| {
        let src = &bytes[i * chunk_bytes..];
        unpack_into(src, nbits, dst);
    });
    Ok(out)
}

/// Unpacks `dst.len()` indices from the start of `src` (which must hold enough bytes).
fn unpack_into(src: &[u8], nbits: u8, dst: &mut [u8]) {
    let b = nbits as usize;
    if b == 8 {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    let mask = (1u64 << b) - 1;
    let full = dst.len() / 8;
    for (g, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(b)) {
        let mut be = [0u8; 8];
        be[8 - b..].copy_from_slice(s);
        let acc = u64::from_be_bytes(be);
        for (j, q) in g.iter_mut().enumerate() {
            *q = ((acc >> (b * (7 - j))) & mask) as u8;
        }
    }
    let mut bit = full * 8 * b;
    for q in dst[full * 8..].iter_mut() {
        let mut v = 0u8;
        for _ in 0..b {
            let byte = src.get(bit / 8).copied().unwrap_or(0);
            v = (v << 1) | ((byte >> (7 - bit % 8)) & 1);
            bit += 1;
        }
        *q = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::testutil::Rng;

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn spec_3_7_rows() {
        let rows: [(u8, [u8; 8], &str); 8] = [
            (1, [0, 0, 0, 0, 1, 1, 1, 1], "0f"),
            (2, [0, 0, 1, 1, 2, 2, 3, 3], "05 af"),
            (3, [0, 1, 2, 3, 4, 5, 6, 7], "05 39 77"),
            (4, [0, 2, 4, 6, 9, 11, 13, 15], "02 46 9b df"),
            (5, [0, 4, 9, 13, 18, 22, 27, 31], "01 12 d9 5b 7f"),
            (6, [0, 9, 18, 27, 36, 45, 54, 63], "00 94 9b 92 dd bf"),
            (7, [0, 18, 36, 54, 73, 91, 109, 127], "00 49 23 69 36 f6 ff"),
            (
                8,
                [0, 36, 73, 109, 146, 182, 219, 255],
                "00 24 49 6d 92 b6 db ff",
            ),
        ];
        for (b, idx, want) in rows {
            assert_eq!(hex(&pack(&idx, b)), want, "{b} bits");
            assert_eq!(unpack(&pack(&idx, b), b, 8).unwrap(), idx);
        }
        assert_eq!(hex(&pack(&[0, 7, 4], 3)), "1e 00");
        assert_eq!(hex(&pack(&[0], 1)), "00");
        assert_eq!(hex(&pack(&[], 1)), "00");
        assert_eq!(hex(&pack(&[0, 1, 2, 3, 0, 1, 2, 3], 2)), "1b 1b");
        assert_eq!(hex(&pack(&[0, 3], 2)), "30");
    }

    #[test]
    fn pack_unpack_roundtrip_random() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let b = rng.below(8) as u8 + 1;
            let n = match rng.below(4) {
                0 => rng.below(20) as usize,
                1 => rng.below(3000) as usize,
                _ => CHUNK * 2 + rng.below(100) as usize,
            };
            let idx: Vec<u8> = (0..n).map(|_| rng.below(1 << b) as u8).collect();
            let packed = pack(&idx, b);
            assert_eq!(packed.len(), packed_len(n, b));
            assert_eq!(unpack(&packed, b, n).unwrap(), idx, "n={n} b={b}");
            // Bit-serial reference.
            let mut bits = Vec::new();
            for &q in &idx {
                for k in (0..b).rev() {
                    bits.push((q >> k) & 1);
                }
            }
            let mut want = vec![0u8; packed_len(n, b)];
            for (i, bit) in bits.iter().enumerate() {
                want[i / 8] |= bit << (7 - i % 8);
            }
            assert_eq!(packed, want);
        }
    }

    #[test]
    fn unpack_rejects_short_input() {
        assert!(matches!(
            unpack(&[0], 3, 3),
            Err(KernelError::RawTooShort { need: 2, .. })
        ));
    }
}
