#!/usr/bin/env bash
# Runs every cargo-fuzz target (or those named) for N seconds each, on the stable toolchain.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS defaults to 60; CI uses a short run.
#
# cargo-fuzz wants nightly for its `-Z` sanitizer flags; RUSTC_BOOTSTRAP=1 lets the stable
# compiler accept them, so the targets run with AddressSanitizer and debug assertions.
# FUZZ_SANITIZER=none runs without the sanitizer (faster, catches fewer bugs).
# Inputs that crash are left in fuzz/artifacts/<target>/; minimise one with
# `RUSTC_BOOTSTRAP=1 cargo fuzz tmin <target> <file>` and commit it under
# fuzz/regressions/<target>/ so that `cargo test` replays it (tests/reliability_fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(index config config_analysis quantize server)
fi
sanitizer="${FUZZ_SANITIZER:-address}"

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

./fuzz/seed-corpus.sh

mkdir -p fuzz/artifacts
available="$(cargo fuzz list)"
failed=()
for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$available"; then
        echo "== $target: no such fuzz target (have: $(tr '\n' ' ' <<<"$available"))"
        failed+=("$target")
        continue
    fi
    case "$target" in
        config | server) max_len=65536 ;;
        # Every input is analysed at ~18 offsets and after its quick fixes: keep them short.
        config_analysis) max_len=32768 ;;
        *) max_len=262144 ;;
    esac
    echo "== fuzz $target for ${seconds}s (sanitizer: $sanitizer)"
    log="fuzz/artifacts/last-$target.log"
    # -malloc_limit_mb: any single allocation above it is a crash (a length trusted from the
    # input); -timeout: one input running this long is a hang.
    rc=0
    cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Test unit written|error(\[|:))' "$log" || true
    if [ "$rc" -ne 0 ]; then
        echo "== $target: FAILED (exit $rc), see $log and fuzz/artifacts/$target/"
        tail -n 30 "$log"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzzing failed: ${failed[*]}"
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
