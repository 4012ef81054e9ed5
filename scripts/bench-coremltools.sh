#!/usr/bin/env sh
# Creates (when asked) a Python virtualenv with the pinned coremltools 9.0 environment and
# runs the quantization benchmark against it.
#
#   scripts/bench-coremltools.sh [VENV]     # default VENV: target/bench-coremltools-venv
#
# Environment A of the spec (float32 dialect) is used for fp16/linear/symmetric; k-means
# needs environment B (numpy 1.26.4, protobuf 4.21.12, scikit-learn 1.5.1) and is timed with
# COREMLQ_BENCH_KMEANS_PYTHON pointing at such a venv when set.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$root/target/bench-coremltools-venv"}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$root/tests/fixtures/requirements-a.txt"
fi
"$venv/bin/python" -c "import coremltools; assert coremltools.__version__ == '9.0', coremltools.__version__"
cd "$root"
COREMLQ_BENCH_PYTHON="$venv/bin/python" cargo bench --bench quantize
