#!/usr/bin/env python3
"""Writes small models with the structure of files made by older converters.

Real files from the Keras, Caffe, Turi Create, Create ML and tf-coreml converters could not be
found in a redistributable package (see docs/inspect.md, "Tested on real models"), so each
model here rebuilds, message by message with coremltools' protobuf classes (no builder, no
converter), the structure such a converter writes: its specification version, model type,
pipeline layout, input/output types, preprocessing, layer types and weight storage. Values are
small and deterministic.

Run with a Python that has coremltools 9.0 (the fixture environment A):

    tests/fixtures/.venv-fixtures/A/bin/python tests/data/converter-style/generate.py

It rewrites the `.mlmodel` files beside it; then refresh coremltools' view with
scripts/compare-inspect.py (the command is in README.md beside this script).
"""

import os
import struct

from coremltools.proto import TreeEnsemble_pb2
from coremltools.proto import (
    FeatureTypes_pb2 as ft,
    Model_pb2,
    NeuralNetwork_pb2 as nn,
)

HERE = os.path.dirname(os.path.abspath(__file__))
F32 = ft.ArrayFeatureType.FLOAT32
DOUBLE = ft.ArrayFeatureType.DOUBLE


def values(n, seed):
    """n deterministic small floats."""
    return [((i * 7 + seed * 13) % 17 - 8) / 16.0 for i in range(n)]


def halves(n, seed):
    return struct.pack("<%de" % n, *values(n, seed))


def fp32(wp, n, seed):
    wp.floatValue.extend(values(n, seed))


def fp16(wp, n, seed):
    wp.float16Value = halves(n, seed)


def linear(wp, n, nbits, channels, seed):
    """rawValue with linear quantization (coremltools 2.x quantize_weights, linear mode)."""
    wp.rawValue = bytes((i * 37 + seed) % 256 for i in range((n * nbits + 7) // 8))
    q = wp.quantization
    q.numberOfBits = nbits
    q.linearQuantization.scale.extend([0.01 * (c + 1) for c in range(channels)])
    q.linearQuantization.bias.extend([-0.5] * channels)


def lut(wp, n, nbits, seed):
    """rawValue with a lookup table (coremltools 2.x kmeans / linear_lut modes)."""
    wp.rawValue = bytes((i * 53 + seed) % 256 for i in range((n * nbits + 7) // 8))
    q = wp.quantization
    q.numberOfBits = nbits
    q.lookupTableQuantization.floatValue.extend(values(1 << nbits, seed))


def array(feature, shape, dtype=DOUBLE):
    feature.type.multiArrayType.shape.extend(shape)
    feature.type.multiArrayType.dataType = dtype


def add_input(spec, name):
    f = spec.description.input.add()
    f.name = name
    return f


def add_output(spec, name):
    f = spec.description.output.add()
    f.name = name
    return f


def image(feature, w, h, space):
    feature.type.imageType.width = w
    feature.type.imageType.height = h
    feature.type.imageType.colorSpace = space


def class_outputs(spec, label="classLabel", prob="prob", int_labels=False):
    o = add_output(spec, prob)
    if int_labels:
        o.type.dictionaryType.int64KeyType.SetInParent()
    else:
        o.type.dictionaryType.stringKeyType.SetInParent()
    o = add_output(spec, label)
    if int_labels:
        o.type.int64Type.SetInParent()
    else:
        o.type.stringType.SetInParent()
    spec.description.predictedFeatureName = label
    spec.description.predictedProbabilitiesName = prob


def layer(net, name, inputs, outputs):
    l = net.layers.add()
    l.name = name
    l.input.extend(inputs)
    l.output.extend(outputs)
    return l


def conv(net, name, inp, out, oc, kc, k, seed, store=fp32, bias=True, groups=1):
    l = layer(net, name, [inp], [out])
    c = l.convolution
    c.outputChannels, c.kernelChannels, c.nGroups = oc, kc, groups
    c.kernelSize.extend([k, k])
    c.stride.extend([1, 1])
    c.valid.SetInParent()
    store(c.weights, oc * kc * k * k, seed)
    c.hasBias = bias
    if bias:
        store(c.bias, oc, seed + 1)
    return l


def relu(net, name, inp, out):
    layer(net, name, [inp], [out]).activation.ReLU.SetInParent()


def inner_product(net, name, inp, out, o, i, seed, store=fp32, bias=True):
    l = layer(net, name, [inp], [out])
    p = l.innerProduct
    p.inputChannels, p.outputChannels, p.hasBias = i, o, bias
    store(p.weights, o * i, seed)
    if bias:
        store(p.bias, o, seed + 1)
    return l


def labels(msg, names):
    msg.stringClassLabels.vector.extend(names)


def save(spec, name):
    path = os.path.join(HERE, name + ".mlmodel")
    with open(path, "wb") as f:
        # deterministic: map entries (custom layer parameters, metadata) in key order
        f.write(spec.SerializeToString(deterministic=True))


def caffe_classifier():
    """Caffe converter (coremltools 0.x, spec 1): BGR image classifier with mean/scale
    preprocessing, lrn, concat (a fire module), global pooling, string labels."""
    spec = Model_pb2.Model(specificationVersion=1)
    image(add_input(spec, "data"), 32, 32, ft.ImageFeatureType.BGR)
    class_outputs(spec)
    c = spec.neuralNetworkClassifier
    pre = c.preprocessing.add()
    pre.featureName = "data"
    pre.scaler.channelScale = 1.0
    pre.scaler.blueBias, pre.scaler.greenBias, pre.scaler.redBias = -104.0, -117.0, -123.0
    conv(c, "conv1", "data", "conv1", 8, 3, 3, 1)
    relu(c, "relu_conv1", "conv1", "conv1_r")
    p = layer(c, "pool1", ["conv1_r"], ["pool1"]).pooling
    p.type = nn.PoolingLayerParams.MAX
    p.kernelSize.extend([3, 3])
    p.stride.extend([2, 2])
    p.valid.SetInParent()
    lrn = layer(c, "norm1", ["pool1"], ["norm1"]).lrn
    lrn.alpha, lrn.beta, lrn.localSize, lrn.k = 1e-4, 0.75, 5, 1.0
    conv(c, "fire2/squeeze1x1", "norm1", "fire2/squeeze", 4, 8, 1, 3)
    conv(c, "fire2/expand1x1", "fire2/squeeze", "fire2/e1", 6, 4, 1, 5)
    conv(c, "fire2/expand3x3", "fire2/squeeze", "fire2/e3", 6, 4, 3, 7)
    layer(c, "fire2/concat", ["fire2/e1", "fire2/e3"], ["fire2/concat"]).concat.SetInParent()
    conv(c, "conv10", "fire2/concat", "conv10", 5, 12, 1, 9)
    g = layer(c, "pool10", ["conv10"], ["pool10"]).pooling
    g.type = nn.PoolingLayerParams.AVERAGE
    g.globalPooling = True
    g.valid.SetInParent()
    layer(c, "flatten", ["pool10"], ["flat"]).flatten.SetInParent()
    layer(c, "prob", ["flat"], ["prob"]).softmax.SetInParent()
    labels(c, ["n01440764 tench", "n01443537 goldfish", "n01484850 great white shark",
               "n01491361 tiger shark", "n01494475 hammerhead"])
    c.labelProbabilityLayerName = "prob"
    spec.description.metadata.shortDescription = "SqueezeNet-like image classifier (Caffe)"
    spec.description.metadata.license = "BSD"
    save(spec, "caffe_classifier")


def keras_lstm_embedding():
    """Keras converter (coremltools 0.x/2.x, spec 1): embedding + LSTM with the optional
    state inputs and state outputs the Keras converter adds, then dense + softmax."""
    spec = Model_pb2.Model(specificationVersion=1)
    array(add_input(spec, "input1"), [1])
    for name, n in (("lstm_1_h_in", 6), ("lstm_1_c_in", 6)):
        f = add_input(spec, name)
        array(f, [n])
        f.type.isOptional = True
    array(add_output(spec, "output1"), [3])
    for name in ("lstm_1_h_out", "lstm_1_c_out"):
        array(add_output(spec, name), [6])
    net = spec.neuralNetwork
    e = layer(net, "embedding_1", ["input1"], ["embedding_1_output"]).embedding
    e.inputDim, e.outputChannels, e.hasBias = 20, 4, False
    fp32(e.weights, 20 * 4, 11)
    l = layer(net, "lstm_1", ["embedding_1_output", "lstm_1_h_in", "lstm_1_c_in"],
              ["lstm_1_output", "lstm_1_h_out", "lstm_1_c_out"]).uniDirectionalLSTM
    l.inputVectorSize, l.outputVectorSize = 4, 6
    l.activations.add().sigmoid.SetInParent()
    l.activations.add().tanh.SetInParent()
    l.activations.add().tanh.SetInParent()
    l.params.hasBiasVectors = True
    l.params.forgetBias = True
    w = l.weightParams
    for i, gate in enumerate(("inputGate", "forgetGate", "blockInput", "outputGate")):
        fp32(getattr(w, gate + "WeightMatrix"), 6 * 4, 20 + i)
        fp32(getattr(w, gate + "RecursionMatrix"), 6 * 6, 30 + i)
        fp32(getattr(w, gate + "BiasVector"), 6, 40 + i)
    inner_product(net, "dense_1", "lstm_1_output", "dense_1_output", 3, 6, 50)
    layer(net, "activation_1", ["dense_1_output"], ["output1"]).softmax.SetInParent()
    spec.description.metadata.userDefined["keras_version"] = "2.0.6"
    save(spec, "keras_lstm_embedding")


def keras_fp16():
    """Keras model made half precision by coremltools 2.x's
    convert_neural_network_spec_weights_to_fp16 (spec 2): float16Value everywhere,
    batchnorm and a simple RNN."""
    spec = Model_pb2.Model(specificationVersion=2)
    array(add_input(spec, "input1"), [3, 8, 8])
    array(add_output(spec, "output1"), [4])
    net = spec.neuralNetwork
    conv(net, "conv2d_1", "input1", "conv", 4, 3, 3, 60, store=fp16)
    bn = layer(net, "batch_normalization_1", ["conv"], ["bn"]).batchnorm
    bn.channels, bn.epsilon = 4, 1e-3
    for i, f in enumerate(("gamma", "beta", "mean", "variance")):
        fp16(getattr(bn, f), 4, 61 + i)
    layer(net, "flatten_1", ["bn"], ["flat"]).flatten.SetInParent()
    inner_product(net, "dense_1", "flat", "d1", 5, 144, 70, store=fp16)
    r = layer(net, "simple_rnn_1", ["d1"], ["rnn"]).simpleRecurrent
    r.inputVectorSize, r.outputVectorSize, r.hasBiasVector = 5, 4, True
    r.activation.tanh.SetInParent()
    fp16(r.weightMatrix, 4 * 5, 71)
    fp16(r.recursionMatrix, 4 * 4, 72)
    fp16(r.biasVector, 4, 73)
    layer(net, "activation_1", ["rnn"], ["output1"]).softmax.SetInParent()
    save(spec, "keras_fp16")


def custom_layer():
    """A converter's custom layer (Keras/tf-coreml `add_custom`, spec 2): className,
    several weights (one half precision) and a parameters map."""
    spec = Model_pb2.Model(specificationVersion=2)
    array(add_input(spec, "x"), [8])
    array(add_output(spec, "y"), [8])
    net = spec.neuralNetwork
    c = layer(net, "my_custom", ["x"], ["c"]).custom
    c.className = "AAPLGeluLayer"
    fp32(c.weights.add(), 8, 80)
    fp16(c.weights.add(), 8, 81)
    c.weights.add()  # an empty WeightParams, as some converters leave
    c.parameters["alpha"].doubleValue = 0.5
    c.parameters["mode"].stringValue = "tanh"
    c.parameters["axis"].intValue = -1
    c.description = "GELU, computed on the GPU by the app"
    inner_product(net, "after_custom", "c", "y", 8, 8, 82)
    save(spec, "custom_layer")


def tfcoreml_quantized():
    """tf-coreml (spec 3) model quantized by coremltools 2.x: 8-bit linear convolution with
    per-channel scale/bias, 4-bit LUT inner product, and the tf-coreml layer types."""
    spec = Model_pb2.Model(specificationVersion=3)
    array(add_input(spec, "input__0"), [3, 6, 6], F32)
    array(add_output(spec, "softmax__0"), [4], F32)
    net = spec.neuralNetwork
    c = conv(net, "conv/Conv2D", "input__0", "conv", 4, 3, 3, 90,
             store=lambda wp, n, s: linear(wp, n, 8, 4, s))
    layer(net, "conv/Relu6", ["conv"], ["relu"]).unary.type = nn.UnaryFunctionLayerParams.ABS
    rb = layer(net, "resize/ResizeBilinear", ["relu"], ["resized"]).resizeBilinear
    rb.targetSize.extend([6, 6])
    red = layer(net, "mean/Mean", ["resized"], ["mean"]).reduce
    red.mode = nn.ReduceLayerParams.AVG
    red.axis = nn.ReduceLayerParams.HW
    b = layer(net, "add/bias", ["mean"], ["biased"]).bias
    b.shape.extend([4, 1, 1])
    fp32(b.bias, 4, 91)
    layer(net, "flatten", ["biased"], ["flat"]).flatten.SetInParent()
    inner_product(net, "fc/MatMul", "flat", "fc", 4, 4, 92,
                  store=lambda wp, n, s: lut(wp, n, 4, s))
    layer(net, "softmax", ["fc"], ["softmax__0"]).softmax.SetInParent()
    save(spec, "tfcoreml_quantized")


def turi_object_detector():
    """Turi Create object detector (spec 3): pipeline of a YOLO-like network and
    nonMaximumSuppression, flexible output shapes."""
    spec = Model_pb2.Model(specificationVersion=3)
    image(add_input(spec, "image"), 32, 32, ft.ImageFeatureType.RGB)
    for name in ("iouThreshold", "confidenceThreshold"):
        f = add_input(spec, name)
        f.type.doubleType.SetInParent()
        f.type.isOptional = True
    for name, n in (("confidence", 3), ("coordinates", 4)):
        o = add_output(spec, name)
        o.type.multiArrayType.dataType = DOUBLE
        r = o.type.multiArrayType.shapeRange
        r.sizeRanges.add(lowerBound=0, upperBound=-1)
        r.sizeRanges.add(lowerBound=n, upperBound=n)
    m = spec.pipeline.models.add()
    m.specificationVersion = 3
    image(m.description.input.add(name="image"), 32, 32, ft.ImageFeatureType.RGB)
    array(m.description.output.add(name="raw_confidence"), [3], DOUBLE)
    array(m.description.output.add(name="raw_coordinates"), [4], DOUBLE)
    net = m.neuralNetwork
    conv(net, "conv0_fwd", "image", "c0", 8, 3, 3, 100, bias=False)
    bn = layer(net, "batchnorm0_fwd", ["c0"], ["b0"]).batchnorm
    bn.channels, bn.epsilon = 8, 1e-5
    for i, f in enumerate(("gamma", "beta", "mean", "variance")):
        fp32(getattr(bn, f), 8, 101 + i)
    la = layer(net, "leakyrelu0_fwd", ["b0"], ["l0"]).activation.leakyReLU
    la.alpha = 0.1
    conv(net, "conv8_fwd", "l0", "c8", 7, 8, 1, 105)
    layer(net, "slice_conf", ["c8"], ["raw_confidence"]).softmax.SetInParent()
    layer(net, "slice_coords", ["c8"], ["raw_coordinates"]).flatten.SetInParent()
    nms_model = spec.pipeline.models.add()
    nms_model.specificationVersion = 3
    array(nms_model.description.input.add(name="raw_confidence"), [3], DOUBLE)
    array(nms_model.description.input.add(name="raw_coordinates"), [4], DOUBLE)
    array(nms_model.description.output.add(name="confidence"), [3], DOUBLE)
    array(nms_model.description.output.add(name="coordinates"), [4], DOUBLE)
    nms = nms_model.nonMaximumSuppression
    nms.pickTop.perClass = True
    labels(nms, ["cat", "dog", "bird"])
    nms.iouThreshold, nms.confidenceThreshold = 0.45, 0.25
    nms.confidenceInputFeatureName = "raw_confidence"
    nms.coordinatesInputFeatureName = "raw_coordinates"
    nms.confidenceOutputFeatureName = "confidence"
    nms.coordinatesOutputFeatureName = "coordinates"
    spec.description.metadata.userDefined["com.github.apple.turicreate.version"] = "5.4"
    spec.description.metadata.userDefined["type"] = "object_detector"
    save(spec, "turi_object_detector")


def createml_image_classifier():
    """Create ML image classifier (spec 3): pipelineClassifier of visionFeaturePrint (scene)
    and a GLM classifier, image input with a size range."""
    spec = Model_pb2.Model(specificationVersion=3)
    f = add_input(spec, "image")
    image(f, 299, 299, ft.ImageFeatureType.BGR)
    r = f.type.imageType.imageSizeRange
    r.widthRange.lowerBound, r.widthRange.upperBound = 299, -1
    r.heightRange.lowerBound, r.heightRange.upperBound = 299, -1
    class_outputs(spec, label="classLabel", prob="classLabelProbs")
    pc = spec.pipelineClassifier
    fp_model = pc.pipeline.models.add()
    fp_model.specificationVersion = 3
    image(fp_model.description.input.add(name="image"), 299, 299, ft.ImageFeatureType.BGR)
    array(fp_model.description.output.add(name="sceneprint"), [8], DOUBLE)
    fp_model.visionFeaturePrint.scene.version = 1
    glm_model = pc.pipeline.models.add()
    glm_model.specificationVersion = 1
    array(glm_model.description.input.add(name="sceneprint"), [8], DOUBLE)
    glm = glm_model.glmClassifier
    for k in range(2):
        glm.weights.add().value.extend(values(8, 110 + k))
    glm.offset.extend([0.1, -0.1])
    glm.postEvaluationTransform = glm.Logit
    labels(glm, ["apple", "banana"])
    spec.description.metadata.author = "Create ML"
    save(spec, "createml_image_classifier")


def createml_sound_classifier():
    """Create ML sound classifier (spec 4): pipelineClassifier of soundAnalysisPreprocessing,
    a feature network and a neuralNetworkClassifier, with pipeline names."""
    spec = Model_pb2.Model(specificationVersion=4)
    array(add_input(spec, "audioSamples"), [15600], F32)
    class_outputs(spec, label="target", prob="targetProbability")
    pc = spec.pipelineClassifier
    pre = pc.pipeline.models.add()
    pre.specificationVersion = 4
    array(pre.description.input.add(name="audioSamples"), [15600], F32)
    array(pre.description.output.add(name="preprocessed"), [1, 96, 64], F32)
    pre.soundAnalysisPreprocessing.vggish.SetInParent()
    feat = pc.pipeline.models.add()
    feat.specificationVersion = 4
    array(feat.description.input.add(name="preprocessed"), [1, 96, 64], F32)
    array(feat.description.output.add(name="features"), [6], F32)
    conv(feat.neuralNetwork, "vggish/conv1", "preprocessed", "c1", 2, 1, 3, 120)
    layer(feat.neuralNetwork, "vggish/flatten", ["c1"], ["f"]).flatten.SetInParent()
    inner_product(feat.neuralNetwork, "vggish/fc", "f", "features", 6, 4, 121)
    cls = pc.pipeline.models.add()
    cls.specificationVersion = 4
    array(cls.description.input.add(name="features"), [6], F32)
    c = cls.neuralNetworkClassifier
    inner_product(c, "dense", "features", "logits", 2, 6, 122, store=fp16)
    layer(c, "softmax", ["logits"], ["targetProbability"]).softmax.SetInParent()
    labels(c, ["speech", "music"])
    pc.pipeline.names.extend(["preprocess", "vggish", "classifier"])
    save(spec, "createml_sound_classifier")


def createml_text_classifier():
    """Create ML text classifier (spec 3): the textClassifier model type."""
    spec = Model_pb2.Model(specificationVersion=3)
    add_input(spec, "text").type.stringType.SetInParent()
    add_output(spec, "label").type.stringType.SetInParent()
    spec.description.predictedFeatureName = "label"
    t = spec.textClassifier
    t.revision = 1
    t.language = "en"
    t.modelParameterData = bytes(range(64))
    labels(t, ["positive", "negative"])
    save(spec, "createml_text_classifier")


def turi_boosted_trees():
    """Turi Create boosted trees classifier (spec 1): pipelineClassifier of dictVectorizer,
    featureVectorizer and treeEnsembleClassifier, int64 class labels."""
    spec = Model_pb2.Model(specificationVersion=1)
    f = add_input(spec, "features")
    f.type.dictionaryType.stringKeyType.SetInParent()
    f = add_input(spec, "age")
    f.type.doubleType.SetInParent()
    class_outputs(spec, label="label", prob="labelProbability", int_labels=True)
    pc = spec.pipelineClassifier
    dv = pc.pipeline.models.add()
    dv.specificationVersion = 1
    dv.description.input.add(name="features").type.dictionaryType.stringKeyType.SetInParent()
    array(dv.description.output.add(name="features_vec"), [2], DOUBLE)
    dv.dictVectorizer.stringToIndex.vector.extend(["height", "weight"])
    fv = pc.pipeline.models.add()
    fv.specificationVersion = 1
    array(fv.description.output.add(name="__vectorized_features__"), [3], DOUBLE)
    for name, size in (("features_vec", 2), ("age", 1)):
        col = fv.featureVectorizer.inputList.add()
        col.inputColumn, col.inputDimensions = name, size
    te = pc.pipeline.models.add()
    te.specificationVersion = 1
    array(te.description.input.add(name="__vectorized_features__"), [3], DOUBLE)
    tree = te.treeEnsembleClassifier
    tree.treeEnsemble.numPredictionDimensions = 1
    tree.treeEnsemble.basePredictionValue.append(0.0)
    n = tree.treeEnsemble.nodes.add(treeId=0, nodeId=0, branchFeatureIndex=2,
                                     branchFeatureValue=30.0, trueChildNodeId=1,
                                     falseChildNodeId=2)
    n.nodeBehavior = n.BranchOnValueLessThan
    for leaf, v in ((1, -0.4), (2, 0.6)):
        n = tree.treeEnsemble.nodes.add(treeId=0, nodeId=leaf)
        n.nodeBehavior = n.LeafNode
        n.evaluationInfo.add(evaluationIndex=0, evaluationValue=v)
    tree.postEvaluationTransform = TreeEnsemble_pb2.Regression_Logistic
    tree.int64ClassLabels.vector.extend([0, 1])
    save(spec, "turi_boosted_trees")


def turi_recommender():
    """Turi Create item similarity recommender (spec 3)."""
    spec = Model_pb2.Model(specificationVersion=3)
    f = add_input(spec, "interactions")
    f.type.dictionaryType.int64KeyType.SetInParent()
    f = add_input(spec, "k")
    f.type.int64Type.SetInParent()
    o = add_output(spec, "recommendations")
    o.type.sequenceType.int64Type.SetInParent()
    o = add_output(spec, "scores")
    o.type.dictionaryType.int64KeyType.SetInParent()
    r = spec.itemSimilarityRecommender
    for item in range(3):
        it = r.itemItemSimilarities.add(itemId=item)
        it.similarItemList.add(itemId=(item + 1) % 3, similarityScore=0.5)
    r.itemInputFeatureName = "interactions"
    r.numRecommendationsInputFeatureName = "k"
    r.recommendedItemListOutputFeatureName = "recommendations"
    r.recommendedItemScoreOutputFeatureName = "scores"
    save(spec, "turi_recommender")


def createml_knn_updatable():
    """Create ML / coremltools updatable k-NN classifier (spec 4): updatable, training
    inputs, an empty example set."""
    spec = Model_pb2.Model(specificationVersion=4, isUpdatable=True)
    array(add_input(spec, "features"), [4], F32)
    add_output(spec, "label").type.stringType.SetInParent()
    spec.description.predictedFeatureName = "label"
    t = spec.description.trainingInput.add(name="features")
    array(t, [4], F32)
    spec.description.trainingInput.add(name="label").type.stringType.SetInParent()
    knn = spec.kNearestNeighborsClassifier
    knn.nearestNeighborsIndex.numberOfDimensions = 4
    knn.nearestNeighborsIndex.linearIndex.SetInParent()
    knn.nearestNeighborsIndex.squaredEuclideanDistance.SetInParent()
    knn.numberOfNeighbors.defaultValue = 3
    knn.numberOfNeighbors.range.minValue = 1
    knn.numberOfNeighbors.range.maxValue = 10
    knn.uniformWeighting.SetInParent()
    knn.stringClassLabels.SetInParent()
    save(spec, "createml_knn_updatable")


def main():
    caffe_classifier()
    keras_lstm_embedding()
    keras_fp16()
    custom_layer()
    tfcoreml_quantized()
    turi_object_detector()
    createml_image_classifier()
    createml_sound_classifier()
    createml_text_classifier()
    turi_boosted_trees()
    turi_recommender()
    createml_knn_updatable()


if __name__ == "__main__":
    main()
