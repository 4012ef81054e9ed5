#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ (gitignored) with the seed inputs of every fuzz target: the
# fixture models, the hostile-input files, the example and test configs, and every committed
# regression input. Safe to run again: files are named by content, existing ones are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=fuzz/corpus
mkdir -p "$corpus"/{index,quantize,config,config_analysis,server}

# Copies file $2 into corpus $1 under its content hash (so repeated runs add nothing).
seed() {
    local dir="$corpus/$1" file="$2"
    [ -f "$file" ] || return 0
    # Seeds stay small so that each execution is fast.
    [ "$(stat -c %s "$file")" -le 262144 ] || return 0
    cp "$file" "$dir/seed-$(sha1sum "$file" | cut -c1-16)"
}

shopt -s nullglob globstar
for f in tests/fixtures/models/*.mlmodel tests/fixtures/golden/*.mlmodel tests/data/hostile/**/*.mlmodel; do
    seed index "$f"
    seed quantize "$f"
done
for f in examples/*.quant.json tests/**/*.quant.json docs/**/*.quant.json schemas/**/*.json tests/data/hostile/**/*.json; do
    seed config "$f"
    seed config_analysis "$f"
done
for f in tests/data/server/*.jsonl fuzz/seeds/server/*; do
    seed server "$f"
done
for target in index quantize config config_analysis server; do
    for f in fuzz/regressions/"$target"/*; do
        seed "$target" "$f"
    done
done
# Whatever broke the parser is worth analysing too.
for f in fuzz/regressions/config/*; do
    seed config_analysis "$f"
done
for target in index quantize config config_analysis server; do
    echo "corpus/$target: $(find "$corpus/$target" -type f | wc -l) files"
done
