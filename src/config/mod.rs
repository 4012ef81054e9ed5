//! The `*.quant.json` config language: tolerant syntax, schema and analysis.
