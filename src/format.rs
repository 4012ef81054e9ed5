//! Number formatting shared by the command line and the editor features.

/// A count with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `after` as a percentage of `before` (`25.0` for a quarter); `100.0` when `before` is 0.
pub fn percent_of(after: u64, before: u64) -> f64 {
    if before > 0 {
        100.0 * after as f64 / before as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::{percent_of, thousands};

    #[test]
    fn percent_of_is_relative_to_before() {
        assert_eq!(percent_of(25, 100), 25.0);
        assert_eq!(percent_of(300, 200), 150.0);
        assert_eq!(percent_of(5, 0), 100.0);
    }

    #[test]
    fn thousands_groups_by_three() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1000, "1,000"),
            (36864, "36,864"),
            (1234567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ];
        for (n, want) in cases {
            assert_eq!(thousands(n), want, "{n}");
        }
    }
}
