//! "Did you mean …?": candidates by edit distance.

/// Levenshtein distance between two strings, in chars (case differences cost 1).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `max` candidates close enough to `word` to be a typo of it, closest first.
///
/// A candidate qualifies when its distance (ignoring case) is at most a third of the longer
/// length (at least 1), or when one contains the other ignoring case.
pub fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<&'a str> {
    let lower = word.to_lowercase();
    let mut scored: Vec<(usize, &'a str)> = Vec::new();
    for c in candidates {
        if c == word {
            continue;
        }
        let cl = c.to_lowercase();
        let d = edit_distance(&lower, &cl);
        let limit = (lower.chars().count().max(cl.chars().count()) / 3).max(1);
        let contains = !lower.is_empty() && (cl.contains(&lower) || lower.contains(&cl));
        if d <= limit || contains {
            scored.push((d, c));
        }
    }
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(max).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("nbit", "nbits"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kmeans", "kmeans_lut"), 4);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn closest_candidates() {
        let keys = ["model", "output", "nbits", "quantization_mode", "selector"];
        assert_eq!(closest("nbit", keys, 3), vec!["nbits"]);
        assert_eq!(closest("mode", keys, 3), vec!["model", "quantization_mode"]);
        assert!(closest("zzzzzz", keys, 3).is_empty());
        assert_eq!(
            closest("Conv1", ["conv1", "conv2", "fc"], 3),
            vec!["conv1", "conv2"]
        );
    }
}
