//! The walk behind [`super::index::build`]: Model → pipelines → networks → layers →
//! WeightParams, reading tags, lengths and header fields in place.
//!
//! Only the skeleton is read: a WeightParams' payload fields are recorded as spans, never
//! decoded, so indexing a large file touches only the pages holding field headers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::index::{
    FeatureInfo, LayerId, LayerInfo, LayerParams, ModelId, ModelIndex, ModelInfo, NetworkId,
    NetworkInfo, NetworkRole, Storage, WeightInfo,
};
use super::names::{layer_type_name, model_type_name};
use super::proto as pb;
use super::wire::{
    expect_f32, expect_len, expect_varint, packed_f32, packed_f32_count, push_repeated_varint,
    Field, Fields, WireError, WireType, MAX_DEPTH,
};
use super::ModelError;

type Span = Range<usize>;
type R<T> = Result<T, WireError>;

/// `Model.Type` members holding a neural network, and the container message names.
const NN_MODEL_TYPES: [(u32, &str); 3] = [
    (500, "NeuralNetwork"),
    (403, "NeuralNetworkClassifier"),
    (303, "NeuralNetworkRegressor"),
];

/// Builds the index (see [`super::index::build`]).
pub fn build(path: &Path, bytes: &[u8]) -> Result<ModelIndex, ModelError> {
    if bytes.is_empty() {
        return Err(ModelError::NotAModel {
            path: path.to_path_buf(),
            message: "is empty (0 bytes), not a Core ML model".into(),
        });
    }
    if bytes.starts_with(b"version https://git-lfs") {
        return Err(ModelError::NotAModel {
            path: path.to_path_buf(),
            message: "is a Git LFS pointer, not the model itself; fetch the file with \
                      `git lfs pull`"
                .into(),
        });
    }
    let mut w = Walker {
        buf: bytes,
        idx: ModelIndex::default(),
        unknown: BTreeMap::new(),
        not_utf8: None,
    };
    w.idx.path = path.to_path_buf();
    w.idx.file_bytes = bytes.len() as u64;
    let known = match w.model(0..bytes.len(), 0..bytes.len(), None, String::new(), 0) {
        Ok(known) => known,
        Err(e) => {
            let mut message = e.message;
            if looks_like_text(bytes) {
                message.push_str(" (the file looks like text, not a binary Core ML model)");
            }
            return Err(ModelError::Malformed {
                path: path.to_path_buf(),
                offset: e.offset as u64,
                message,
            });
        }
    };
    if !known {
        return Err(ModelError::NotAModel {
            path: path.to_path_buf(),
            message: "holds no Core ML Model field (specificationVersion, description or a \
                      model type); not a Core ML model"
                .into(),
        });
    }
    if let Some((what, at)) = w.not_utf8.take() {
        w.idx.warnings.push(format!(
            "strings that are not valid UTF-8 (the first: {what} at byte {at}), shown with \
             U+FFFD; protobuf strings must be UTF-8, and Core ML and coremltools refuse such a \
             file"
        ));
    }
    for (what, (count, first)) in std::mem::take(&mut w.unknown) {
        w.idx.warnings.push(format!(
            "{count} unknown field(s) in {what} (first at byte {first}); they are kept as they are"
        ));
    }
    Ok(w.idx)
}

/// The float32 values of a WeightParams (see [`super::index::float_values`]).
pub fn float_values(path: &Path, bytes: &[u8], w: &WeightInfo) -> Result<Vec<f32>, ModelError> {
    let err = |e: WireError| ModelError::Malformed {
        path: path.to_path_buf(),
        offset: e.offset as u64,
        message: e.message,
    };
    if let Some(span) = &w.float_values {
        let payload = bytes.get(span.clone()).ok_or_else(|| {
            err(WireError::new(
                span.start,
                "floatValue lies outside the file (stale index?)",
            ))
        })?;
        packed_f32_count(span, "WeightParams.floatValue").map_err(err)?;
        return Ok(packed_f32(payload).collect());
    }
    // Unusual encodings: several packed runs, or one fixed32 per value.
    let mut out = Vec::new();
    if w.body.end > bytes.len() {
        return Err(err(WireError::new(
            w.body.start,
            "WeightParams lies outside the file",
        )));
    }
    for f in Fields::new(bytes, w.body.clone(), "WeightParams") {
        let f = f.map_err(err)?;
        if f.number != 1 {
            continue;
        }
        match f.wire_type {
            WireType::Fixed32 => out.push(f.as_f32()),
            WireType::Len => {
                packed_f32_count(&f.value, "WeightParams.floatValue").map_err(err)?;
                out.extend(packed_f32(&bytes[f.value.clone()]));
            }
            _ => {
                return Err(err(WireError::new(
                    f.span.start,
                    "WeightParams.floatValue has a wire type other than fixed32 or packed",
                )))
            }
        }
    }
    Ok(out)
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    head.iter()
        .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b))
}

/// ` (flexible)` for an image or array type with a shape range or enumerated shapes.
fn flexible(msg: &Msg) -> &'static str {
    if msg.last(21).is_some() || msg.last(31).is_some() {
        " (flexible)"
    } else {
        ""
    }
}

/// How a small, fully modelled message failed a full decode.
enum DecodeProblem {
    /// A string that is not UTF-8 (reported as a warning, like names: the index still works).
    Utf8(String),
    /// Anything else: a length, wire type or varint that does not fit.
    Malformed(WireError),
}

/// Checks a small message whose fields are all modelled in `proto/` (a description, a class
/// label list) with a full decode: wire types, lengths and UTF-8 of every string, as
/// coremltools' parse does. Never used on weight payloads.
fn check_decodes<M: prost::Message + Default>(
    buf: &[u8],
    body: &Span,
    what: &str,
) -> Result<(), DecodeProblem> {
    let bytes = buf.get(body.clone()).unwrap_or_default();
    let Err(e) = M::decode(bytes) else {
        return Ok(());
    };
    // prost lists the enclosing fields innermost first ("Inner.f: Outer.g: problem"); print
    // them outermost first.
    let text = e.to_string().replace("r#", "");
    let text = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let is_field = |p: &&str| {
        p.split_once('.').is_some_and(|(m, f)| {
            !m.is_empty()
                && !f.is_empty()
                && (m.chars().chain(f.chars())).all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let mut parts: Vec<&str> = text.split(": ").take_while(is_field).collect();
    let problem = text
        .split(": ")
        .skip(parts.len())
        .collect::<Vec<_>>()
        .join(": ");
    parts.reverse();
    let place = if parts.is_empty() {
        what.to_string()
    } else {
        parts.join(" > ")
    };
    if problem.contains("UTF-8") {
        return Err(DecodeProblem::Utf8(place));
    }
    Err(DecodeProblem::Malformed(WireError::new(
        body.start,
        format!(
            "{what} ({} bytes) is not valid in {place}: {problem} (Core ML and coremltools refuse \
             such a file)",
            body.len()
        ),
    )))
}

fn deeper(depth: usize, at: usize) -> R<usize> {
    if depth >= MAX_DEPTH {
        return Err(WireError::new(
            at,
            format!("messages nested more than {MAX_DEPTH} deep (expected a Core ML model)"),
        ));
    }
    Ok(depth + 1)
}

/// The fields of one small message, read once so that header fields can be looked up by
/// number in any order.
struct Msg {
    what: &'static str,
    fields: Vec<Field>,
}

impl Msg {
    fn last(&self, n: u32) -> Option<&Field> {
        self.fields.iter().rev().find(|f| f.number == n)
    }

    fn u64(&self, n: u32, name: &str) -> R<u64> {
        match self.last(n) {
            Some(f) if f.wire_type == WireType::Varint => Ok(f.scalar),
            Some(f) => expect_varint(f, &format!("{}.{name}", self.what)),
            None => Ok(0),
        }
    }

    /// A recurrent layer's (inputVectorSize, outputVectorSize).
    fn rnn_sizes(&self) -> R<(u64, u64)> {
        Ok((
            self.u64(1, "inputVectorSize")?,
            self.u64(2, "outputVectorSize")?,
        ))
    }

    fn bool(&self, n: u32, name: &str) -> R<bool> {
        Ok(self.u64(n, name)? != 0)
    }

    /// A repeated integer field (packed or unpacked, all occurrences).
    fn u64s(&self, buf: &[u8], n: u32) -> R<Vec<u64>> {
        let mut out = Vec::new();
        for f in self.fields.iter().filter(|f| f.number == n) {
            push_repeated_varint(buf, f, self.what, &mut out)?;
        }
        Ok(out)
    }

    /// A singular message field; a second occurrence (which protobuf would merge) is refused.
    fn one(&self, n: u32, name: &str) -> R<Option<&Field>> {
        let mut it = self.fields.iter().filter(|f| f.number == n);
        let first = it.next();
        if let Some(second) = it.next() {
            return Err(WireError::new(
                second.span.start,
                format!(
                    "{}.{name} (field {n}) occurs twice; merged messages are not supported",
                    self.what
                ),
            ));
        }
        if let Some(f) = first.filter(|f| f.wire_type != WireType::Len) {
            expect_len(f, &format!("{}.{name}", self.what))?;
        }
        Ok(first)
    }

    /// A repeated message field.
    fn many(&self, n: u32, name: &str) -> R<Vec<&Field>> {
        let out: Vec<&Field> = self.fields.iter().filter(|f| f.number == n).collect();
        for f in out.iter().filter(|f| f.wire_type != WireType::Len) {
            expect_len(f, &format!("{}.{name}", self.what))?;
        }
        Ok(out)
    }
}

/// A WeightParams field to index: where it is, its name and its view.
struct Wp<'f> {
    field: &'f Field,
    name: String,
    shape: Vec<u64>,
    axis: usize,
}

impl<'f> Wp<'f> {
    /// A WeightParams field whose channel axis is 0.
    fn new(field: &'f Field, name: String, shape: Vec<u64>) -> Wp<'f> {
        Wp {
            field,
            name,
            shape,
            axis: 0,
        }
    }
}

struct Walker<'a> {
    buf: &'a [u8],
    idx: ModelIndex,
    /// Unknown fields per message type: (count, first offset).
    unknown: BTreeMap<&'static str, (u64, usize)>,
    /// The first string that is not UTF-8: (its field, its offset).
    not_utf8: Option<(String, usize)>,
}

impl<'a> Walker<'a> {
    fn read(&mut self, body: Span, what: &'static str, known: &[u32]) -> R<Msg> {
        let fields = Fields::new(self.buf, body, what).collect::<R<Vec<_>>>()?;
        if !known.is_empty() {
            for f in fields.iter().filter(|f| !known.contains(&f.number)) {
                self.note_unknown(what, f.span.start);
            }
        }
        Ok(Msg { what, fields })
    }

    /// The string field `f` (`what` names it), decoded lossily: protobuf strings must be UTF-8,
    /// and one that is not is noted for a warning (Core ML and coremltools refuse the file).
    fn string(&mut self, f: &Field, what: &str) -> String {
        let bytes = self.buf.get(f.value.clone()).unwrap_or_default();
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(e) => {
                self.note_not_utf8(what, f.value.start + e.valid_up_to());
                String::from_utf8_lossy(bytes).into_owned()
            }
        }
    }

    fn note_not_utf8(&mut self, what: &str, at: usize) {
        self.not_utf8.get_or_insert_with(|| (what.to_string(), at));
    }

    /// [`check_decodes`], with a string that is not UTF-8 noted for the warning.
    fn check<M: prost::Message + Default>(&mut self, body: &Span, what: &str) -> R<()> {
        match check_decodes::<M>(self.buf, body, what) {
            Ok(()) => Ok(()),
            Err(DecodeProblem::Utf8(place)) => {
                self.note_not_utf8(&format!("{place}, in the {what} that starts"), body.start);
                Ok(())
            }
            Err(DecodeProblem::Malformed(e)) => Err(e),
        }
    }

    fn note_unknown(&mut self, what: &'static str, at: usize) {
        let e = self.unknown.entry(what).or_insert((0, at));
        e.0 += 1;
    }

    /// Walks one Model message; returns whether any known Model field was present.
    fn model(
        &mut self,
        span: Span,
        body: Span,
        parent: Option<ModelId>,
        path: String,
        depth: usize,
    ) -> R<bool> {
        let depth = deeper(depth, body.start)?;
        let id = self.idx.models.len();
        self.idx.models.push(ModelInfo {
            span,
            body: body.clone(),
            parent,
            path,
            ..Default::default()
        });
        let mut known = false;
        let mut type_seen: Option<u32> = None;
        for f in Fields::new(self.buf, body, "Model") {
            let f = f?;
            match f.number {
                1 => {
                    let v = expect_varint(&f, "Model.specificationVersion")?;
                    // int32 on the wire: negative values are sign-extended to 64 bits.
                    self.idx.models[id].specification_version = i64::from(v as u32 as i32);
                    known = true;
                }
                2 => {
                    expect_len(&f, "Model.description")?;
                    let (inputs, outputs) = self.description(f.value.clone(), depth)?;
                    let m = &mut self.idx.models[id];
                    m.inputs = inputs;
                    m.outputs = outputs;
                    known = true;
                }
                10 => {
                    self.idx.models[id].is_updatable = expect_varint(&f, "Model.isUpdatable")? != 0;
                    known = true;
                }
                n if n >= 200 && f.wire_type == WireType::Len => {
                    if let Some(prev) = type_seen {
                        return Err(WireError::new(
                            f.span.start,
                            format!(
                                "Model has a second model type (field {n} after field {prev}); \
                                 expected exactly one"
                            ),
                        ));
                    }
                    type_seen = Some(n);
                    known = true;
                    self.model_type(id, &f, depth)?;
                }
                n if model_type_name(n).is_some() => {
                    expect_len(&f, model_type_name(n).unwrap_or("Model.Type"))?;
                }
                _ => self.note_unknown("Model", f.span.start),
            }
        }
        Ok(known)
    }

    fn model_type(&mut self, id: ModelId, f: &Field, depth: usize) -> R<()> {
        let n = f.number;
        let name = model_type_name(n).map_or_else(|| format!("unknown({n})"), str::to_string);
        let prefix = match self.idx.models[id].path.as_str() {
            "" => String::new(),
            p => format!("{p}."),
        };
        {
            let m = &mut self.idx.models[id];
            m.type_field = n;
            m.model_type = name.clone();
        }
        match n {
            202 => self.pipeline(f.value.clone(), id, format!("{prefix}pipeline"), depth)?,
            200 | 201 => {
                let what = if n == 200 {
                    "PipelineClassifier"
                } else {
                    "PipelineRegressor"
                };
                let d = deeper(depth, f.value.start)?;
                let msg = self.read(f.value.clone(), what, &[1])?;
                if let Some(p) = msg.one(1, "pipeline")? {
                    let p = p.value.clone();
                    self.pipeline(p, id, format!("{prefix}{name}.pipeline"), d)?;
                }
            }
            _ => {
                if let Some((_, what)) = NN_MODEL_TYPES.iter().find(|(t, _)| *t == n) {
                    let net = self.network(
                        f.span.clone(),
                        f.value.clone(),
                        id,
                        None,
                        NetworkRole::Main,
                        format!("{prefix}{name}"),
                        what,
                        depth,
                    )?;
                    self.idx.models[id].network = Some(net);
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, body: Span, parent: ModelId, path: String, depth: usize) -> R<()> {
        let depth = deeper(depth, body.start)?;
        let mut names = Vec::new();
        let mut children = Vec::new();
        for f in Fields::new(self.buf, body, "Pipeline") {
            let f = f?;
            match f.number {
                1 => {
                    expect_len(&f, "Pipeline.models")?;
                    let child = self.idx.models.len();
                    let child_path = format!("{path}.models[{}]", children.len());
                    self.model(
                        f.span.clone(),
                        f.value.clone(),
                        Some(parent),
                        child_path,
                        depth,
                    )?;
                    children.push(child);
                }
                2 => {
                    expect_len(&f, "Pipeline.names")?;
                    names.push(self.string(&f, "Pipeline.names"));
                }
                _ => self.note_unknown("Pipeline", f.span.start),
            }
        }
        for (i, &c) in children.iter().enumerate() {
            self.idx.models[c].name = names.get(i).cloned();
        }
        self.idx.models[parent].children.extend(children);
        Ok(())
    }

    fn description(&mut self, body: Span, depth: usize) -> R<(Vec<FeatureInfo>, Vec<FeatureInfo>)> {
        let depth = deeper(depth, body.start)?;
        let msg = self.read(
            body.clone(),
            "ModelDescription",
            &[1, 10, 11, 12, 13, 20, 21, 50, 100],
        )?;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for f in &msg.fields {
            let out = match f.number {
                1 => &mut inputs,
                10 => &mut outputs,
                _ => continue,
            };
            expect_len(f, "ModelDescription.input/output")?;
            out.push(self.feature(f.value.clone(), depth)?);
        }
        // The description is small and fully modelled: check all of it (metadata, shape
        // ranges, function descriptions), not only the parts the index reports. The walk
        // above has already reported what it reads, with its exact offset.
        self.check::<pb::ModelDescription>(&body, "ModelDescription")?;
        Ok((inputs, outputs))
    }

    fn feature(&mut self, body: Span, depth: usize) -> R<FeatureInfo> {
        let depth = deeper(depth, body.start)?;
        let msg = self.read(body, "FeatureDescription", &[1, 2, 3])?;
        let mut info = FeatureInfo::default();
        if let Some(f) = msg.last(1) {
            expect_len(f, "FeatureDescription.name")?;
            info.name = self.string(f, "FeatureDescription.name");
        }
        if let Some(f) = msg.last(3) {
            expect_len(f, "FeatureDescription.type")?;
            info.kind = self.feature_type(f.value.clone(), depth)?;
        }
        Ok(info)
    }

    fn feature_type(&mut self, body: Span, depth: usize) -> R<String> {
        let depth = deeper(depth, body.start)?;
        let msg = self.read(body, "FeatureType", &[1, 2, 3, 4, 5, 6, 7, 8, 1000])?;
        let mut kind = String::new();
        for f in &msg.fields {
            kind = match f.number {
                1 => "int64".into(),
                2 => "double".into(),
                3 => "string".into(),
                4 => {
                    expect_len(f, "FeatureType.imageType")?;
                    self.image_type(f.value.clone(), depth)?
                }
                5 => {
                    expect_len(f, "FeatureType.multiArrayType")?;
                    self.array_type(f.value.clone(), depth)?
                }
                6 => {
                    let key = self.element_type(f, "dictionaryType", "DictionaryFeatureType", 2)?;
                    format!("dictionary<{key},double>")
                }
                7 => {
                    let item = self.element_type(f, "sequenceType", "SequenceFeatureType", 3)?;
                    format!("sequence<{item}>")
                }
                8 => {
                    expect_len(f, "FeatureType.stateType")?;
                    let s = self.read(f.value.clone(), "StateFeatureType", &[])?;
                    match s.one(1, "arrayType")? {
                        Some(a) => {
                            format!("state {}", self.array_type(a.value.clone(), depth + 1)?)
                        }
                        None => "state".into(),
                    }
                }
                _ => continue,
            };
        }
        if msg.last(1000).is_some_and(Field::as_bool) {
            kind.push_str(" (optional)");
        }
        Ok(kind)
    }

    /// The key or item type of the dictionary or sequence type in `f`: `string` when its
    /// string member `n` is present, else `int64`.
    fn element_type(
        &mut self,
        f: &Field,
        member: &str,
        what: &'static str,
        n: u32,
    ) -> R<&'static str> {
        expect_len(f, &format!("FeatureType.{member}"))?;
        let m = self.read(f.value.clone(), what, &[])?;
        Ok(if m.last(n).is_some() {
            "string"
        } else {
            "int64"
        })
    }

    fn image_type(&mut self, body: Span, depth: usize) -> R<String> {
        deeper(depth, body.start)?;
        let msg = self.read(body, "ImageFeatureType", &[])?;
        let w = msg.u64(1, "width")? as i64;
        let h = msg.u64(2, "height")? as i64;
        let space = match msg.u64(3, "colorSpace")? {
            10 => " grayscale",
            20 => " RGB",
            30 => " BGR",
            40 => " grayscale float16",
            _ => "",
        };
        let flex = flexible(&msg);
        Ok(format!("image {w}x{h}{space}{flex}"))
    }

    fn array_type(&mut self, body: Span, depth: usize) -> R<String> {
        deeper(depth, body.start)?;
        let msg = self.read(body, "ArrayFeatureType", &[])?;
        let shape = msg.u64s(self.buf, 1)?;
        let dims: Vec<String> = shape.iter().map(|&d| (d as i64).to_string()).collect();
        let dtype = match msg.u64(2, "dataType")? {
            65568 => " float32",
            65600 => " float64",
            131104 => " int32",
            131080 => " int8",
            65552 => " float16",
            _ => "",
        };
        let flex = flexible(&msg);
        Ok(format!("multiArray [{}]{dtype}{flex}", dims.join(",")))
    }

    #[allow(clippy::too_many_arguments)]
    fn network(
        &mut self,
        span: Span,
        body: Span,
        model: ModelId,
        parent_layer: Option<LayerId>,
        role: NetworkRole,
        path: String,
        what: &'static str,
        depth: usize,
    ) -> R<NetworkId> {
        let depth = deeper(depth, body.start)?;
        let id = self.idx.networks.len();
        self.idx.networks.push(NetworkInfo {
            model,
            parent_layer,
            role,
            path: path.clone(),
            span,
            body: body.clone(),
            layers: Vec::new(),
        });
        let known: &[u32] = if what == "NeuralNetworkClassifier" {
            &[1, 2, 5, 6, 10, 100, 101, 200]
        } else {
            &[1, 2, 5, 6, 10]
        };
        let mut i = 0usize;
        for f in Fields::new(self.buf, body, what) {
            let f = f?;
            if f.number == 1 {
                expect_len(&f, "NeuralNetwork.layers")?;
                let layer = self.layer(f.span.clone(), f.value.clone(), id, &path, i, depth)?;
                self.idx.networks[id].layers.push(layer);
                i += 1;
            } else if what == "NeuralNetworkClassifier" && (f.number == 100 || f.number == 101) {
                // Class labels: check them as coremltools' parse would (UTF-8 strings).
                let name = if f.number == 100 {
                    "NeuralNetworkClassifier.stringClassLabels"
                } else {
                    "NeuralNetworkClassifier.int64ClassLabels"
                };
                expect_len(&f, name)?;
                if f.number == 100 {
                    self.check::<pb::StringVector>(&f.value, name)?;
                } else {
                    self.check::<pb::Int64Vector>(&f.value, name)?;
                }
            } else if !known.contains(&f.number) {
                self.note_unknown(what, f.span.start);
            }
        }
        Ok(id)
    }

    fn layer(
        &mut self,
        span: Span,
        body: Span,
        network: NetworkId,
        net_path: &str,
        index: usize,
        depth: usize,
    ) -> R<LayerId> {
        let depth = deeper(depth, body.start)?;
        let mut info = LayerInfo {
            network,
            span,
            ..Default::default()
        };
        let mut params: Option<Field> = None;
        for f in Fields::new(self.buf, body, "NeuralNetworkLayer") {
            let f = f?;
            match f.number {
                1 => {
                    expect_len(&f, "NeuralNetworkLayer.name")?;
                    info.name = self.string(&f, "NeuralNetworkLayer.name");
                }
                2 => {
                    expect_len(&f, "NeuralNetworkLayer.input")?;
                    info.inputs
                        .push(self.string(&f, "NeuralNetworkLayer.input"));
                }
                3 => {
                    expect_len(&f, "NeuralNetworkLayer.output")?;
                    info.outputs
                        .push(self.string(&f, "NeuralNetworkLayer.output"));
                }
                4 | 5 => {}
                10 => info.is_updatable = expect_varint(&f, "NeuralNetworkLayer.isUpdatable")? != 0,
                n if n >= 100 => {
                    expect_len(&f, "NeuralNetworkLayer.layer")?;
                    if let Some(prev) = &params {
                        return Err(WireError::new(
                            f.span.start,
                            format!(
                                "layer {:?} has a second layer type (field {n} after field {}); \
                                 expected exactly one",
                                info.name, prev.number
                            ),
                        ));
                    }
                    params = Some(f);
                }
                _ => self.note_unknown("NeuralNetworkLayer", f.span.start),
            }
        }
        let id = self.idx.layers.len();
        if let Some(p) = &params {
            info.type_field = p.number;
            info.layer_type = layer_type_name(p.number)
                .map_or_else(|| format!("unknown({})", p.number), str::to_string);
            info.params_span = p.span.clone();
        }
        self.idx.layers.push(info);
        if let Some(p) = params {
            self.params(id, &p, (net_path, index), depth).map_err(|e| {
                let l = &self.idx.layers[id];
                WireError::new(
                    e.offset,
                    format!("layer {:?} ({}): {}", l.name, l.layer_type, e.message),
                )
            })?;
        }
        Ok(id)
    }

    /// Reads a layer's params message: header fields, WeightParams, nested networks.
    /// `at` is the layer's network path and index, for the paths of nested networks.
    fn params(&mut self, id: LayerId, p: &Field, at: (&str, usize), depth: usize) -> R<()> {
        let depth = deeper(depth, p.value.start)?;
        let body = p.value.clone();
        // Holders of nested messages (LSTM weights, activations) must outlive `wps`.
        let msg;
        let mut nested: Vec<(String, Msg)> = Vec::new();
        // WeightParams inside activation parameters: (full field name, field).
        let mut extra: Vec<(String, Field)> = Vec::new();
        let mut wps: Vec<Wp<'_>> = Vec::new();
        let params: LayerParams;
        match p.number {
            100 => {
                msg = self.read(
                    body,
                    "ConvolutionLayerParams",
                    &[1, 2, 10, 20, 30, 40, 50, 51, 60, 70, 90, 91, 100],
                )?;
                let oc = msg.u64(1, "outputChannels")?;
                let kc = msg.u64(2, "kernelChannels")?;
                let groups = msg.u64(10, "nGroups")?;
                let ks = msg.u64s(self.buf, 20)?;
                let deconv = msg.bool(60, "isDeconvolution")?;
                let (shape, axis) = match ks.as_slice() {
                    [kh, kw] if deconv => (vec![kc, oc / groups.max(1), *kh, *kw], 1),
                    [kh, kw] => (vec![oc, kc, *kh, *kw], 0),
                    _ => (Vec::new(), 0),
                };
                push_wp(&mut wps, &msg, 90, "weights", shape, axis)?;
                push_wp(&mut wps, &msg, 91, "bias", vec![oc], 0)?;
                params = LayerParams::Convolution {
                    output_channels: oc,
                    kernel_channels: kc,
                    n_groups: groups,
                    kernel_size: ks,
                    is_deconvolution: deconv,
                    has_bias: msg.bool(70, "hasBias")?,
                };
            }
            140 | 150 | 1040 | 1045 => {
                let Some(d) = DENSE.iter().find(|d| d.number == p.number) else {
                    return Err(WireError::new(p.span.start, "no dense layer table entry"));
                };
                msg = self.read(body, d.what, d.known)?;
                let (ni, no) = d.sizes;
                let (input, output) = (msg.u64(ni.0, ni.1)?, msg.u64(no.0, no.1)?);
                push_wp(&mut wps, &msg, d.weights, "weights", vec![output, input], 0)?;
                push_wp(&mut wps, &msg, d.bias, "bias", vec![output], 0)?;
                let has_bias = msg.bool(d.has_bias.0, d.has_bias.1)?;
                let int8 = match d.int8 {
                    Some((n, name)) => msg.bool(n, name)?,
                    None => false,
                };
                params = (d.params)(input, output, has_bias, int8);
            }
            160 => {
                msg = self.read(body, "BatchnormLayerParams", &[1, 5, 6, 10, 15, 16, 17, 18])?;
                let c = msg.u64(1, "channels")?;
                for (n, name) in [(15, "gamma"), (16, "beta"), (17, "mean"), (18, "variance")] {
                    push_wp(&mut wps, &msg, n, name, vec![c], 0)?;
                }
                let epsilon = match msg.last(10) {
                    Some(f) => expect_f32(f, "BatchnormLayerParams.epsilon")?,
                    None => 0.0,
                };
                params = LayerParams::Batchnorm {
                    channels: c,
                    compute_mean_var: msg.bool(5, "computeMeanVar")?,
                    instance_normalization: msg.bool(6, "instanceNormalization")?,
                    epsilon,
                };
            }
            245 => {
                msg = self.read(body, "ScaleLayerParams", &[1, 2, 3, 4, 5])?;
                let shape_scale = msg.u64s(self.buf, 1)?;
                let shape_bias = msg.u64s(self.buf, 4)?;
                push_wp(&mut wps, &msg, 2, "scale", product(&shape_scale), 0)?;
                push_wp(&mut wps, &msg, 5, "bias", product(&shape_bias), 0)?;
                params = LayerParams::Scale {
                    shape_scale,
                    has_bias: msg.bool(3, "hasBias")?,
                    shape_bias,
                };
            }
            250 => {
                msg = self.read(body, "BiasLayerParams", &[1, 2])?;
                let shape = msg.u64s(self.buf, 1)?;
                push_wp(&mut wps, &msg, 2, "bias", product(&shape), 0)?;
                params = LayerParams::Bias { shape };
            }
            290 | 1070 => {
                let what = if p.number == 290 {
                    "LoadConstantLayerParams"
                } else {
                    "LoadConstantNDLayerParams"
                };
                msg = self.read(body, what, &[1, 2])?;
                let shape = msg.u64s(self.buf, 1)?;
                push_wp(&mut wps, &msg, 2, "data", product(&shape), 0)?;
                params = LayerParams::LoadConstant { shape };
            }
            400 => {
                msg = self.read(
                    body,
                    "SimpleRecurrentLayerParams",
                    &[1, 2, 10, 15, 20, 30, 31, 32, 100],
                )?;
                let (i, o) = msg.rnn_sizes()?;
                push_wp(&mut wps, &msg, 30, "weightMatrix", vec![o, i], 0)?;
                push_wp(&mut wps, &msg, 31, "recursionMatrix", vec![o, o], 0)?;
                push_wp(&mut wps, &msg, 32, "biasVector", vec![o], 0)?;
                if let Some(a) = msg.one(10, "activation")? {
                    self.activation_wps(a.value.clone(), "activation.", depth, &mut extra)?;
                }
                params = LayerParams::Recurrent {
                    input_size: i,
                    output_size: o,
                    has_bias: msg.bool(20, "hasBiasVector")?,
                    has_peephole: false,
                };
            }
            410 => {
                msg = self.read(
                    body,
                    "GRULayerParams",
                    &[1, 2, 10, 15, 20, 30, 31, 32, 50, 51, 52, 70, 71, 72, 100],
                )?;
                let (i, o) = msg.rnn_sizes()?;
                for (n, name) in GRU_FIELDS {
                    push_wp(&mut wps, &msg, n, name, rnn_shape(name, i, o), 0)?;
                }
                self.activation_list(&msg, 10, "activations", depth, &mut extra)?;
                params = LayerParams::Recurrent {
                    input_size: i,
                    output_size: o,
                    has_bias: msg.bool(20, "hasBiasVectors")?,
                    has_peephole: false,
                };
            }
            420 | 430 => {
                let bi = p.number == 430;
                let what = if bi {
                    "BiDirectionalLSTMLayerParams"
                } else {
                    "UniDirectionalLSTMLayerParams"
                };
                msg = self.read(body, what, &[1, 2, 10, 11, 15, 20, 100])?;
                let (i, o) = msg.rnn_sizes()?;
                let (has_bias, has_peephole) = match msg.one(15, "params")? {
                    Some(lp) => {
                        deeper(depth, lp.value.start)?;
                        let lp =
                            self.read(lp.value.clone(), "LSTMParams", &[10, 20, 30, 40, 50, 60])?;
                        (
                            lp.bool(20, "hasBiasVectors")?,
                            lp.bool(40, "hasPeepholeVectors")?,
                        )
                    }
                    None => (false, false),
                };
                let entries = if bi {
                    msg.many(20, "weightParams")?
                } else {
                    msg.one(20, "weightParams")?.into_iter().collect()
                };
                for (k, e) in entries.into_iter().enumerate() {
                    let prefix = if bi {
                        format!("weightParams[{k}].")
                    } else {
                        "weightParams.".to_string()
                    };
                    nested.push((
                        prefix,
                        self.read(e.value.clone(), "LSTMWeightParams", &LSTM_NUMBERS)?,
                    ));
                }
                let groups: &[(u32, &str)] = if bi {
                    &[
                        (10, "activationsForwardLSTM"),
                        (11, "activationsBackwardLSTM"),
                    ]
                } else {
                    &[(10, "activations")]
                };
                for &(n, name) in groups {
                    self.activation_list(&msg, n, name, depth, &mut extra)?;
                }
                params = LayerParams::Recurrent {
                    input_size: i,
                    output_size: o,
                    has_bias,
                    has_peephole,
                };
            }
            130 => {
                self.activation_wps(body, "", depth, &mut extra)?;
                params = LayerParams::Other;
            }
            1350 => {
                msg = self.read(body, "LayerNormalizationLayerParams", &[1, 2, 3, 4])?;
                let shape = msg.u64s(self.buf, 1)?;
                let shape = if shape.iter().any(|&d| (d as i64) < 0) {
                    Vec::new()
                } else {
                    product(&shape)
                };
                push_wp(&mut wps, &msg, 3, "gamma", shape.clone(), 0)?;
                push_wp(&mut wps, &msg, 4, "beta", shape, 0)?;
                params = LayerParams::Other;
            }
            1471 => {
                msg = self.read(body, "Convolution3DLayerParams", &[])?;
                let int = |n, name| -> R<u64> {
                    let v = msg.u64(n, name)? as i64 as i32;
                    Ok(u64::try_from(v).unwrap_or(0))
                };
                let (oc, ic, g) = (
                    int(1, "outputChannels")?,
                    int(2, "inputChannels")?,
                    int(10, "nGroups")?,
                );
                let (kd, kh, kw) = (
                    int(20, "kernelDepth")?,
                    int(21, "kernelHeight")?,
                    int(22, "kernelWidth")?,
                );
                let g = g.max(1);
                let shape = if msg.bool(86, "isDeconvolution")? {
                    vec![oc / g, ic, kd, kh, kw]
                } else {
                    vec![oc, ic / g, kd, kh, kw]
                };
                push_wp(&mut wps, &msg, 60, "weights", shape, 0)?;
                push_wp(&mut wps, &msg, 61, "bias", vec![oc], 0)?;
                params = LayerParams::Other;
            }
            500 => {
                msg = self.read(body, "CustomLayerParams", &[10, 20, 30, 40])?;
                for (k, f) in msg.many(20, "weights")?.into_iter().enumerate() {
                    wps.push(Wp::new(f, format!("weights[{k}]"), Vec::new()));
                }
                params = LayerParams::Other;
            }
            605 | 615 => {
                let (what, members): (&'static str, [(u32, &str, NetworkRole); 2]) =
                    if p.number == 605 {
                        (
                            "BranchLayerParams",
                            [
                                (1, "ifBranch", NetworkRole::IfBranch),
                                (2, "elseBranch", NetworkRole::ElseBranch),
                            ],
                        )
                    } else {
                        (
                            "LoopLayerParams",
                            [
                                (3, "conditionNetwork", NetworkRole::LoopCondition),
                                (4, "bodyNetwork", NetworkRole::LoopBody),
                            ],
                        )
                    };
                let known: &[u32] = if p.number == 605 {
                    &[1, 2]
                } else {
                    &[1, 2, 3, 4]
                };
                msg = self.read(body, what, known)?;
                let model = self.idx.networks[self.idx.layers[id].network].model;
                let member = if p.number == 605 { "branch" } else { "loop" };
                for (n, name, role) in members {
                    if let Some(f) = msg.one(n, name)? {
                        let net = self.network(
                            f.span.clone(),
                            f.value.clone(),
                            model,
                            Some(id),
                            role,
                            format!("{}.layers[{}].{member}.{name}", at.0, at.1),
                            "NeuralNetwork",
                            depth,
                        )?;
                        self.idx.layers[id].children.push(net);
                    }
                }
                params = LayerParams::Other;
            }
            _ => params = LayerParams::Other,
        }
        let (i, o) = match &params {
            LayerParams::Recurrent {
                input_size,
                output_size,
                ..
            } => (*input_size, *output_size),
            _ => (0, 0),
        };
        for (prefix, m) in &nested {
            for &(n, name) in LSTM_FIELDS {
                if let Some(f) = m.one(n, name)? {
                    wps.push(Wp::new(f, format!("{prefix}{name}"), rnn_shape(name, i, o)));
                }
            }
        }
        for (name, field) in &extra {
            wps.push(Wp::new(field, name.clone(), Vec::new()));
        }
        self.idx.layers[id].params = params;
        for wp in wps {
            let w = self.weight(id, wp, depth)?;
            self.idx.layers[id].weights.push(w);
        }
        Ok(())
    }

    /// Appends the WeightParams of the repeated ActivationParams field `n` (`name`) of
    /// `msg`, named `name[k].…`.
    fn activation_list(
        &mut self,
        msg: &Msg,
        n: u32,
        name: &str,
        depth: usize,
        out: &mut Vec<(String, Field)>,
    ) -> R<()> {
        for (k, a) in msg.many(n, name)?.into_iter().enumerate() {
            self.activation_wps(a.value.clone(), &format!("{name}[{k}]."), depth, out)?;
        }
        Ok(())
    }

    /// Appends the WeightParams of the ActivationParams in `body` (`PReLU.alpha`,
    /// `parametricSoftplus.alpha` and `.beta`), named with `prefix`.
    fn activation_wps(
        &mut self,
        body: Span,
        prefix: &str,
        depth: usize,
        out: &mut Vec<(String, Field)>,
    ) -> R<()> {
        let depth = deeper(depth, body.start)?;
        let m = self.read(body, "ActivationParams", &ACTIVATION_NUMBERS)?;
        for (number, member, what, params) in ACTIVATION_WPS {
            let Some(f) = m.one(number, member)? else {
                continue;
            };
            deeper(depth, f.value.start)?;
            let known: Vec<u32> = params.iter().map(|(n, _)| *n).collect();
            let inner = self.read(f.value.clone(), what, &known)?;
            for &(n, name) in params {
                if let Some(wp) = inner.one(n, name)? {
                    out.push((format!("{prefix}{member}.{name}"), wp.clone()));
                }
            }
        }
        Ok(())
    }

    fn weight(&mut self, layer: LayerId, wp: Wp<'_>, depth: usize) -> R<usize> {
        let depth = deeper(depth, wp.field.value.start)?;
        let what = "WeightParams";
        let mut floats: u64 = 0;
        let mut float_runs = 0u32;
        let mut float_span: Option<Span> = None;
        let mut half: Option<Span> = None;
        let mut raw: Option<Span> = None;
        let mut int8: Option<Span> = None;
        let mut quant: Option<Span> = None;
        let mut qbits: u64 = 0;
        let mut qkind: u32 = 0;
        let mut updatable = false;
        for f in Fields::new(self.buf, wp.field.value.clone(), what) {
            let f = f?;
            match (f.number, f.wire_type) {
                (1, WireType::Len) => {
                    floats += packed_f32_count(&f.value, "WeightParams.floatValue")? as u64;
                    float_runs += 1;
                    float_span = Some(f.value.clone());
                }
                (1, WireType::Fixed32) => {
                    floats += 1;
                    float_runs += 1;
                    float_span = None;
                }
                (2, WireType::Len) => half = Some(f.value.clone()),
                (30, WireType::Len) => raw = Some(f.value.clone()),
                (31, WireType::Len) => int8 = Some(f.value.clone()),
                (40, WireType::Len) => {
                    quant = Some(f.span.clone());
                    (qbits, qkind) = self.quantization(f.value.clone(), depth)?;
                }
                (50, WireType::Varint) => updatable = f.scalar != 0,
                (1 | 2 | 30 | 31 | 40 | 50, _) => {
                    return Err(WireError::new(
                        f.span.start,
                        format!(
                            "WeightParams field {} of {:?} has wire type {}, which does not fit \
                             its type",
                            f.number,
                            wp.name,
                            f.wire_type.name()
                        ),
                    ))
                }
                _ => self.note_unknown(what, f.span.start),
            }
        }
        if float_runs > 1 {
            float_span = None;
            self.idx.warnings.push(format!(
                "{}: floatValue of {} is stored in {float_runs} pieces (unusual encoding)",
                self.idx.layers[layer].name, wp.name
            ));
        }
        if floats == 0 {
            float_span = None;
        }
        let nonempty = |s: &Option<Span>| s.as_ref().is_some_and(|s| s.end > s.start);
        let (has_h, has_r, has_i) = (nonempty(&half), nonempty(&raw), nonempty(&int8));
        let len = |s: &Option<Span>| s.as_ref().map_or(0, |s| (s.end - s.start) as u64);
        if has_h && len(&half) % 2 != 0 {
            self.idx.warnings.push(format!(
                "{}: float16Value of {} has an odd length ({} bytes)",
                self.idx.layers[layer].name,
                wp.name,
                len(&half)
            ));
        }
        let present = [floats > 0, has_h, has_r, has_i]
            .iter()
            .filter(|&&b| b)
            .count();
        let nbits = u8::try_from(qbits).ok().filter(|b| (1..=8).contains(b));
        let storage = match present {
            0 => Storage::Empty,
            1 if floats > 0 => Storage::Float32,
            1 if has_h => Storage::Float16,
            1 if has_i => Storage::Int8,
            1 => match (qkind, nbits) {
                (101, Some(nbits)) => Storage::Linear { nbits },
                (102, Some(nbits)) => Storage::Lut { nbits },
                _ => Storage::Mixed,
            },
            _ => Storage::Mixed,
        };
        let shape_count = if wp.shape.is_empty() {
            None
        } else {
            wp.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
        };
        let count = if floats > 0 {
            floats
        } else if has_r {
            shape_count.unwrap_or_else(|| match nbits {
                Some(b) => len(&raw) * 8 / u64::from(b),
                None => len(&raw),
            })
        } else if has_i {
            shape_count.unwrap_or(len(&int8))
        } else if has_h {
            len(&half) / 2
        } else {
            0
        };
        let id = self.idx.weights.len();
        self.idx.weights.push(WeightInfo {
            layer,
            field: wp.name,
            span: wp.field.span.clone(),
            body: wp.field.value.clone(),
            storage,
            count,
            shape: wp.shape,
            axis: wp.axis,
            float_values: float_span,
            half_values: half,
            raw_values: raw,
            int8_values: int8,
            quantization: quant,
            is_updatable: updatable,
        });
        Ok(id)
    }

    /// Reads QuantizationParams: (numberOfBits, field number of the QuantizationType member).
    fn quantization(&mut self, body: Span, depth: usize) -> R<(u64, u32)> {
        let depth = deeper(depth, body.start)?;
        let msg = self.read(body, "QuantizationParams", &[1, 101, 102])?;
        let bits = msg.u64(1, "numberOfBits")?;
        let mut kind = 0;
        for f in &msg.fields {
            if f.number == 101 || f.number == 102 {
                expect_len(f, "QuantizationParams.QuantizationType")?;
                deeper(depth, f.value.start)?;
                let (what, known): (&'static str, &[u32]) = if f.number == 101 {
                    ("LinearQuantizationParams", &[1, 2])
                } else {
                    ("LookUpTableQuantizationParams", &[1])
                };
                let inner = self.read(f.value.clone(), what, known)?;
                for g in inner.fields.iter().filter(|g| g.wire_type == WireType::Len) {
                    packed_f32_count(&g.value, what)?;
                }
                kind = f.number;
            }
        }
        Ok((bits, kind))
    }
}

/// Pushes the singular WeightParams field `n` of `msg`, if present.
fn push_wp<'f>(
    wps: &mut Vec<Wp<'f>>,
    msg: &'f Msg,
    n: u32,
    name: &str,
    shape: Vec<u64>,
    axis: usize,
) -> R<()> {
    if let Some(field) = msg.one(n, name)? {
        wps.push(Wp {
            axis,
            ..Wp::new(field, name.to_string(), shape)
        });
    }
    Ok(())
}

/// A layer holding one `[out, in]` weight matrix and an `[out]` bias.
struct Dense {
    /// The layer's field number in NeuralNetworkLayer.
    number: u32,
    /// Its params message and that message's known fields.
    what: &'static str,
    known: &'static [u32],
    /// The fields holding the input and the output size.
    sizes: ((u32, &'static str), (u32, &'static str)),
    /// The weights and bias WeightParams fields.
    weights: u32,
    bias: u32,
    /// The hasBias and (if any) int8DynamicQuantize fields.
    has_bias: (u32, &'static str),
    int8: Option<(u32, &'static str)>,
    /// The header from (input size, output size, hasBias, int8DynamicQuantize).
    params: fn(u64, u64, bool, bool) -> LayerParams,
}

/// The dense layers: innerProduct, batchedMatmul, embedding, embeddingND.
const DENSE: [Dense; 4] = [
    Dense {
        number: 140,
        what: "InnerProductLayerParams",
        known: &[1, 2, 10, 20, 21, 22],
        sizes: ((1, "inputChannels"), (2, "outputChannels")),
        weights: 20,
        bias: 21,
        has_bias: (10, "hasBias"),
        int8: Some((22, "int8DynamicQuantize")),
        params: |input_channels, output_channels, has_bias, int8_dynamic_quantize| {
            LayerParams::InnerProduct {
                input_channels,
                output_channels,
                has_bias,
                int8_dynamic_quantize,
            }
        },
    },
    Dense {
        number: 1045,
        what: "BatchedMatMulLayerParams",
        known: &[1, 2, 5, 6, 7, 8, 9, 10],
        sizes: (
            (5, "weightMatrixFirstDimension"),
            (6, "weightMatrixSecondDimension"),
        ),
        weights: 8,
        bias: 9,
        has_bias: (7, "hasBias"),
        int8: Some((10, "int8DynamicQuantize")),
        params: |first_dim, second_dim, has_bias, int8_dynamic_quantize| {
            LayerParams::BatchedMatmul {
                first_dim,
                second_dim,
                has_bias,
                int8_dynamic_quantize,
            }
        },
    },
    Dense {
        number: 150,
        what: "EmbeddingLayerParams",
        known: &[1, 2, 10, 20, 21],
        sizes: ((1, "inputDim"), (2, "outputChannels")),
        weights: 20,
        bias: 21,
        has_bias: (10, "hasBias"),
        int8: None,
        params: |input_dim, output_channels, has_bias, _| LayerParams::Embedding {
            input_dim,
            output_channels,
            has_bias,
        },
    },
    Dense {
        number: 1040,
        what: "EmbeddingNDLayerParams",
        known: &[1, 2, 3, 20, 21],
        sizes: ((1, "vocabSize"), (2, "embeddingSize")),
        weights: 20,
        bias: 21,
        has_bias: (3, "hasBias"),
        int8: None,
        params: |vocab_size, embedding_size, has_bias, _| LayerParams::EmbeddingNd {
            vocab_size,
            embedding_size,
            has_bias,
        },
    },
];

/// `[∏ dims]` (an empty list gives `[1]`, as coremltools computes it); empty on overflow.
fn product(dims: &[u64]) -> Vec<u64> {
    dims.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .map_or_else(Vec::new, |p| vec![p])
}

/// W [O, I], R [O, O], vectors [O].
fn rnn_shape(name: &str, i: u64, o: u64) -> Vec<u64> {
    if name.ends_with("WeightMatrix") {
        vec![o, i]
    } else if name.ends_with("RecursionMatrix") {
        vec![o, o]
    } else {
        vec![o]
    }
}

const GRU_FIELDS: [(u32, &str); 9] = [
    (30, "updateGateWeightMatrix"),
    (31, "resetGateWeightMatrix"),
    (32, "outputGateWeightMatrix"),
    (50, "updateGateRecursionMatrix"),
    (51, "resetGateRecursionMatrix"),
    (52, "outputGateRecursionMatrix"),
    (70, "updateGateBiasVector"),
    (71, "resetGateBiasVector"),
    (72, "outputGateBiasVector"),
];

/// LSTMWeightParams in coremltools' order: weights, recursions, biases, peepholes.
const LSTM_FIELDS: &[(u32, &str)] = &[
    (1, "inputGateWeightMatrix"),
    (2, "forgetGateWeightMatrix"),
    (3, "blockInputWeightMatrix"),
    (4, "outputGateWeightMatrix"),
    (20, "inputGateRecursionMatrix"),
    (21, "forgetGateRecursionMatrix"),
    (22, "blockInputRecursionMatrix"),
    (23, "outputGateRecursionMatrix"),
    (40, "inputGateBiasVector"),
    (41, "forgetGateBiasVector"),
    (42, "blockInputBiasVector"),
    (43, "outputGateBiasVector"),
    (60, "inputGatePeepholeVector"),
    (61, "forgetGatePeepholeVector"),
    (62, "outputGatePeepholeVector"),
];

const LSTM_NUMBERS: [u32; 15] = [1, 2, 3, 4, 20, 21, 22, 23, 40, 41, 42, 43, 60, 61, 62];

/// An ActivationParams member holding WeightParams: (field number, member name, message,
/// its WeightParams fields).
type ActivationMember = (
    u32,
    &'static str,
    &'static str,
    &'static [(u32, &'static str)],
);

const ACTIVATION_WPS: [ActivationMember; 2] = [
    (25, "PReLU", "ActivationPReLU", &[(1, "alpha")]),
    (
        71,
        "parametricSoftplus",
        "ActivationParametricSoftplus",
        &[(1, "alpha"), (2, "beta")],
    ),
];

const ACTIVATION_NUMBERS: [u32; 13] = [5, 10, 15, 20, 25, 30, 31, 40, 41, 50, 60, 70, 71];

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::super::proto as pb;
    use super::super::proto::neural_network_layer::Layer;
    use super::*;

    fn floats(n: usize, seed: f32) -> pb::WeightParams {
        pb::WeightParams {
            float_value: (0..n).map(|i| seed + i as f32 * 0.25).collect(),
            ..Default::default()
        }
    }

    fn layer(name: &str, l: Layer) -> pb::NeuralNetworkLayer {
        pb::NeuralNetworkLayer {
            name: name.into(),
            input: vec!["x".into()],
            output: vec![format!("{name}_out")],
            layer: Some(l),
            ..Default::default()
        }
    }

    fn prelu(n: usize) -> pb::ActivationParams {
        pb::ActivationParams {
            nonlinearity_type: Some(pb::activation_params::NonlinearityType::PReLu(
                pb::ActivationPReLu {
                    alpha: Some(floats(n, 0.1)),
                },
            )),
        }
    }

    fn lstm_weights(i: usize, o: usize, peep: bool) -> pb::LstmWeightParams {
        let (w, r, v) = (
            || Some(floats(o * i, 1.0)),
            || Some(floats(o * o, 2.0)),
            || Some(floats(o, 3.0)),
        );
        pb::LstmWeightParams {
            input_gate_weight_matrix: w(),
            forget_gate_weight_matrix: w(),
            block_input_weight_matrix: w(),
            output_gate_weight_matrix: w(),
            input_gate_recursion_matrix: r(),
            forget_gate_recursion_matrix: r(),
            block_input_recursion_matrix: r(),
            output_gate_recursion_matrix: r(),
            input_gate_bias_vector: v(),
            forget_gate_bias_vector: v(),
            block_input_bias_vector: v(),
            output_gate_bias_vector: v(),
            input_gate_peephole_vector: if peep { v() } else { None },
            forget_gate_peephole_vector: if peep { v() } else { None },
            output_gate_peephole_vector: if peep { v() } else { None },
        }
    }

    /// One layer of every weight-holding type, plus a branch and a loop with nested networks.
    fn every_layer() -> pb::NeuralNetwork {
        let nested = |name: &str| pb::NeuralNetwork {
            layers: vec![layer(
                name,
                Layer::Bias(pb::BiasLayerParams {
                    shape: vec![2],
                    bias: Some(floats(2, 0.0)),
                }),
            )],
            ..Default::default()
        };
        let layers = vec![
            layer(
                "conv",
                Layer::Convolution(pb::ConvolutionLayerParams {
                    output_channels: 4,
                    kernel_channels: 3,
                    n_groups: 1,
                    kernel_size: vec![2, 2],
                    has_bias: true,
                    weights: Some(floats(48, 0.0)),
                    bias: Some(floats(4, 0.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "deconv",
                Layer::Convolution(pb::ConvolutionLayerParams {
                    output_channels: 4,
                    kernel_channels: 3,
                    n_groups: 2,
                    kernel_size: vec![1, 1],
                    is_deconvolution: true,
                    weights: Some(floats(6, 0.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "ip",
                Layer::InnerProduct(pb::InnerProductLayerParams {
                    input_channels: 3,
                    output_channels: 2,
                    has_bias: true,
                    weights: Some(pb::WeightParams {
                        raw_value: vec![0x12, 0x34, 0x50],
                        quantization: Some(pb::QuantizationParams {
                            number_of_bits: 4,
                            quantization_type: Some(
                                pb::quantization_params::QuantizationType::LinearQuantization(
                                    pb::LinearQuantizationParams {
                                        scale: vec![1.0, 2.0],
                                        bias: vec![0.0, 0.0],
                                    },
                                ),
                            ),
                        }),
                        ..Default::default()
                    }),
                    bias: Some(pb::WeightParams {
                        float16_value: vec![0, 0x3c, 0, 0xc0],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            ),
            layer(
                "bmm",
                Layer::BatchedMatmul(pb::BatchedMatMulLayerParams {
                    weight_matrix_first_dimension: 3,
                    weight_matrix_second_dimension: 5,
                    weights: Some(floats(15, 0.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "emb",
                Layer::Embedding(pb::EmbeddingLayerParams {
                    input_dim: 10,
                    output_channels: 2,
                    weights: Some(floats(20, 0.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "embnd",
                Layer::EmbeddingNd(pb::EmbeddingNdLayerParams {
                    vocab_size: 7,
                    embedding_size: 2,
                    has_bias: true,
                    weights: Some(floats(14, 0.0)),
                    bias: Some(floats(2, 0.0)),
                }),
            ),
            layer(
                "bn",
                Layer::Batchnorm(pb::BatchnormLayerParams {
                    channels: 3,
                    epsilon: 1e-5,
                    gamma: Some(floats(3, 0.0)),
                    beta: Some(floats(3, 0.0)),
                    mean: Some(floats(3, 0.0)),
                    variance: Some(floats(3, 1.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "scale",
                Layer::Scale(pb::ScaleLayerParams {
                    shape_scale: vec![3, 1, 1],
                    scale: Some(floats(3, 1.0)),
                    has_bias: true,
                    shape_bias: vec![3],
                    bias: Some(floats(3, 0.0)),
                }),
            ),
            layer(
                "lc",
                Layer::LoadConstant(pb::LoadConstantLayerParams {
                    shape: vec![1, 2, 3],
                    data: Some(floats(6, 0.0)),
                }),
            ),
            layer(
                "lcnd",
                Layer::LoadConstantNd(pb::LoadConstantNdLayerParams {
                    shape: vec![],
                    data: Some(floats(1, 0.0)),
                }),
            ),
            layer(
                "rnn",
                Layer::SimpleRecurrent(pb::SimpleRecurrentLayerParams {
                    input_vector_size: 3,
                    output_vector_size: 2,
                    activation: Some(prelu(2)),
                    has_bias_vector: true,
                    weight_matrix: Some(floats(6, 0.0)),
                    recursion_matrix: Some(floats(4, 0.0)),
                    bias_vector: Some(floats(2, 0.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "gru",
                Layer::Gru(pb::GruLayerParams {
                    input_vector_size: 3,
                    output_vector_size: 2,
                    activations: vec![pb::ActivationParams::default(), prelu(2)],
                    update_gate_weight_matrix: Some(floats(6, 0.0)),
                    reset_gate_recursion_matrix: Some(floats(4, 0.0)),
                    output_gate_bias_vector: Some(floats(2, 0.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "lstm",
                Layer::UniDirectionalLstm(pb::UniDirectionalLstmLayerParams {
                    input_vector_size: 3,
                    output_vector_size: 2,
                    params: Some(pb::LstmParams {
                        has_bias_vectors: true,
                        ..Default::default()
                    }),
                    weight_params: Some(lstm_weights(3, 2, false)),
                    ..Default::default()
                }),
            ),
            layer(
                "bilstm",
                Layer::BiDirectionalLstm(pb::BiDirectionalLstmLayerParams {
                    input_vector_size: 3,
                    output_vector_size: 2,
                    params: Some(pb::LstmParams {
                        has_peephole_vectors: true,
                        ..Default::default()
                    }),
                    weight_params: vec![lstm_weights(3, 2, true), lstm_weights(3, 2, true)],
                    activations_backward_lstm: vec![prelu(1)],
                    ..Default::default()
                }),
            ),
            layer(
                "act",
                Layer::Activation(pb::ActivationParams {
                    nonlinearity_type: Some(
                        pb::activation_params::NonlinearityType::ParametricSoftplus(
                            pb::ActivationParametricSoftplus {
                                alpha: Some(floats(3, 1.0)),
                                beta: Some(floats(3, 2.0)),
                            },
                        ),
                    ),
                }),
            ),
            layer(
                "ln",
                Layer::LayerNormalization(pb::LayerNormalizationLayerParams {
                    normalized_shape: vec![2, 3],
                    eps: 1e-5,
                    gamma: Some(floats(6, 1.0)),
                    beta: Some(floats(6, 0.0)),
                }),
            ),
            layer(
                "conv3d",
                Layer::Convolution3d(pb::Convolution3DLayerParams {
                    output_channels: 2,
                    input_channels: 4,
                    n_groups: 2,
                    kernel_depth: 1,
                    kernel_height: 1,
                    kernel_width: 3,
                    has_bias: true,
                    weights: Some(floats(12, 0.0)),
                    bias: Some(floats(2, 0.0)),
                    ..Default::default()
                }),
            ),
            layer(
                "custom",
                Layer::Custom(pb::CustomLayerParams {
                    class_name: "Mine".into(),
                    weights: vec![floats(3, 0.0), floats(1, 0.0)],
                    ..Default::default()
                }),
            ),
            layer(
                "branch",
                Layer::Branch(pb::BranchLayerParams {
                    if_branch: Some(nested("in_if")),
                    else_branch: Some(nested("in_else")),
                }),
            ),
            layer(
                "loop",
                Layer::Loop(pb::LoopLayerParams {
                    max_loop_iterations: 3,
                    condition_network: Some(nested("in_cond")),
                    body_network: Some(nested("in_body")),
                    ..Default::default()
                }),
            ),
            layer("relu", Layer::Activation(pb::ActivationParams::default())),
        ];
        pb::NeuralNetwork {
            layers,
            ..Default::default()
        }
    }

    fn model(t: pb::model::Type) -> pb::Model {
        pb::Model {
            specification_version: 4,
            description: Some(pb::ModelDescription {
                input: vec![pb::FeatureDescription {
                    name: "x".into(),
                    r#type: Some(pb::FeatureType {
                        r#type: Some(pb::feature_type::Type::MultiArrayType(
                            pb::ArrayFeatureType {
                                shape: vec![3, -1],
                                data_type: 65568,
                                ..Default::default()
                            },
                        )),
                        is_optional: false,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            is_updatable: false,
            r#type: Some(t),
        }
    }

    fn index(bytes: &[u8]) -> Result<ModelIndex, ModelError> {
        build(Path::new("test.mlmodel"), bytes)
    }

    fn every_layer_bytes() -> Vec<u8> {
        model(pb::model::Type::NeuralNetwork(every_layer())).encode_to_vec()
    }

    #[test]
    fn every_weight_holding_layer_is_indexed_in_coremltools_order() {
        let bytes = every_layer_bytes();
        let idx = index(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(idx.warnings.is_empty(), "{:?}", idx.warnings);
        let root = idx.root();
        assert_eq!(
            (root.model_type.as_str(), root.specification_version),
            ("neuralNetwork", 4)
        );
        assert_eq!(root.inputs[0].kind, "multiArray [3,-1] float32");
        let mut listing = String::new();
        for (l, layer) in idx.layers.iter().enumerate() {
            let net = &idx.networks[layer.network];
            listing.push_str(&format!(
                "{} {} {} [{}]\n",
                net.path,
                layer.name,
                layer.layer_type,
                net.layers.len()
            ));
            for w in idx.layer_weights(l) {
                listing.push_str(&format!(
                    "  {} {:?} {:?} axis {} n {}\n",
                    w.field, w.shape, w.storage, w.axis, w.count
                ));
            }
        }
        expect_test::expect![[r#"
            neuralNetwork conv convolution [21]
              weights [4, 3, 2, 2] Float32 axis 0 n 48
              bias [4] Float32 axis 0 n 4
            neuralNetwork deconv convolution [21]
              weights [3, 2, 1, 1] Float32 axis 1 n 6
            neuralNetwork ip innerProduct [21]
              weights [2, 3] Linear { nbits: 4 } axis 0 n 6
              bias [2] Float16 axis 0 n 2
            neuralNetwork bmm batchedMatmul [21]
              weights [5, 3] Float32 axis 0 n 15
            neuralNetwork emb embedding [21]
              weights [2, 10] Float32 axis 0 n 20
            neuralNetwork embnd embeddingND [21]
              weights [2, 7] Float32 axis 0 n 14
              bias [2] Float32 axis 0 n 2
            neuralNetwork bn batchnorm [21]
              gamma [3] Float32 axis 0 n 3
              beta [3] Float32 axis 0 n 3
              mean [3] Float32 axis 0 n 3
              variance [3] Float32 axis 0 n 3
            neuralNetwork scale scale [21]
              scale [3] Float32 axis 0 n 3
              bias [3] Float32 axis 0 n 3
            neuralNetwork lc loadConstant [21]
              data [6] Float32 axis 0 n 6
            neuralNetwork lcnd loadConstantND [21]
              data [1] Float32 axis 0 n 1
            neuralNetwork rnn simpleRecurrent [21]
              weightMatrix [2, 3] Float32 axis 0 n 6
              recursionMatrix [2, 2] Float32 axis 0 n 4
              biasVector [2] Float32 axis 0 n 2
              activation.PReLU.alpha [] Float32 axis 0 n 2
            neuralNetwork gru gru [21]
              updateGateWeightMatrix [2, 3] Float32 axis 0 n 6
              resetGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              outputGateBiasVector [2] Float32 axis 0 n 2
              activations[1].PReLU.alpha [] Float32 axis 0 n 2
            neuralNetwork lstm uniDirectionalLSTM [21]
              weightParams.inputGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams.forgetGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams.blockInputWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams.outputGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams.inputGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams.forgetGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams.blockInputRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams.outputGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams.inputGateBiasVector [2] Float32 axis 0 n 2
              weightParams.forgetGateBiasVector [2] Float32 axis 0 n 2
              weightParams.blockInputBiasVector [2] Float32 axis 0 n 2
              weightParams.outputGateBiasVector [2] Float32 axis 0 n 2
            neuralNetwork bilstm biDirectionalLSTM [21]
              weightParams[0].inputGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[0].forgetGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[0].blockInputWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[0].outputGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[0].inputGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[0].forgetGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[0].blockInputRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[0].outputGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[0].inputGateBiasVector [2] Float32 axis 0 n 2
              weightParams[0].forgetGateBiasVector [2] Float32 axis 0 n 2
              weightParams[0].blockInputBiasVector [2] Float32 axis 0 n 2
              weightParams[0].outputGateBiasVector [2] Float32 axis 0 n 2
              weightParams[0].inputGatePeepholeVector [2] Float32 axis 0 n 2
              weightParams[0].forgetGatePeepholeVector [2] Float32 axis 0 n 2
              weightParams[0].outputGatePeepholeVector [2] Float32 axis 0 n 2
              weightParams[1].inputGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[1].forgetGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[1].blockInputWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[1].outputGateWeightMatrix [2, 3] Float32 axis 0 n 6
              weightParams[1].inputGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[1].forgetGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[1].blockInputRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[1].outputGateRecursionMatrix [2, 2] Float32 axis 0 n 4
              weightParams[1].inputGateBiasVector [2] Float32 axis 0 n 2
              weightParams[1].forgetGateBiasVector [2] Float32 axis 0 n 2
              weightParams[1].blockInputBiasVector [2] Float32 axis 0 n 2
              weightParams[1].outputGateBiasVector [2] Float32 axis 0 n 2
              weightParams[1].inputGatePeepholeVector [2] Float32 axis 0 n 2
              weightParams[1].forgetGatePeepholeVector [2] Float32 axis 0 n 2
              weightParams[1].outputGatePeepholeVector [2] Float32 axis 0 n 2
              activationsBackwardLSTM[0].PReLU.alpha [] Float32 axis 0 n 1
            neuralNetwork act activation [21]
              parametricSoftplus.alpha [] Float32 axis 0 n 3
              parametricSoftplus.beta [] Float32 axis 0 n 3
            neuralNetwork ln layerNormalization [21]
              gamma [6] Float32 axis 0 n 6
              beta [6] Float32 axis 0 n 6
            neuralNetwork conv3d convolution3d [21]
              weights [2, 2, 1, 1, 3] Float32 axis 0 n 12
              bias [2] Float32 axis 0 n 2
            neuralNetwork custom custom [21]
              weights[0] [] Float32 axis 0 n 3
              weights[1] [] Float32 axis 0 n 1
            neuralNetwork branch branch [21]
            neuralNetwork.layers[18].branch.ifBranch in_if bias [1]
              bias [2] Float32 axis 0 n 2
            neuralNetwork.layers[18].branch.elseBranch in_else bias [1]
              bias [2] Float32 axis 0 n 2
            neuralNetwork loop loop [21]
            neuralNetwork.layers[19].loop.conditionNetwork in_cond bias [1]
              bias [2] Float32 axis 0 n 2
            neuralNetwork.layers[19].loop.bodyNetwork in_body bias [1]
              bias [2] Float32 axis 0 n 2
            neuralNetwork relu activation [21]
        "#]]
        .assert_eq(&listing);
        // Payload spans point at the values, and the helper decodes them.
        let conv = &idx.weights[idx.layers[0].weights[0]];
        let vals = float_values(Path::new("t"), &bytes, conv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(vals.len(), 48);
        assert_eq!(vals[3], 0.75);
        let span = conv.float_values.clone().unwrap_or_default();
        assert_eq!(&bytes[span.start..span.start + 4], &0f32.to_le_bytes());
        // Whole-field spans start with the field's tag: conv weights(90) = 0xd2 0x05.
        assert_eq!(&bytes[conv.span.start..conv.span.start + 2], &[0xd2, 0x05]);
        let ip = &idx.weights[idx.layers[2].weights[0]];
        assert_eq!(
            ip.raw_values.clone().map(|s| bytes[s].to_vec()),
            Some(vec![0x12, 0x34, 0x50])
        );
        let q = ip.quantization.clone().unwrap_or_default();
        assert_eq!(&bytes[q.start..q.start + 2], &[0xc2, 0x02]);
        let half = &idx.weights[idx.layers[2].weights[1]];
        assert_eq!(
            super::super::index::half_values(&bytes, half),
            [half::f16::ONE, half::f16::from_f32(-2.0)]
        );
        // Layer spans: the params span lies inside the layer span.
        for l in &idx.layers {
            assert!(l.span.start < l.params_span.start && l.params_span.end <= l.span.end);
        }
    }

    #[test]
    fn pipelines_of_every_kind_are_walked() {
        let nn = || model(pb::model::Type::NeuralNetwork(every_layer()));
        let pipeline = pb::Pipeline {
            models: vec![nn(), nn()],
            names: vec!["a".into(), "b".into()],
        };
        let nested = pb::Pipeline {
            models: vec![model(pb::model::Type::Pipeline(pipeline.clone())), nn()],
            names: vec![],
        };
        for (t, name, prefix) in [
            (pb::model::Type::Pipeline(nested), "pipeline", "pipeline"),
            (
                pb::model::Type::PipelineClassifier(pb::PipelineClassifier {
                    pipeline: Some(pipeline.clone()),
                }),
                "pipelineClassifier",
                "pipelineClassifier.pipeline",
            ),
            (
                pb::model::Type::PipelineRegressor(pb::PipelineRegressor {
                    pipeline: Some(pipeline),
                }),
                "pipelineRegressor",
                "pipelineRegressor.pipeline",
            ),
        ] {
            let idx = index(&model(t).encode_to_vec()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(idx.root().model_type, name);
            let paths: Vec<&str> = idx.models.iter().map(|m| m.path.as_str()).collect();
            if name == "pipeline" {
                assert_eq!(
                    paths,
                    [
                        "",
                        "pipeline.models[0]",
                        "pipeline.models[0].pipeline.models[0]",
                        "pipeline.models[0].pipeline.models[1]",
                        "pipeline.models[1]"
                    ]
                );
                assert_eq!(idx.models[2].name.as_deref(), Some("a"));
                assert_eq!(
                    idx.networks[0].path,
                    "pipeline.models[0].pipeline.models[0].neuralNetwork"
                );
            } else {
                assert_eq!(paths[1], format!("{prefix}.models[0]"));
                assert_eq!(idx.models[0].children, [1, 2]);
            }
            assert_eq!(
                idx.networks
                    .iter()
                    .filter(|n| n.role == NetworkRole::Main)
                    .count(),
                idx.models.len() - 1 - usize::from(name == "pipeline")
            );
        }
    }

    #[test]
    fn every_model_type_is_named_and_ml_programs_have_no_networks() {
        for &(n, name) in super::super::names::MODEL_TYPES {
            let mut bytes = vec![0x08, 0x07];
            let mut tag = Vec::new();
            super::super::wire::put_varint(&mut tag, u64::from(n) << 3 | 2);
            bytes.extend(tag);
            bytes.push(0);
            let idx = index(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(idx.root().model_type, name);
            assert_eq!(idx.root().type_field, n);
        }
        let ml = pb::Model {
            specification_version: 7,
            r#type: Some(pb::model::Type::MlProgram(pb::mil_spec::Program {})),
            ..Default::default()
        };
        let idx = index(&ml.encode_to_vec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (idx.root().model_type.as_str(), idx.networks.len()),
            ("mlProgram", 0)
        );
        // An unknown type number is named, not refused.
        let idx = index(&[0x08, 0x01, 0xa2, 0x3e, 0x00]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(idx.root().model_type, "unknown(996)");
    }

    #[test]
    fn unknown_fields_and_unusual_encodings_are_accepted() {
        // Layer with an unknown field 7 (varint), and an innerProduct whose weights use the
        // unpacked float encoding split in two runs.
        let mut wp = Vec::new();
        for v in [1.0f32, 2.0] {
            wp.push(0x0d);
            wp.extend(v.to_le_bytes());
        }
        wp.extend([0x0a, 0x04]);
        wp.extend(3.0f32.to_le_bytes());
        let mut ip = vec![0x08, 0x03, 0x10, 0x01, 0xa2, 0x01, wp.len() as u8];
        ip.extend(&wp);
        let mut layer = vec![0x0a, 0x01, b'a', 0x38, 0x05, 0xe2, 0x08, ip.len() as u8];
        ip.iter().for_each(|b| layer.push(*b));
        let net = [vec![0x0a, layer.len() as u8], layer].concat();
        let model = [
            vec![0x08, 0x04, 0xa2, 0x1f, net.len() as u8],
            net,
            vec![0x18, 0x01],
        ]
        .concat();
        let idx = index(&model).unwrap_or_else(|e| panic!("{e}"));
        let w = &idx.weights[0];
        assert_eq!(
            (w.storage, w.count, w.float_values.clone()),
            (Storage::Float32, 3, None)
        );
        assert_eq!(
            float_values(Path::new("t"), &model, w).ok(),
            Some(vec![1.0, 2.0, 3.0])
        );
        assert_eq!(idx.warnings.len(), 3, "{:?}", idx.warnings);
        assert!(idx
            .warnings
            .iter()
            .any(|w| w.contains("unknown field(s) in NeuralNetworkLayer")));
        assert!(idx
            .warnings
            .iter()
            .any(|w| w.contains("unknown field(s) in Model")));
    }

    #[test]
    fn bad_inputs_are_errors_with_offsets() {
        let err = |b: &[u8]| index(b).map(|_| ()).unwrap_err().to_string();
        assert!(err(b"").contains("is empty"));
        assert!(
            err(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
                .contains("Git LFS")
        );
        assert!(err(b"{\"not\": \"a model\"}").contains("looks like text"));
        assert!(err(&[0x18, 0x01]).contains("no Core ML Model field"));
        // floats whose byte length is not a multiple of 4
        let bad = [
            0x08, 0x04, 0xa2, 0x1f, 0x0c, 0x0a, 0x0a, 0xe2, 0x08, 0x07, 0xa2, 0x01, 0x04, 0x0a,
            0x02, 0, 0,
        ];
        assert!(err(&bad).contains("not a multiple of 4"), "{}", err(&bad));
        // a lying length: the network claims more bytes than the file has
        let mut bytes = every_layer_bytes();
        bytes.truncate(bytes.len() - 1);
        let e = err(&bytes);
        assert!(
            e.starts_with(
                "test.mlmodel: byte 32: Model: field 500 claims 2671 bytes but only 2670"
            ),
            "{e}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_clearly() {
        let mut net = pb::NeuralNetwork::default();
        for i in 0..40 {
            net = pb::NeuralNetwork {
                layers: vec![layer(
                    &format!("b{i}"),
                    Layer::Branch(pb::BranchLayerParams {
                        if_branch: Some(net),
                        else_branch: None,
                    }),
                )],
                ..Default::default()
            };
        }
        let e = index(&model(pb::model::Type::NeuralNetwork(net)).encode_to_vec())
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("nested more than 64 deep"), "{e}");
    }

    #[test]
    fn truncations_and_byte_flips_never_panic() {
        let bytes = every_layer_bytes();
        for n in 0..bytes.len() {
            let _ = index(&bytes[..n]);
        }
        let mut copy = bytes.clone();
        for i in 0..bytes.len() {
            for x in [0xff, 0x80, 0x01, 0x07] {
                copy[i] = bytes[i] ^ x;
                if let Ok(idx) = index(&copy) {
                    for w in &idx.weights {
                        let _ = float_values(Path::new("t"), &copy, w);
                        assert!(w.body.end <= copy.len());
                    }
                }
            }
            copy[i] = bytes[i];
        }
    }
}
