#!/usr/bin/env bash
# Train and export every shipped model into models/, then evaluate each on the full test set.
# The README's model table comes from this script. PARALLEL=1 trains all at once (one GPU holds them).
set -euo pipefail
PY=${PYTHON:-python}
EXTRA=("$@")  # e.g. --data-cache DIR, --device cuda
run() { if [[ "${PARALLEL:-0}" == 1 ]]; then "$@" "${EXTRA[@]}" & else "$@" "${EXTRA[@]}"; fi; }
common=(--batch-size 256 --lr 1.5e-3)
run $PY -m training train --kind linear-ae --latent-dim 20 --epochs 200 --batch-size 256 --lr 3e-3
run $PY -m training train --kind deep-ae --latent-dim 20 --epochs 30 "${common[@]}"
# The k-sparse autoencoder: a ReLU code of 128 with only the 16 largest entries kept (87.5 % exact zeros), MLP body.
run $PY -m training train --kind sparse-ae --arch mlp --width 256 --depth 2 --latent-dim 128 --topk 16 \
    --name sparse-ae-z128 --epochs 60 --batch-size 256 --lr 2e-3
run $PY -m training train --kind denoising-ae --latent-dim 20 --noise gaussian --noise-level 0.3 --epochs 30 "${common[@]}"
run $PY -m training train --kind vae --latent-dim 2 --epochs 50 "${common[@]}"
# vae-z5 and vae-z10 (conv-64) are no longer shipped: vae-flow-z20 beats both on NLL and cost, and the model
# repository keeps to 25 MB. `for m in 5 10; do ... --latent-dim $m --name vae-z$m ...; done` trains them again.
# The quality option: conv-96 (NLL 87.3, ~1,000 images/s on 2 CPU cores; trained on a GPU).
run $PY -m training train --kind vae --latent-dim 20 --width 96 --epochs 50 "${common[@]}"
# The default: an MLP (784-512-512) VAE whose flow prior is learned with it; trains on 2 CPU cores in < 20 min.
run $PY -m training train --kind vae --arch mlp --width 512 --depth 2 --latent-dim 20 --learned-prior flow \
    --epochs 140 --batch-size 256 --lr 2e-3 --name vae-flow-z20
# The pytorch/examples VAE, reproduced as the baseline row (784-400-20, 10 epochs, batch 128, Adam 1e-3).
run $PY -m training train --kind vae --arch mlp --width 400 --latent-dim 20 --epochs 10 --name vae-mlp-z20
# The conditional VAE: a narrow conv body (fits the repository's 25 MB and trains on a 2-core CPU in ~20 min).
run $PY -m training train --kind cvae --width 32 --latent-dim 10 --epochs 30 --name cvae-z10
# The judge of generated digits (judge/mnist-cnn.ts; not a VAE, never served).
run $PY -m training train-judge
# Literature protocol (not shipped): dynamic binarisation, binarised test set, IWAE k=5000.
run $PY -m training train --kind vae --latent-dim 20 --width 96 --binarize --name vae-z20-binarised --epochs 50 \
    "${common[@]}" --repository runs/binarised-repo
wait
