#!/usr/bin/env bash
# Measure the newest version of every model in models/ into its metrics.json: IWAE k=1000 (k=100 for conditional
# models: their NLL is of x given its label, and k=1000 takes ~40 minutes on 2 CPU cores), the judge for every
# generative one, the Classification Accuracy Score for every conditional one, and the CPU cost. Which models are
# generative or conditional is read from their meta, not their names.
set -euo pipefail
PY=${PYTHON:-python}
conditional=" $($PY -m training list models --conditional | tr '\n' ' ') "
for ckpt in $($PY -m training list models); do
  k=1000; [[ "$conditional" == *" $ckpt "* ]] && k=100
  $PY -m training evaluate "$ckpt" --iwae-k $k
done
for ckpt in $($PY -m training list models --generative); do
  $PY -m training judge "$ckpt"
done
for ckpt in $conditional; do
  # the sweep the shipped figure was chosen from (held-out digits choose), real + synthetic at its choice, 2 cores
  $PY -m training cas "$ckpt" -t 1.1 1.2 1.3 1.4 1.5 1.6 --sharpness 6 12 --real-plus 3 --jobs 2
done
$PY -m training cost
