//! Fast generators of large Core ML NeuralNetwork models, written straight in the protobuf
//! wire format (no intermediate message tree), for the benchmarks.
#![allow(dead_code)]

use std::io::{self, BufWriter, Write};
use std::path::Path;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    tag(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn uint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, 0);
        varint(out, v);
    }
}

fn packed_u64(out: &mut Vec<u8>, field: u32, vs: &[u64]) {
    let mut p = Vec::new();
    for &v in vs {
        varint(&mut p, v);
    }
    bytes_field(out, field, &p);
}

fn vlen(v: u64) -> u64 {
    let bits = 64 - u64::from(v.leading_zeros());
    bits.div_ceil(7).max(1)
}

/// Deterministic pseudo-normal weights (xorshift, sum of two uniforms).
pub fn fill(values: &mut [f32], seed: u64, spread: f32) {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for x in values.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let a = (s >> 40) as f32 / (1u64 << 24) as f32;
        let b = ((s >> 16) & 0xff_ffff) as f32 / (1u64 << 24) as f32;
        *x = (a + b - 1.0) * spread;
    }
}

/// One layer of a generated network.
#[derive(Debug, Clone, Copy)]
pub enum Layer {
    /// innerProduct [out, in] with bias.
    InnerProduct {
        /// Input channels.
        input: u64,
        /// Output channels.
        output: u64,
    },
    /// convolution [oc, kc, k, k] with bias.
    Conv {
        /// Output channels.
        oc: u64,
        /// Kernel channels.
        kc: u64,
        /// Kernel size.
        k: u64,
    },
}

impl Layer {
    /// Number of weights (bias included).
    pub fn weights(&self) -> u64 {
        match *self {
            Layer::InnerProduct { input, output } => input * output + output,
            Layer::Conv { oc, kc, k } => oc * kc * k * k + oc,
        }
    }
}

/// WeightParams with `n` float32 values, written as field `field` of the params message.
/// Returns the header bytes; the caller streams the values.
fn weight_header(field: u32, n: u64) -> Vec<u8> {
    let payload = 4 * n;
    let body = 1 + vlen(payload) + payload; // floatValue tag + len + data
    let mut h = Vec::new();
    tag(&mut h, field, 2);
    varint(&mut h, body);
    tag(&mut h, 1, 2);
    varint(&mut h, payload);
    h
}

fn weight_size(field: u32, n: u64) -> u64 {
    let payload = 4 * n;
    let body = 1 + vlen(payload) + payload;
    vlen(u64::from(field) << 3) + vlen(body) + body
}

/// Writes a neuralNetwork model with `layers` in a chain (`data` → … → `out`) to `path`.
/// Returns the file size.
pub fn write_model(path: &Path, layers: &[Layer], seed: u64) -> io::Result<u64> {
    // Sizes first (the wire format needs every length before the bytes).
    struct Plan {
        header: Vec<u8>,
        tensors: Vec<(Vec<u8>, u64)>,
        tail: Vec<u8>,
        total: u64,
    }
    let mut plans = Vec::new();
    let n = layers.len();
    for (i, layer) in layers.iter().enumerate() {
        let input = if i == 0 {
            "data".to_string()
        } else {
            format!("b{i}")
        };
        let output = if i + 1 == n {
            "out".to_string()
        } else {
            format!("b{}", i + 1)
        };
        let (member, head, w_field, b_field, wn, bn, tail) = match *layer {
            Layer::InnerProduct {
                input: ic,
                output: oc,
            } => {
                let mut h = Vec::new();
                uint_field(&mut h, 1, ic);
                uint_field(&mut h, 2, oc);
                uint_field(&mut h, 10, 1);
                (140u32, h, 20u32, 21u32, ic * oc, oc, Vec::new())
            }
            Layer::Conv { oc, kc, k } => {
                let mut h = Vec::new();
                uint_field(&mut h, 1, oc);
                uint_field(&mut h, 2, kc);
                uint_field(&mut h, 10, 1);
                packed_u64(&mut h, 20, &[k, k]);
                packed_u64(&mut h, 30, &[1, 1]);
                packed_u64(&mut h, 40, &[1, 1]);
                bytes_field(&mut h, 51, &[]);
                uint_field(&mut h, 70, 1);
                (100u32, h, 90u32, 91u32, oc * kc * k * k, oc, Vec::new())
            }
        };
        let params_len = head.len() as u64
            + weight_size(w_field, wn)
            + weight_size(b_field, bn)
            + tail.len() as u64;
        let mut lh = Vec::new();
        bytes_field(&mut lh, 1, format!("layer{i}").as_bytes());
        bytes_field(&mut lh, 2, input.as_bytes());
        bytes_field(&mut lh, 3, output.as_bytes());
        let layer_len =
            lh.len() as u64 + vlen(u64::from(member) << 3) + vlen(params_len) + params_len;
        let mut header = Vec::new();
        tag(&mut header, 1, 2);
        varint(&mut header, layer_len);
        header.extend_from_slice(&lh);
        tag(&mut header, member, 2);
        varint(&mut header, params_len);
        header.extend_from_slice(&head);
        let total = header.len() as u64 + weight_size(w_field, wn) + weight_size(b_field, bn);
        plans.push(Plan {
            header,
            tensors: vec![
                (weight_header(w_field, wn), wn),
                (weight_header(b_field, bn), bn),
            ],
            tail,
            total,
        });
    }
    let nn_len: u64 = plans.iter().map(|p| p.total).sum();
    let mut top = Vec::new();
    uint_field(&mut top, 1, 4);
    let mut desc = Vec::new();
    for (field, name) in [(1u32, "data"), (10u32, "out")] {
        let mut fd = Vec::new();
        bytes_field(&mut fd, 1, name.as_bytes());
        let mut ma = Vec::new();
        packed_u64(&mut ma, 1, &[1]);
        uint_field(&mut ma, 2, 65568);
        let mut ft = Vec::new();
        bytes_field(&mut ft, 5, &ma);
        bytes_field(&mut fd, 3, &ft);
        bytes_field(&mut desc, field, &fd);
    }
    bytes_field(&mut top, 2, &desc);
    tag(&mut top, 500, 2);
    varint(&mut top, nn_len);
    let mut out = BufWriter::with_capacity(1 << 22, std::fs::File::create(path)?);
    out.write_all(&top)?;
    let mut buf = vec![0f32; 1 << 20];
    let mut bytes = vec![0u8; 4 << 20];
    for (i, p) in plans.iter().enumerate() {
        out.write_all(&p.header)?;
        for (j, (h, n)) in p.tensors.iter().enumerate() {
            out.write_all(h)?;
            let mut left = *n as usize;
            let mut chunk = 0u64;
            while left > 0 {
                let m = left.min(buf.len());
                fill(
                    &mut buf[..m],
                    seed ^ ((i as u64) << 32) ^ ((j as u64) << 24) ^ chunk,
                    if j == 0 { 0.05 } else { 0.5 },
                );
                for (k, v) in buf[..m].iter().enumerate() {
                    bytes[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
                }
                out.write_all(&bytes[..4 * m])?;
                left -= m;
                chunk += 1;
            }
        }
        out.write_all(&p.tail)?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// ~150 M weights (~600 MB): 8 innerProducts 4096×4096 and 7 convolutions 512×512×3×3.
pub fn big_model() -> Vec<Layer> {
    let mut v = vec![
        Layer::InnerProduct {
            input: 4096,
            output: 4096
        };
        8
    ];
    v.extend(std::iter::repeat_n(
        Layer::Conv {
            oc: 512,
            kc: 512,
            k: 3,
        },
        7,
    ));
    v
}

/// A ResNet-50-like stack of convolutions (~25 M weights) and a 1000-way classifier.
pub fn resnet50_like() -> Vec<Layer> {
    let mut v = vec![Layer::Conv {
        oc: 64,
        kc: 3,
        k: 7,
    }];
    let mut cin = 64;
    for (mid, out, blocks) in [
        (64u64, 256u64, 3),
        (128, 512, 4),
        (256, 1024, 6),
        (512, 2048, 3),
    ] {
        for b in 0..blocks {
            let input = if b == 0 { cin } else { out };
            v.push(Layer::Conv {
                oc: mid,
                kc: input,
                k: 1,
            });
            v.push(Layer::Conv {
                oc: mid,
                kc: mid,
                k: 3,
            });
            v.push(Layer::Conv {
                oc: out,
                kc: mid,
                k: 1,
            });
            if b == 0 {
                v.push(Layer::Conv {
                    oc: out,
                    kc: input,
                    k: 1,
                });
            }
        }
        cin = out;
    }
    v.push(Layer::InnerProduct {
        input: 2048,
        output: 1000,
    });
    v
}

/// Total weights of a layer list.
pub fn total_weights(layers: &[Layer]) -> u64 {
    layers.iter().map(Layer::weights).sum()
}
