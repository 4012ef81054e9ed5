//! Deterministic, seeded mutations of model and config bytes, shared by the fuzz targets and
//! the mini-fuzzers of `cargo test` (which include this file by path).
//!
//! The mutations aim at a protobuf reader's weak spots: length prefixes and varints that lie,
//! truncation, repeated and spliced fields, and bytes that are not UTF-8.

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same mutations on
/// every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Varints that make a reader allocate, overflow or loop if it trusts them.
const HOSTILE_VARINTS: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff, 0x07], // 2^31 - 1
    &[0x80, 0x80, 0x80, 0x80, 0x08], // 2^31
    &[0xff, 0xff, 0xff, 0xff, 0x0f], // 2^32 - 1
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // u64::MAX
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ], // 11 bytes
    &[0x80, 0x80, 0x80],             // unterminated
    &[0x00],
    &[0x01],
];

/// Applies one to four random mutations to `data`, in place; `others` are donors for splicing.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, others: &[&[u8]]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        mutate_once(rng, data, others);
    }
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, others: &[&[u8]]) {
    let len = data.len();
    match rng.below(10) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.below(len);
            if let Some(b) = data.get_mut(i) {
                *b ^= 1 << rng.below(8);
            }
        }
        // Set a byte to a boundary value.
        1 if len > 0 => {
            let i = rng.below(len);
            let v = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x22][rng.below(8)];
            if let Some(b) = data.get_mut(i) {
                *b = v;
            }
        }
        // Truncate.
        2 => data.truncate(rng.below(len + 1)),
        // Replace a few bytes by a hostile varint (a lying length prefix or field value).
        3 => {
            let i = rng.below(len + 1);
            let v = HOSTILE_VARINTS[rng.below(HOSTILE_VARINTS.len())];
            let cut = (i + rng.below(3)).min(len);
            data.splice(i..cut, v.iter().copied());
        }
        // Delete a range.
        4 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            data.drain(i..i + n);
        }
        // Duplicate a range (repeated fields, repeated messages).
        5 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(256));
            let chunk: Vec<u8> = data[i..i + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        // Splice in a piece of another input.
        6 if !others.is_empty() => {
            let donor = others[rng.below(others.len())];
            if !donor.is_empty() {
                let i = rng.below(donor.len());
                let n = 1 + rng.below((donor.len() - i).min(512));
                let at = rng.below(len + 1);
                let cut = (at + rng.below(n + 1)).min(len);
                data.splice(at..cut, donor[i..i + n].iter().copied());
            }
        }
        // Bump a byte that looks like a length (small) by a little.
        7 if len > 0 => {
            let i = rng.below(len);
            if let Some(b) = data.get_mut(i) {
                *b = b.wrapping_add(1 + rng.below(3) as u8);
            }
        }
        // Insert random bytes (including invalid UTF-8).
        8 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(at..at, bytes);
        }
        // Overwrite with 0xff (the start of a huge varint) or zeros.
        _ if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(16));
            let v = if rng.one_in(2) { 0xff } else { 0x00 };
            for b in data.iter_mut().skip(i).take(n) {
                *b = v;
            }
        }
        _ => data.push(rng.next_u64() as u8),
    }
}

/// Config-text fragments worth inserting: every token kind, comments, escapes, deep nesting
/// and non-ASCII text.
const CONFIG_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "//",
    "/*",
    "*/",
    "\n",
    "\r\n",
    "true",
    "fals",
    "null",
    "-",
    "1e999",
    "-0",
    "0x1F",
    "1.5e-400",
    "NaN",
    "\"layers\"",
    "\"mode\"",
    "\"nbits\"",
    "\"model\"",
    "\"extends\"",
    "\"*\"",
    "é",
    "𝄞",
    "\u{feff}",
    "\0",
    "{\"a\":{\"b\":[1,2,{\"c\":",
    "[[[[[[[[[[[[[[[[",
    "]]]]]]]]",
    "}}}}}}",
];

/// Applies one to four text-level mutations to a config, keeping it valid UTF-8.
pub fn mutate_text(rng: &mut Rng, text: &mut String, others: &[&str]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let at = floor_char_boundary(text, rng.below(text.len() + 1));
        match rng.below(6) {
            0 | 1 => text.insert_str(at, CONFIG_PIECES[rng.below(CONFIG_PIECES.len())]),
            2 => {
                let end = floor_char_boundary(text, at + rng.below(16));
                text.replace_range(at..end, "");
            }
            3 => text.truncate(at),
            4 if !others.is_empty() => {
                let donor = others[rng.below(others.len())];
                let s = floor_char_boundary(donor, rng.below(donor.len() + 1));
                let e = floor_char_boundary(donor, s + rng.below(128));
                text.insert_str(at, &donor[s..e]);
            }
            _ => {
                let depth = 1 + rng.below(64);
                let open = if rng.one_in(2) { "[" } else { "{\"k\":" };
                text.insert_str(at, &open.repeat(depth));
            }
        }
    }
}

/// The largest char boundary of `s` at or before `i`.
pub fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
