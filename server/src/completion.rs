//! `textDocument/completion`: candidates from the IDE layer, as exact text edits.

use std::path::Path;

use coremlq::ide::completion::{self, CompletionConfig, ItemKind, PathCandidate};
use tower_lsp_server::ls_types::{
    CompletionItem, CompletionItemKind, CompletionParams, CompletionResponse, CompletionTextEdit,
    Documentation, InsertTextFormat, MarkupContent, MarkupKind, TextEdit,
};

use crate::analysis::with_analysis;
use crate::state::Snapshot;

/// Completion items at the cursor.
pub fn handle(snap: &Snapshot, params: &CompletionParams) -> Option<CompletionResponse> {
    let offset = snap.offset(params.text_document_position.position);
    let cfg = CompletionConfig {
        snippets: snap.session.flags.snippets,
        model_paths: snap.base_dir().map(model_files).unwrap_or_default(),
    };
    let items = with_analysis(snap, false, |an| completion::completions(an, offset, &cfg));
    let items: Vec<CompletionItem> = items
        .into_iter()
        .map(|i| CompletionItem {
            label: i.label,
            kind: Some(match i.kind {
                ItemKind::Key => CompletionItemKind::PROPERTY,
                ItemKind::EnumValue => CompletionItemKind::ENUM_MEMBER,
                ItemKind::Value => CompletionItemKind::VALUE,
                ItemKind::File => CompletionItemKind::FILE,
                ItemKind::Folder => CompletionItemKind::FOLDER,
                ItemKind::Layer => CompletionItemKind::FIELD,
                ItemKind::LayerType => CompletionItemKind::CLASS,
            }),
            detail: i.detail,
            documentation: i.documentation.map(|d| {
                Documentation::MarkupContent(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value: d,
                })
            }),
            sort_text: Some(i.sort_text),
            filter_text: i.filter_text,
            insert_text_format: Some(if i.snippet {
                InsertTextFormat::SNIPPET
            } else {
                InsertTextFormat::PLAIN_TEXT
            }),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                range: snap.range(i.edit.range),
                new_text: i.edit.new_text,
            })),
            commit_characters: (!i.commit_characters.is_empty()).then_some(i.commit_characters),
            ..Default::default()
        })
        .collect();
    Some(CompletionResponse::Array(items))
}

/// `.mlmodel` files and `.mlpackage` folders under `dir` (three levels deep, hidden folders
/// skipped), relative to it, sorted.
pub fn model_files(dir: &Path) -> Vec<PathCandidate> {
    let mut out = Vec::new();
    walk(dir, "", 0, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<PathCandidate>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().take(2000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && name.ends_with(".mlpackage") {
            out.push(PathCandidate {
                path: rel,
                package: true,
            });
        } else if is_dir && depth < 3 {
            walk(&entry.path(), &format!("{rel}/"), depth + 1, out);
        } else if name.ends_with(".mlmodel") {
            out.push(PathCandidate {
                path: rel,
                package: false,
            });
        }
    }
}
