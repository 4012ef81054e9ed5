//! Text rendering of diagnostics: byte offset → line/column, the rustc-style report of
//! `coremlq check`, and a compact one-line form for snapshots.

use std::fmt::Write as _;

use super::diagnostic::Diagnostic;
use super::syntax::TextRange;

/// Byte offsets of line starts, for offset → (line, column) conversion.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 0-based line and 0-based byte column of `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        (line, offset.saturating_sub(start))
    }

    /// 1-based line and 1-based column in characters, as editors and rustc show them.
    pub fn human(&self, text: &str, offset: usize) -> (usize, usize) {
        let (line, _) = self.line_col(offset);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = text
            .get(start..offset.min(text.len()))
            .map_or(0, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// The text of 0-based line `line`, without its line break.
    pub fn line_text<'t>(&self, text: &'t str, line: usize) -> &'t str {
        let start = self.starts.get(line).copied().unwrap_or(text.len());
        let end = self
            .starts
            .get(line + 1)
            .map_or(text.len(), |e| e.saturating_sub(1));
        text.get(start..end.max(start))
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// `line:col-line:col` of a range (1-based, columns in characters).
pub fn span(text: &str, index: &LineIndex, range: TextRange) -> String {
    let (l1, c1) = index.human(text, range.start);
    let (l2, c2) = index.human(text, range.end);
    format!("{l1}:{c1}-{l2}:{c2}")
}

/// One line per diagnostic (plus its fixes and help): the form of the test snapshots.
pub fn compact(text: &str, diagnostics: &[Diagnostic]) -> String {
    let index = LineIndex::new(text);
    let mut out = String::new();
    for d in diagnostics {
        let _ = writeln!(
            out,
            "{} {} {} {}",
            d.severity.as_str(),
            d.code,
            span(text, &index, d.range),
            d.message
        );
        for f in &d.fixes {
            let edits: Vec<String> = f.edits.iter().map(|e| format!("{:?}", e.text)).collect();
            let _ = writeln!(out, "    fix: {} -> {}", f.title, edits.join(", "));
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "    help: {h}");
        }
        for r in &d.related {
            let _ = writeln!(
                out,
                "    related {}: {}",
                span(text, &index, r.range),
                r.message
            );
        }
    }
    out
}

/// The rustc-style report of one diagnostic: header, location, source line with carets,
/// help and fixes.
pub fn rustc_style(file: &str, text: &str, index: &LineIndex, d: &Diagnostic) -> String {
    let mut out = String::new();
    let (line, col) = index.human(text, d.range.start);
    let _ = writeln!(out, "{}[{}]: {}", d.severity.as_str(), d.code, d.message);
    let width = line.to_string().len();
    let pad = " ".repeat(width);
    let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
    let _ = writeln!(out, "{pad} |");
    let (l0, _) = index.line_col(d.range.start);
    let source = index.line_text(text, l0);
    let _ = writeln!(out, "{line} | {source}");
    let lead: String = source
        .chars()
        .take(col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let (end_line, end_col) = index.human(text, d.range.end);
    let carets = if end_line == line {
        (end_col.saturating_sub(col)).max(1)
    } else {
        source.chars().count().saturating_sub(col - 1).max(1)
    };
    let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(carets));
    if let Some(h) = &d.help {
        let _ = writeln!(out, "{pad} = help: {h}");
    }
    for f in &d.fixes {
        let _ = writeln!(out, "{pad} = fix: {}", f.title);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_columns() {
        let text = "ab\né\nxyz";
        let idx = LineIndex::new(text);
        assert_eq!(idx.human(text, 0), (1, 1));
        assert_eq!(idx.human(text, 3), (2, 1));
        assert_eq!(idx.human(text, 5), (2, 2));
        assert_eq!(idx.human(text, 9), (3, 4));
        assert_eq!(idx.line_text(text, 1), "é");
        assert_eq!(idx.line_text(text, 2), "xyz");
    }
}
