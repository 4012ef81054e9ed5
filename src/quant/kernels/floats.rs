//! [`Floats`]: float32 values in the processor's byte order at any alignment, so that the
//! streamed kernels read a tensor's payload where it lies in a memory-mapped file (payloads
//! start at any byte offset) as well as from a slice of floats.

/// A run of float32 values stored in native byte order at any address: a borrowed slice of
/// floats, or a payload inside a file map. Cheap to copy; never copies the values.
#[derive(Debug, Clone, Copy)]
pub struct Floats<'a> {
    /// The values' bytes; the length is a multiple of 4.
    bytes: &'a [u8],
}

impl<'a> Floats<'a> {
    /// The values of a slice.
    pub fn from_slice(values: &'a [f32]) -> Floats<'a> {
        // SAFETY: f32 has no padding and any initialised f32 is four initialised bytes; the
        // byte view covers exactly the slice and borrows it for the same lifetime.
        let bytes = unsafe {
            std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
        };
        Floats { bytes }
    }

    /// The values whose native-order bytes are `bytes`, at any alignment; `None` when the
    /// length is not a multiple of 4.
    pub fn from_ne_bytes(bytes: &'a [u8]) -> Option<Floats<'a>> {
        (bytes.len() % 4 == 0).then_some(Floats { bytes })
    }

    /// Number of values.
    pub fn len(self) -> usize {
        self.bytes.len() / 4
    }

    /// Whether there is no value.
    pub fn is_empty(self) -> bool {
        self.bytes.is_empty()
    }

    /// The values `range` (clamped to the run).
    pub fn range(self, range: std::ops::Range<usize>) -> Floats<'a> {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        Floats {
            bytes: &self.bytes[start * 4..end * 4],
        }
    }

    /// The values in order.
    pub fn iter(self) -> impl ExactSizeIterator<Item = f32> + 'a {
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Consecutive runs of `n` values (the last may be shorter); `n` must not be 0.
    pub fn chunks(self, n: usize) -> impl ExactSizeIterator<Item = Floats<'a>> + 'a {
        self.bytes
            .chunks(n.max(1) * 4)
            .map(|bytes| Floats { bytes })
    }

    /// The values as a slice of floats when they happen to be aligned for it.
    pub fn as_aligned(self) -> Option<&'a [f32]> {
        // SAFETY: any four bytes are a valid f32; `align_to` hands out only the correctly
        // aligned middle part, which is the whole run exactly when head and tail are empty.
        let (head, mid, tail) = unsafe { self.bytes.align_to::<f32>() };
        (head.is_empty() && tail.is_empty()).then_some(mid)
    }

    /// Address of the first value's first byte (for unaligned vector loads).
    pub(crate) fn as_ptr(self) -> *const u8 {
        self.bytes.as_ptr()
    }

    /// The bytes of the values.
    pub fn as_bytes(self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::testutil::ne_bytes_after;

    #[test]
    fn unaligned_bytes_read_as_the_floats_they_hold() {
        let values = [1.5f32, -2.0, f32::NAN, 1e30, -0.0];
        let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        // The run starts 0–3 bytes into an allocation: every alignment mod 4.
        let at = |skip: usize| ne_bytes_after(skip, &values);
        for skip in 0..4 {
            let bytes = at(skip);
            let f = Floats::from_ne_bytes(&bytes[skip..]).unwrap();
            assert_eq!(f.iter().map(f32::to_bits).collect::<Vec<_>>(), want);
            assert_eq!(f.as_aligned().is_some(), skip == 0, "{skip}");
        }
        let bytes = at(3);
        let odd = Floats::from_ne_bytes(&bytes[3..]).unwrap();
        let slice = Floats::from_slice(&values);
        assert_eq!(odd.len(), 5);
        let bits = |f: Floats| f.iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(odd.range(1..3)), bits(slice.range(1..3)));
        assert_eq!(odd.range(4..9).len(), 1);
        assert_eq!(odd.range(7..9).len(), 0);
        assert_eq!(
            slice.chunks(2).map(Floats::len).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert!(Floats::from_ne_bytes(&bytes[..6]).is_none());
    }
}
