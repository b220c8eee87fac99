#!/usr/bin/env bash
# Evaluate the newest version of every model in models/ (IWAE k=1000) and the binarised run (k=5000).
set -euo pipefail
shopt -s nullglob  # a repository without cvae models is fine
PY=${PYTHON:-python}
EXTRA=("$@")
run() { if [[ "${PARALLEL:-0}" == 1 ]]; then "$@" "${EXTRA[@]}" & else "$@" "${EXTRA[@]}"; fi; }
for dir in models/*/; do
  v=$(ls "$dir" | grep -E '^[0-9]+$' | sort -n | tail -1)
  run $PY -m training evaluate "$dir$v/model.ts" --iwae-k 1000
done
wait
# Samples of every generative model scored by the judge (confidence, class entropy, Fréchet, asked-label hits).
for dir in models/vae*/ models/cvae*/; do
  v=$(ls "$dir" | grep -E '^[0-9]+$' | sort -n | tail -1)
  run $PY -m training judge "$dir$v/model.ts"
done
if [[ -f runs/binarised-repo/vae-z20-binarised/1/model.ts ]]; then
  run $PY -m training evaluate runs/binarised-repo/vae-z20-binarised/1/model.ts --iwae-k 5000 --binarize-seed 0
fi
wait
