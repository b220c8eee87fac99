#!/usr/bin/env bash
# Evaluate the newest version of every model in models/ (IWAE k=1000) and the binarised run (k=5000);
# judge every generative one. Which models are generative is read from their meta, not their names.
set -euo pipefail
PY=${PYTHON:-python}
EXTRA=("$@")
run() { if [[ "${PARALLEL:-0}" == 1 ]]; then "$@" "${EXTRA[@]}" & else "$@" "${EXTRA[@]}"; fi; }
for ckpt in $($PY -m training list models); do
  run $PY -m training evaluate "$ckpt" --iwae-k 1000
done
wait
# Samples of every generative model scored by the judge (confidence, class entropy, Fréchet, asked-label hits).
for ckpt in $($PY -m training list models --generative); do
  run $PY -m training judge "$ckpt"
done
if [[ -f runs/binarised-repo/vae-z20-binarised/1/model.ts ]]; then
  run $PY -m training evaluate runs/binarised-repo/vae-z20-binarised/1/model.ts --iwae-k 5000 --binarize-seed 0
fi
wait
