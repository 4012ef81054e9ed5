//! Names of the `Model.Type` and `NeuralNetworkLayer.layer` oneof members, as coremltools
//! spells them, by field number.

/// The `Model.Type` member name for a field number.
pub fn model_type_name(field: u32) -> Option<&'static str> {
    MODEL_TYPES.iter().find(|(f, _)| *f == field).map(|(_, n)| *n)
}

/// The `NeuralNetworkLayer.layer` member name for a field number.
pub fn layer_type_name(field: u32) -> Option<&'static str> {
    LAYER_TYPES.iter().find(|(f, _)| *f == field).map(|(_, n)| *n)
}

/// Every `Model.Type` member: (field number, name).
pub const MODEL_TYPES: &[(u32, &str)] = &[
    (200, "pipelineClassifier"),
    (201, "pipelineRegressor"),
    (202, "pipeline"),
    (300, "glmRegressor"),
    (301, "supportVectorRegressor"),
    (302, "treeEnsembleRegressor"),
    (303, "neuralNetworkRegressor"),
    (304, "bayesianProbitRegressor"),
    (400, "glmClassifier"),
    (401, "supportVectorClassifier"),
    (402, "treeEnsembleClassifier"),
    (403, "neuralNetworkClassifier"),
    (404, "kNearestNeighborsClassifier"),
    (500, "neuralNetwork"),
    (501, "itemSimilarityRecommender"),
    (502, "mlProgram"),
    (555, "customModel"),
    (556, "linkedModel"),
    (560, "classConfidenceThresholding"),
    (600, "oneHotEncoder"),
    (601, "imputer"),
    (602, "featureVectorizer"),
    (603, "dictVectorizer"),
    (604, "scaler"),
    (606, "categoricalMapping"),
    (607, "normalizer"),
    (609, "arrayFeatureExtractor"),
    (610, "nonMaximumSuppression"),
    (900, "identity"),
    (2000, "textClassifier"),
    (2001, "wordTagger"),
    (2002, "visionFeaturePrint"),
    (2003, "soundAnalysisPreprocessing"),
    (2004, "gazetteer"),
    (2005, "wordEmbedding"),
    (2006, "audioFeaturePrint"),
    (3000, "serializedModel"),
];

/// Every `NeuralNetworkLayer.layer` member: (field number, name). Filled in completely
/// (158 entries) by the index implementation.
pub const LAYER_TYPES: &[(u32, &str)] = &[
    (100, "convolution"),
    (140, "innerProduct"),
    (160, "batchnorm"),
    (245, "scale"),
    (250, "bias"),
];
