//! Parser and locator tests: snapshots of trees for broken documents, and a deterministic
//! random test that no input panics and every range is sane.

use expect_test::{expect, Expect};

use super::*;

fn check(text: &str, expect: Expect) {
    let p = parse(text);
    expect.assert_eq(&p.debug_tree(text));
}

#[test]
fn valid_config_with_comments_and_trailing_commas() {
    check(
        r#"{
  // line comment
  "model": "a.mlmodel", /* block */
  "nbits": 8,
  "lut": [1.5, -2e3, ],
  "selector": {"skip_layers": ["x\u00e9\n"],},
}"#,
        expect![[r#"
            object 0..142
              member 22..42 key "model" Quoted 22..29
                string 31..42 "a.mlmodel"
              member 58..68 key "nbits" Quoted 58..65
                number 67..68 8 int=Some(8)
              member 72..92 key "lut" Quoted 72..77
                array 79..92
                  number 80..83 1.5 int=None
                  number 85..89 -2000 int=None
              member 96..139 key "selector" Quoted 96..106
                object 108..139
                  member 109..137 key "skip_layers" Quoted 109..122
                    array 124..137
                      string 125..136 "xé\n"
        "#]],
    );
}

#[test]
fn half_typed_key() {
    check(
        r#"{"nbits": 8, "selector": {"skip_"#,
        expect![[r#"
            object 0..32 (unclosed)
              member 1..11 key "nbits" Quoted 1..8
                number 10..11 8 int=Some(8)
              member 13..32 key "selector" Quoted 13..23
                object 25..32 (unclosed)
                  member 26..32 key "skip_" Unterminated 26..32 (no colon)
                    missing 32..32
            error MissingQuote 32..32: string is not closed: missing `"`
            error MissingColon 32..32: expected `:` after the key
            error MissingValue 32..32: expected a value for `skip_`
            error MissingBrace 32..32: object is not closed: missing `}`
            error MissingBrace 32..32: object is not closed: missing `}`
        "#]],
    );
}

#[test]
fn missing_pieces() {
    check(
        r#"{"a" 1, "b": , "c": [1 2,, 3, "d": tru, e: "x}"#,
        expect![[r#"
            object 0..46 (unclosed)
              member 1..6 key "a" Quoted 1..4 (no colon)
                number 5..6 1 int=Some(1)
              member 8..12 key "b" Quoted 8..11
                missing 12..12
              member 15..46 key "c" Quoted 15..18
                array 20..46 (unclosed)
                  number 21..22 1 int=Some(1)
                  number 23..24 2 int=Some(2)
                  missing 25..25
                  number 27..28 3 int=Some(3)
                  string 30..33 "d"
                  error 35..38 "tru"
                  error 40..41 "e"
                  string 43..46 "x}" (unterminated)
            error MissingColon 4..4: expected `:` after the key
            error MissingValue 12..12: expected a value for `b`
            error MissingComma 22..22: expected `,` between elements
            error MissingValue 25..25: expected a value
            error MissingComma 33..33: expected `,` or `]`
            error UnexpectedToken 33..34: unexpected `:` in an array
            error InvalidLiteral 35..38: `tru` is not a JSON value: strings need double quotes
            error InvalidLiteral 40..41: `e` is not a JSON value: strings need double quotes
            error MissingComma 41..41: expected `,` or `]`
            error UnexpectedToken 41..42: unexpected `:` in an array
            error MissingQuote 46..46: string is not closed: missing `"`
            error MissingBracket 46..46: array is not closed: missing `]`
            error MissingBrace 46..46: object is not closed: missing `}`
        "#]],
    );
}

#[test]
fn stray_closers_and_trailing_text() {
    check(
        "{\"a\": [1}, ] } 5",
        expect![[r#"
        object 0..9
          member 1..8 key "a" Quoted 1..4
            array 6..8 (unclosed)
              number 7..8 1 int=Some(1)
        error MissingBracket 8..8: array is not closed: missing `]`
        error UnexpectedToken 9..16: unexpected text after the end of the document
    "#]],
    );
}

#[test]
fn empty_and_garbage() {
    check(
        "",
        expect![[r#"
        missing 0..0
        error MissingValue 0..0: empty document: expected `{`
    "#]],
    );
    check(
        "  // only a comment\n /* open",
        expect![[r#"
        missing 28..28
        error UnterminatedComment 21..23: block comment is not closed: missing `*/`
        error MissingValue 28..28: empty document: expected `{`
    "#]],
    );
    check(
        "@",
        expect![[r#"
        error 0..1 "@"
        error UnexpectedCharacter 0..1: unexpected character `@`
    "#]],
    );
}

#[test]
fn numbers_and_escapes() {
    check(
        r#"[01, 1., -, 1e, 0x1, 1e999, 99999999999999999999, "\q\u12", "\ud83d\ude00", "\ud800"]"#,
        expect![[r#"
            array 0..85
              error 1..3 "01"
              error 5..7 "1."
              error 9..10 "-"
              error 12..14 "1e"
              error 16..19 "0x1"
              number 21..26 inf int=None
              number 28..48 100000000000000000000 int=None
              string 50..58 "\\q\\u12"
              string 60..74 "😀"
              string 76..84 "�"
            error InvalidNumber 1..3: invalid number `01`
            error InvalidNumber 5..7: invalid number `1.`
            error InvalidNumber 9..10: invalid number `-`
            error InvalidNumber 12..14: invalid number `1e`
            error InvalidNumber 16..19: invalid number `0x1`
            error InvalidString 51..53: invalid escape `\q`
            error InvalidString 53..55: `\u` must be followed by four hex digits
            error InvalidString 77..83: unpaired surrogate in a `\u` escape
        "#]],
    );
}

#[test]
fn duplicates_are_kept() {
    let text = r#"{"a": 1, "b": 2, "a": 3}"#;
    let p = parse(text);
    let root = p.root_object().expect("object");
    let d = root.duplicates();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1.key.range, TextRange::new(17, 20));
    assert_eq!(
        root.value("a").and_then(Value::as_number).map(|n| n.value),
        Some(1.0)
    );
}

fn loc(text_with_cursor: &str) -> String {
    let offset = text_with_cursor.find("$0").expect("cursor");
    let text = text_with_cursor.replace("$0", "");
    let l = parse(&text).locate(&text, offset);
    let path: Vec<String> = l.path.iter().map(ToString::to_string).collect();
    format!("[{}] {:?}", path.join(", "), l.kind)
}

#[test]
fn locate_positions() {
    let cases = [
        r#"{"nbits": 8, "selector": {"skip_$0"#,
        r#"{"nbits": 8, "selector": {"skip_$0"}}"#,
        r#"{"nbits": 8, $0}"#,
        r#"{"nbits": $0}"#,
        r#"{"nbits":$0"#,
        r#"{"nbits": $0 8}"#,
        r#"{"nbits": 1$0}"#,
        r#"{"quantization_mode": "lin$0ear"}"#,
        r#"{"quantization_mode": lin$0}"#,
        r#"{"selector": {"skip_layers": ["a", "b", "c$0"]}}"#,
        r#"{"selector": {"skip_layers": ["a", $0]}}"#,
        r#"{"selector": {"skip_layers": [$0"#,
        r#"{"layers": {"conv1": {$0}}}"#,
        r#"{$0"#,
        r#"$0{}"#,
        r#"{}$0"#,
        r#"$0"#,
        r#"{nbi$0}"#,
        r#"{"a": "\u00e9$0"}"#,
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|c| format!("{c}\n    {}", loc(c)))
        .collect();
    expect![[r#"
        {"nbits": 8, "selector": {"skip_$0
            ["selector"] Key { name: "skip_", prefix: "skip_", range: TextRange { start: 26, end: 32 } }
        {"nbits": 8, "selector": {"skip_$0"}}
            ["selector"] Key { name: "skip_", prefix: "skip_", range: TextRange { start: 26, end: 33 } }
        {"nbits": 8, $0}
            [] ObjectBody
        {"nbits": $0}
            ["nbits"] AfterColon { replace: TextRange { start: 10, end: 10 } }
        {"nbits":$0
            ["nbits"] AfterColon { replace: TextRange { start: 9, end: 9 } }
        {"nbits": $0 8}
            ["nbits"] AfterColon { replace: TextRange { start: 11, end: 12 } }
        {"nbits": 1$0}
            ["nbits"] Value { prefix: "1", range: TextRange { start: 10, end: 11 } }
        {"quantization_mode": "lin$0ear"}
            ["quantization_mode"] StringValue { prefix: "lin", offset: 3, range: TextRange { start: 22, end: 30 } }
        {"quantization_mode": lin$0}
            ["quantization_mode"] Value { prefix: "lin", range: TextRange { start: 22, end: 25 } }
        {"selector": {"skip_layers": ["a", "b", "c$0"]}}
            ["selector", "skip_layers", 2] StringValue { prefix: "c", offset: 1, range: TextRange { start: 40, end: 43 } }
        {"selector": {"skip_layers": ["a", $0]}}
            ["selector", "skip_layers", 1] ArrayElement { index: 1 }
        {"selector": {"skip_layers": [$0
            ["selector", "skip_layers", 0] ArrayElement { index: 0 }
        {"layers": {"conv1": {$0}}}
            ["layers", "conv1"] ObjectBody
        {$0
            [] ObjectBody
        $0{}
            [] Outside
        {}$0
            [] Outside
        $0
            [] AfterColon { replace: TextRange { start: 0, end: 0 } }
        {nbi$0}
            [] Key { name: "nbi", prefix: "nbi", range: TextRange { start: 1, end: 4 } }
        {"a": "\u00e9$0"}
            ["a"] StringValue { prefix: "é", offset: 6, range: TextRange { start: 6, end: 14 } }"#]].assert_eq(&out.join("\n"));
}

/// A small deterministic generator (xorshift), so the random test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn assert_sane(text: &str) {
    let p = parse(text);
    let check_range = |r: TextRange| {
        assert!(
            r.start <= r.end && r.end <= text.len(),
            "range {r} out of text {text:?}"
        );
        assert!(
            text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
            "{r} in {text:?}"
        );
    };
    fn walk(v: &Value, f: &dyn Fn(TextRange)) {
        f(v.range);
        match &v.kind {
            ValueKind::Object(o) => {
                for m in &o.members {
                    f(m.range);
                    f(m.key.range);
                    if let Some(c) = m.colon {
                        f(c);
                    }
                    walk(&m.value, f);
                }
            }
            ValueKind::Array(a) => a.elements.iter().for_each(|e| walk(e, f)),
            ValueKind::String(s) => f(s.inner),
            _ => {}
        }
    }
    walk(&p.root, &check_range);
    for e in &p.errors {
        check_range(e.range);
    }
    // Locating never panics either.
    for offset in [0, text.len() / 2, text.len()] {
        let _ = p.locate(text, offset);
    }
}

const SEEDS: &[&str] = &[
    r#"{"$schema": "x", "model": "M.mlmodel", "output": "o.mlmodel", "nbits": 8,
  "quantization_mode": "linear_lut", "lut": [1, 2.5, -3e2, 4],
  // comment
  "selector": {"skip_layer_types": ["bias", "depthwiseConv"], "minimum_conv_kernel_channels": 4,
    "minimum_conv_weight_count": 4096, "skip_layers": ["dense_2", "a*"]},
  /* block */ "layers": {"conv1": {"nbits": 6, "quantization_mode": "kmeans_lut"},
    "classifier/*": {"nbits": 16}, "x": {"skip": true, "n": null}}, "fuse_layers": false,}"#,
    "{\"é\": \"\\u00e9 \\\" ü\", \"k\": [[[{}]]]}",
];

const ALPHABET: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "/",
    "*",
    "//",
    "/*",
    "*/",
    "\n",
    " ",
    "1",
    "-",
    "e",
    ".",
    "true",
    "nul",
    "é",
    "\u{1F600}",
    "\\u",
    "d83d",
    "x",
    "\0",
    "0",
];

#[test]
fn truncations_never_panic() {
    for seed in SEEDS {
        for (i, _) in seed.char_indices() {
            assert_sane(&seed[..i]);
            assert_sane(&seed[i..]);
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let seed = SEEDS[round % SEEDS.len()];
        let mut text = seed.to_string();
        for _ in 0..1 + rng.below(6) {
            let mut at = rng.below(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => text.insert_str(at, ALPHABET[rng.below(ALPHABET.len())]),
                1 => {
                    let mut end = (at + 1 + rng.below(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => text.insert_str(at, &ALPHABET[rng.below(ALPHABET.len())].repeat(3)),
            }
        }
        assert_sane(&text);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let pick = rng.below(4);
                if pick == 0 {
                    rng.below(256) as u8
                } else {
                    b"{}[]:,\"\\/* \n1e-.tfn"[rng.below(19)]
                }
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        assert_sane(&text);
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let text = "[".repeat(100_000);
    let p = parse(&text);
    assert!(!p.errors.is_empty());
    let text = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert_sane(&text);
}
