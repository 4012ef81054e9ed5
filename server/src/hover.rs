//! `textDocument/hover`: the IDE layer's text, as markdown or plaintext as the client asks.
//! On a layer, quality figures come from the background cache ([`crate::quality`]); the
//! ones not measured yet show as "computing…" and are queued.

use coremlq::config::syntax;
use coremlq::ide::hover::{self, QualityFigure};
use tower_lsp_server::ls_types::{Hover, HoverContents, HoverParams, MarkupContent, MarkupKind};

use crate::analysis::{load_model, with_analysis};
use crate::quality::{Job, QualityCache};
use crate::state::Snapshot;

/// Hover text at the cursor.
pub fn handle(snap: &Snapshot, params: &HoverParams) -> Option<Hover> {
    let offset = snap.offset(params.text_document_position_params.position);
    let loaded = load_model(snap, &syntax::parse(&snap.text));
    let mut jobs = Vec::new();
    let result = with_analysis(snap, false, |an| {
        let model = loaded
            .clone()
            .filter(|l| matches!((l.as_ref(), an.model), (Ok(a), Some(b)) if std::ptr::eq(a, b)));
        let planned = an.planned.clone();
        hover::hover_with(an, offset, &mut |tensor| {
            let (loaded, planned) = (model.clone()?, planned.clone()?);
            let key = QualityCache::key(&loaded, &planned, tensor)?;
            let elements = an.model?.index.weights.get(tensor)?.count;
            if let Some(figure) = snap.models.quality.figure(&key, elements) {
                return Some(figure);
            }
            jobs.push(Job {
                key,
                loaded,
                planned,
                tensor,
            });
            Some(QualityFigure::Computing)
        })
    });
    snap.models.quality.start(jobs);
    let result = result?;
    let (kind, value) = if snap.session.flags.markdown_hover {
        (MarkupKind::Markdown, result.markdown)
    } else {
        (MarkupKind::PlainText, hover::plain(&result.markdown))
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind, value }),
        range: Some(snap.range(result.range)),
    })
}
