//! Deterministic helpers for the kernels' tests.

/// SplitMix64: a tiny deterministic generator for property tests.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator with the given seed.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (sum of uniforms).
    pub(crate) fn normal(&mut self) -> f32 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) as f32 * 1.7
    }
}

/// Bytes as lowercase hex pairs separated by spaces.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `skip` zero bytes, then the native bytes of `values`: `&result[skip..]` holds the values
/// at an address `skip` mod 4, as payloads lie in a file map.
pub(crate) fn ne_bytes_after(skip: usize, values: &[f32]) -> Vec<u8> {
    let mut bytes = vec![0u8; skip];
    bytes.extend(values.iter().flat_map(|v| v.to_ne_bytes()));
    bytes
}
