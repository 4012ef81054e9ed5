//! Synthetic models for the server's tests and benchmark, built with the prost types.

use coremlq::model::proto::{
    self, model, neural_network_layer, InnerProductLayerParams, NeuralNetwork, NeuralNetworkLayer,
    WeightParams,
};
use prost::Message;

/// A chain of `layers` innerProduct layers `fc0…` of `n`×`n` float32 weights plus a bias,
/// with deterministic pseudo-random values.
pub fn dense_model(layers: usize, n: u64) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32 / u32::MAX as f32) - 0.5
    };
    let net = NeuralNetwork {
        layers: (0..layers)
            .map(|i| NeuralNetworkLayer {
                name: format!("fc{i}"),
                input: vec![if i == 0 {
                    "input".into()
                } else {
                    format!("x{i}")
                }],
                output: vec![format!("x{}", i + 1)],
                layer: Some(neural_network_layer::Layer::InnerProduct(
                    InnerProductLayerParams {
                        input_channels: n,
                        output_channels: n,
                        has_bias: true,
                        weights: Some(WeightParams {
                            float_value: (0..n * n).map(|_| next()).collect(),
                            ..Default::default()
                        }),
                        bias: Some(WeightParams {
                            float_value: (0..n).map(|_| next()).collect(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    proto::Model {
        specification_version: 4,
        r#type: Some(model::Type::NeuralNetwork(net)),
        ..Default::default()
    }
    .encode_to_vec()
}
