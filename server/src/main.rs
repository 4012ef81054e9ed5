//! `coremlq-lsp`: the language server for `*.quant.json` files, over stdio.

fn main() {}
