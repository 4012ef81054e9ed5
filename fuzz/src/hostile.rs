//! Builders of hostile and broken Core ML files: a minimal protobuf encoder and the models
//! that reliability tests and fuzz seeds need (lying lengths, deep nesting, huge repeated
//! fields, non-UTF-8 names, odd floats, zero-element tensors, colliding pipeline members).
//!
//! Shared by the tests (included by path) and the fuzz crate; field numbers are those of
//! `proto/Model.proto` and `proto/NeuralNetwork.proto`.

/// Appends `v` as a protobuf varint.
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A field tag.
pub fn tag(field: u32, wire_type: u8) -> Vec<u8> {
    let mut out = Vec::new();
    varint((u64::from(field) << 3) | u64::from(wire_type), &mut out);
    out
}

/// A varint field.
pub fn vint(field: u32, v: u64) -> Vec<u8> {
    let mut out = tag(field, 0);
    varint(v, &mut out);
    out
}

/// A length-delimited field (message, string, bytes, packed repeated).
pub fn ld(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = tag(field, 2);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A length-delimited field whose length prefix says `claimed` whatever follows.
pub fn ld_lying(field: u32, claimed: u64, body: &[u8]) -> Vec<u8> {
    let mut out = tag(field, 2);
    varint(claimed, &mut out);
    out.extend_from_slice(body);
    out
}

/// Packed little-endian floats.
pub fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Concatenates fields.
pub fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A `WeightParams` with float values.
pub fn weight_params(values: &[f32]) -> Vec<u8> {
    if values.is_empty() {
        Vec::new()
    } else {
        ld(1, &floats(values))
    }
}

/// A `NeuralNetworkLayer` holding an `innerProduct` (weights `out × in`, optional bias).
pub fn inner_product_layer(
    name: &[u8],
    input_channels: u64,
    output_channels: u64,
    weights: &[f32],
    bias: Option<&[f32]>,
) -> Vec<u8> {
    let mut params = cat(&[
        vint(1, input_channels),
        vint(2, output_channels),
        ld(20, &weight_params(weights)),
    ]);
    if let Some(b) = bias {
        params.extend(vint(10, 1));
        params.extend(ld(21, &weight_params(b)));
    }
    cat(&[ld(1, name), ld(2, b"data"), ld(3, b"out"), ld(140, &params)])
}

/// A `FeatureDescription` of a float32 multi-array of the given shape.
pub fn array_feature(name: &str, shape: &[i64]) -> Vec<u8> {
    let mut packed = Vec::new();
    for &d in shape {
        varint(d as u64, &mut packed);
    }
    // ArrayFeatureType { shape = 1 (packed), dataType = 2 (FLOAT32 = 65568) }
    let array = cat(&[ld(1, &packed), vint(2, 65568)]);
    // FeatureType { multiArrayType = 5 }
    cat(&[ld(1, name.as_bytes()), ld(3, &ld(5, &array))])
}

/// A neuralNetwork `Model` (specification version 4) with the given layers.
pub fn nn_model(layers: &[Vec<u8>]) -> Vec<u8> {
    let network: Vec<u8> = layers.iter().flat_map(|l| ld(1, l)).collect();
    let description = cat(&[
        ld(1, &array_feature("data", &[4])),
        ld(10, &array_feature("out", &[4])),
    ]);
    cat(&[vint(1, 4), ld(2, &description), ld(500, &network)])
}

/// A pipeline `Model` of the given named members.
pub fn pipeline_model(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut pipeline = Vec::new();
    for (_, m) in members {
        pipeline.extend(ld(1, m));
    }
    for (name, _) in members {
        pipeline.extend(ld(2, name.as_bytes()));
    }
    let description = cat(&[
        ld(1, &array_feature("data", &[4])),
        ld(10, &array_feature("out", &[4])),
    ]);
    cat(&[vint(1, 4), ld(2, &description), ld(202, &pipeline)])
}

/// A small, valid innerProduct model (4 → 4 with bias): the base of many hostile variants.
pub fn small_model() -> Vec<u8> {
    let w: Vec<f32> = (0..16).map(|i| i as f32 * 0.25 - 2.0).collect();
    nn_model(&[inner_product_layer(
        b"ip",
        4,
        4,
        &w,
        Some(&[0.5, -0.5, 1.0, -1.0]),
    )])
}

/// Prefixes (outermost first) of nested messages around a core, built inside-out in linear
/// time: each level is `tags and lengths` then the inner bytes, with nothing after them.
fn nest(core: Vec<u8>, depth: usize, level: impl Fn(usize) -> Vec<(Vec<u8>, u32)>) -> Vec<u8> {
    // `level(len)` lists, from inner to outer, (bytes before the inner field, field number)
    // pairs; each wraps everything inside it.
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let mut inner_len = core.len();
    for _ in 0..depth {
        for (before, field) in level(inner_len) {
            let mut p = before;
            p.extend(tag(field, 2));
            varint(inner_len as u64, &mut p);
            inner_len += p.len();
            prefixes.push(p);
        }
    }
    let mut out = Vec::with_capacity(inner_len);
    for p in prefixes.iter().rev() {
        out.extend_from_slice(p);
    }
    out.extend(core);
    out
}

/// A neuralNetwork model whose single layer is a branch whose if-network holds a branch
/// layer, `depth` times.
pub fn deep_branch_model(depth: usize) -> Vec<u8> {
    let leaf = inner_product_layer(b"leaf", 1, 1, &[1.0], None);
    // innermost network: NeuralNetwork { layers = [leaf] }
    let core = ld(1, &leaf);
    let nested = nest(core, depth, |_| {
        vec![
            // BranchLayerParams { ifBranch = 1 }
            (Vec::new(), 1),
            // NeuralNetworkLayer { name = 1, branch = 605 }
            (ld(1, b"b"), 605),
            // NeuralNetwork { layers = 1 }
            (Vec::new(), 1),
        ]
    });
    // The outermost NeuralNetwork bytes are `nested`; wrap them in Model.neuralNetwork.
    cat(&[vint(1, 4), ld(500, &nested)])
}

/// A pipeline whose first member is a pipeline, `depth` times, around a small model.
pub fn deep_pipeline_model(depth: usize) -> Vec<u8> {
    nest(small_model(), depth, |_| {
        vec![
            // Pipeline { models = 1 }
            (Vec::new(), 1),
            // Model { specificationVersion = 1, pipeline = 202 }
            (vint(1, 4), 202),
        ]
    })
}

/// A neuralNetwork model with `n` layers that are empty messages.
pub fn many_empty_layers_model(n: usize) -> Vec<u8> {
    let mut network = Vec::with_capacity(2 * n);
    for _ in 0..n {
        network.extend([0x0a, 0x00]);
    }
    cat(&[vint(1, 4), ld(500, &network)])
}

/// A neuralNetwork model with `n` innerProduct layers named `l0`, `l1`, …
pub fn many_layers_model(n: usize) -> Vec<u8> {
    let layers: Vec<Vec<u8>> = (0..n)
        .map(|i| inner_product_layer(format!("l{i}").as_bytes(), 1, 1, &[i as f32], None))
        .collect();
    nn_model(&layers)
}

/// An innerProduct model whose weights are `values` (shape `1 × values.len()`).
pub fn values_model(values: &[f32]) -> Vec<u8> {
    nn_model(&[inner_product_layer(
        b"ip",
        values.len() as u64,
        1,
        values,
        None,
    )])
}

/// Every length prefix in `bytes` that can be found by reading it as nested messages:
/// `(offset of the varint, its length in bytes)`, outermost first. Best effort: a
/// length-delimited field is descended into when its contents read as a message.
pub fn length_prefixes(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    walk(bytes, 0, bytes.len(), 0, &mut out);
    out
}

fn read_varint(bytes: &[u8], mut pos: usize, end: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        if pos >= end {
            return None;
        }
        let b = *bytes.get(pos)?;
        pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some((v, pos));
        }
    }
    None
}

/// Whether `start..end` reads as a sequence of well-formed fields.
fn is_message(bytes: &[u8], mut pos: usize, end: usize) -> bool {
    while pos < end {
        let Some((key, p)) = read_varint(bytes, pos, end) else {
            return false;
        };
        if key >> 3 == 0 {
            return false;
        }
        pos = match key & 7 {
            0 => match read_varint(bytes, p, end) {
                Some((_, p)) => p,
                None => return false,
            },
            1 => p + 8,
            2 => match read_varint(bytes, p, end) {
                Some((len, p)) if (len as usize) <= end - p => p + len as usize,
                _ => return false,
            },
            5 => p + 4,
            _ => return false,
        };
    }
    pos == end
}

fn walk(bytes: &[u8], mut pos: usize, end: usize, depth: usize, out: &mut Vec<(usize, usize)>) {
    if depth > 64 {
        return;
    }
    while pos < end {
        let Some((key, p)) = read_varint(bytes, pos, end) else {
            return;
        };
        pos = match key & 7 {
            0 => match read_varint(bytes, p, end) {
                Some((_, p)) => p,
                None => return,
            },
            1 => p + 8,
            5 => p + 4,
            2 => match read_varint(bytes, p, end) {
                Some((len, q)) if (len as usize) <= end - q => {
                    out.push((p, q - p));
                    let body_end = q + len as usize;
                    if len > 0 && is_message(bytes, q, body_end) {
                        walk(bytes, q, body_end, depth + 1, out);
                    }
                    body_end
                }
                _ => return,
            },
            _ => return,
        };
    }
}

/// `bytes` with the varint at `at` (of `old_len` bytes) replaced by `value`.
pub fn with_length(bytes: &[u8], at: usize, old_len: usize, value: u64) -> Vec<u8> {
    let mut out = bytes[..at].to_vec();
    varint(value, &mut out);
    out.extend_from_slice(&bytes[at + old_len..]);
    out
}

/// The hostile inputs committed under `tests/data/hostile/` (name, bytes): small enough to
/// keep in the repository and to seed the fuzzers.
pub fn committed_files() -> Vec<(&'static str, Vec<u8>)> {
    let base = small_model();
    let prefixes = length_prefixes(&base);
    let first_len = prefixes.first().copied().unwrap_or((0, 0));
    let last_len = prefixes.last().copied().unwrap_or((0, 0));
    let odd = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE / 2.0,
        -0.0,
        f32::MAX,
        f32::MIN,
        1e-45,
    ];
    let non_utf8 = cat(&[
        ld(1, b"\xff\xfe conv \xc3"),
        ld(2, b"in\xc0\x80put"),
        ld(3, b"\xed\xa0\x80"),
        ld(
            140,
            &cat(&[vint(1, 1), vint(2, 1), ld(20, &weight_params(&[1.0]))]),
        ),
    ]);
    let huge_quant = {
        let quant = cat(&[
            vint(1, 1),
            ld(101, &cat(&[ld(1, &floats(&[1.0])), ld(2, &floats(&[0.0]))])),
        ]);
        let w = cat(&[ld(30, &[0xff]), ld(40, &quant)]);
        cat(&[
            ld(1, b"ip"),
            ld(140, &cat(&[vint(1, 1 << 30), vint(2, 1 << 30), ld(20, &w)])),
        ])
    };
    let subnormal: Vec<f32> = (1..=16).map(f32::from_bits).collect();
    vec![
        ("six_bytes_claiming_2gb.mlmodel", ld_lying(2, 1 << 31, &[])),
        ("outer_length_u64_max.mlmodel", with_length(&base, first_len.0, first_len.1, u64::MAX)),
        ("inner_length_2gb.mlmodel", with_length(&base, last_len.0, last_len.1, 1 << 31)),
        ("truncated_in_weights.mlmodel", base[..base.len().saturating_sub(7)].to_vec()),
        ("unterminated_varint.mlmodel", vec![0x08, 0xff, 0xff, 0xff]),
        ("eleven_byte_varint.mlmodel", cat(&[vec![0x08], vec![0xff; 10], vec![0x01]])),
        ("deep_branch_200.mlmodel", deep_branch_model(200)),
        ("deep_pipeline_200.mlmodel", deep_pipeline_model(200)),
        ("empty_network.mlmodel", nn_model(&[])),
        ("thousand_empty_layers.mlmodel", many_empty_layers_model(1000)),
        ("non_utf8_names.mlmodel", nn_model(&[non_utf8])),
        ("nan_inf_subnormal.mlmodel", values_model(&odd)),
        ("all_subnormal.mlmodel", values_model(&subnormal)),
        ("all_nan.mlmodel", values_model(&[f32::NAN; 8])),
        ("zero_by_zero.mlmodel", nn_model(&[inner_product_layer(b"ip", 0, 0, &[], None)])),
        ("header_without_values.mlmodel", nn_model(&[inner_product_layer(b"ip", 4, 4, &[], None)])),
        (
            "three_byte_floats.mlmodel",
            nn_model(&[cat(&[
                ld(1, b"ip"),
                ld(140, &cat(&[vint(1, 1), vint(2, 1), ld(20, &ld(1, &[0, 0, 0x80]))])),
            ])]),
        ),
        (
            "overflowing_shape.mlmodel",
            nn_model(&[inner_product_layer(b"ip", u64::MAX, u64::MAX, &[1.0], None)]),
        ),
        ("huge_quantized_shape.mlmodel", nn_model(&[huge_quant])),
        (
            "colliding_layer_names.mlmodel",
            pipeline_model(&[("first", small_model()), ("second", small_model())]),
        ),
        ("deep_nesting.quant.json", "[".repeat(5000).into_bytes()),
        ("deep_objects.quant.json", "{\"layers\":".repeat(3000).into_bytes()),
        (
            "huge_numbers.quant.json",
            format!("{{\"nbits\": 1e{}, \"lut\": [-1e999, 1e-999, 123456789012345678901234567890]}}", "9".repeat(400))
                .into_bytes(),
        ),
        ("not_utf8.quant.json", b"{\"model\": \"\xff\xfe.mlmodel\", \"nbits\": 8}".to_vec()),
        (
            "self_model.quant.json",
            b"{\"model\": \"self_model.quant.json\", \"nbits\": 8}".to_vec(),
        ),
        (
            "self_output.quant.json",
            b"{\"model\": \"../../fixtures/models/conv.mlmodel\", \"output\": \"self_output.quant.json\", \"nbits\": 8}".to_vec(),
        ),
        (
            "output_is_input.quant.json",
            b"{\"model\": \"../../fixtures/models/conv.mlmodel\", \"output\": \"../../fixtures/models/conv.mlmodel\", \"nbits\": 8}".to_vec(),
        ),
        (
            "output_outside_workspace.quant.json",
            b"{\"model\": \"../../fixtures/models/conv.mlmodel\", \"output\": \"../../../../outside.mlmodel\", \"nbits\": 8}".to_vec(),
        ),
        (
            "model_is_dev_zero.quant.json",
            b"{\"model\": \"/dev/zero\", \"nbits\": 8}".to_vec(),
        ),
        (
            "model_is_a_folder.quant.json",
            b"{\"model\": \".\", \"nbits\": 8}".to_vec(),
        ),
    ]
}
