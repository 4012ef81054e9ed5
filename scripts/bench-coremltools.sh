#!/usr/bin/env sh
# Times coremlq and coremltools 9.0 side by side on the same generated models
# (`cargo bench --bench quantize`, see benches/quantize.rs) and prints the ratios.
#
#   scripts/bench-coremltools.sh [--install] [--write-doc] [VENV_A [VENV_B]]
#   scripts/bench-coremltools.sh --doc-only
#
# VENV_A  environment A of the spec (coremltools 9.0, protobuf 7: fp16, linear,
#         linear_symmetric); default target/bench-coremltools-venv-a
# VENV_B  environment B (coremltools 9.0, protobuf 4.21, scikit-learn: kmeans_lut);
#         default target/bench-coremltools-venv-b. Without it, k-means is compared with
#         reference timings.
# --install    create a missing venv from tests/fixtures/requirements-{a,b}.txt
# --write-doc  also put the results table into docs/performance.md, between the
#              `quantize-bench` markers of its Quantization section
# --doc-only   put the table of the last run (target/bench-quantize.md) there; no run
#
# The benchmark's own variables pass through: COREMLQ_BENCH_RUNS=fp16,linear8 selects
# runs (coremltools needs about 27 minutes for all of them), COREMLQ_BENCH_SCALE=0.1
# shrinks the models, COREMLQ_BENCH_REPEAT=n sets coremlq's runs per row.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
install=0
write_doc=0
run=1
while [ $# -gt 0 ]; do
    case "$1" in
    --install) install=1 ;;
    --write-doc) write_doc=1 ;;
    --doc-only)
        write_doc=1
        run=0
        ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *) break ;;
    esac
    shift
done
venv_a=${1:-"$root/target/bench-coremltools-venv-a"}
venv_b=${2:-"$root/target/bench-coremltools-venv-b"}

# Makes sure $1 holds a venv with the pinned requirements file $2 (created with --install).
ensure_venv() {
    if [ ! -x "$1/bin/python" ]; then
        if [ "$install" -eq 0 ]; then
            return 1
        fi
        python3 -m venv "$1"
        "$1/bin/pip" install --quiet -r "$2"
    fi
    "$1/bin/python" -c "import coremltools; assert coremltools.__version__ == '9.0', coremltools.__version__" 2>/dev/null
}

table="$root/target/bench-quantize.md"
if [ "$run" -eq 1 ]; then
    if ensure_venv "$venv_a" "$root/tests/fixtures/requirements-a.txt"; then
        COREMLQ_BENCH_PYTHON="$venv_a/bin/python"
        export COREMLQ_BENCH_PYTHON
    else
        echo "no coremltools 9.0 in $venv_a (use --install): reference timings instead" >&2
    fi
    if ensure_venv "$venv_b" "$root/tests/fixtures/requirements-b.txt"; then
        COREMLQ_BENCH_KMEANS_PYTHON="$venv_b/bin/python"
        export COREMLQ_BENCH_KMEANS_PYTHON
    else
        echo "no coremltools 9.0 in $venv_b (use --install): k-means against reference timings" >&2
    fi
    cd "$root"
    rm -f "$table"
    COREMLQ_BENCH_MARKDOWN="$table" cargo bench --bench quantize
fi

if [ "$write_doc" -eq 1 ] && [ -f "$table" ]; then
    doc="$root/docs/performance.md"
    begin='<!-- quantize-bench:begin -->'
    end='<!-- quantize-bench:end -->'
    if ! grep -q "$begin" "$doc" || ! grep -q "$end" "$doc"; then
        echo "docs/performance.md has no quantize-bench markers; table left in $table" >&2
        exit 1
    fi
    tmp="$doc.tmp.$$"
    awk -v b="$begin" -v e="$end" -v t="$table" '
        $0 == b { print; while ((getline line < t) > 0) print line; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }
    ' "$doc" >"$tmp"
    mv "$tmp" "$doc"
    echo "results written to docs/performance.md"
fi
