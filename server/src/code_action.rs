//! `textDocument/codeAction`: every quick fix the diagnostics carry, and the source action
//! "Quantize model" that runs `coremlq.quantize`.

use std::collections::HashMap;

use coremlq::ide::Severity;
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, CodeActionResponse, Command,
    TextEdit, WorkspaceEdit,
};

use crate::analysis::with_analysis;
use crate::commands::QUANTIZE;
use crate::diagnostics::to_lsp;
use crate::state::Snapshot;

/// The kind of the "Quantize model" source action.
pub const QUANTIZE_KIND: CodeActionKind = CodeActionKind::new("source.quantize");

fn wanted(only: Option<&Vec<CodeActionKind>>, kind: &CodeActionKind) -> bool {
    only.is_none_or(|only| only.iter().any(|k| kind.as_str().starts_with(k.as_str())))
}

/// Code actions for a range.
pub fn handle(snap: &Snapshot, params: &CodeActionParams) -> Option<CodeActionResponse> {
    let range = crate::line_index::byte_range(&snap.rope, params.range, snap.session.encoding);
    let only = params.context.only.as_ref();
    with_analysis(snap, true, |an| {
        let mut out = Vec::new();
        if wanted(only, &CodeActionKind::QUICKFIX) {
            for d in &an.diagnostics {
                let touches = d.range.start <= range.end && range.start <= d.range.end;
                if !touches {
                    continue;
                }
                for (i, fix) in d.fixes.iter().enumerate() {
                    let edits: Vec<TextEdit> = fix
                        .edits
                        .iter()
                        .map(|e| TextEdit {
                            range: snap.range(e.range.clone()),
                            new_text: e.new_text.clone(),
                        })
                        .collect();
                    out.push(CodeActionOrCommand::CodeAction(CodeAction {
                        title: fix.title.clone(),
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: Some(vec![to_lsp(snap, d)]),
                        edit: Some(WorkspaceEdit {
                            changes: Some(HashMap::from([(snap.uri.clone(), edits)])),
                            ..Default::default()
                        }),
                        is_preferred: Some(i == 0),
                        ..Default::default()
                    }));
                }
            }
        }
        let ready =
            an.plan().is_some() && !an.diagnostics.iter().any(|d| d.severity == Severity::Error);
        if ready && wanted(only, &QUANTIZE_KIND) {
            out.push(CodeActionOrCommand::CodeAction(CodeAction {
                title: "Quantize model".into(),
                kind: Some(QUANTIZE_KIND),
                command: Some(Command {
                    title: "Quantize model".into(),
                    command: QUANTIZE.into(),
                    arguments: Some(vec![serde_json::Value::String(
                        snap.uri.as_str().to_owned(),
                    )]),
                }),
                ..Default::default()
            }));
        }
        Some(out)
    })
}
