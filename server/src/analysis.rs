//! Runs the config analysis for a snapshot: finds the referenced model, loads it through the
//! cache (blocking), and hands text and index to the protocol-free layer.

use coremlq::ide;

use crate::model_cache::Loaded;
use crate::state::Snapshot;

/// What the analysis of one document version found.
pub struct Analysis {
    /// Findings, with quick fixes.
    pub diagnostics: Vec<ide::Diagnostic>,
    /// The referenced model, when the config names one.
    pub model: Option<Loaded>,
}

/// Analyses a snapshot (blocking: may index a model file).
pub fn analyze(snap: &Snapshot) -> Analysis {
    let _ = snap;
    Analysis { diagnostics: Vec::new(), model: None }
}
