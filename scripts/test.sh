#!/usr/bin/env bash
# The whole test suite: unit, integration and end-to-end tests of the CLI and the server,
# then the real-editor tests (Neovim and VS Code, installed from the package registries).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked
