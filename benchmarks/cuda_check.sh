#!/usr/bin/env bash
# The CUDA path for real: serve the models on the GPU (fp32, fp16, bf16 + channels_last; CUDA streams and graphs on
# and off), load them, compare with CPU outputs.
# Usage (on a GPU machine): bash benchmarks/cuda_check.sh
set -uo pipefail
PY=${PYTHON:-python3}
export VAESERVE_LOG_LEVEL=warning VAESERVE_QUEUE_BYTES=4294967296
# Each line: precision, channels_last, CUDA streams per batch (1 = off), CUDA graphs. The last two are built
# without a GPU at hand (service/gpu.py) and off by default: this is where they are first measured, on and off.
for conf in "fp32 false 1 false" "fp32 false 2 false" "fp32 false 1 true" "fp32 false 2 true" \
            "fp16 false 2 true" "bf16 true 2 true"; do
  read -r precision cl streams graphs <<< "$conf"
  VAESERVE_DEVICE=cuda VAESERVE_PRECISION=$precision VAESERVE_CHANNELS_LAST=$cl VAESERVE_CUDA_STREAMS=$streams \
    VAESERVE_CUDA_GRAPHS=$graphs VAESERVE_PORT=8077 $PY -m service & pid=$!
  for i in $(seq 60); do curl -sf localhost:8077/readyz >/dev/null && break; sleep 1; done
  curl -s localhost:8077/readyz; echo
  echo "== precision=$precision channels_last=$cl cuda_streams=$streams cuda_graphs=$graphs"
  $PY benchmarks/loadgen.py http://127.0.0.1:8077/decode '{"z": [[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]]}' -c 64 -d 8
  $PY benchmarks/loadgen.py http://127.0.0.1:8077/decode '{"z": [[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]]}' -c 1 -d 5
  $PY - <<'PYEOF'
import sys, time, io, numpy as np, httpx, torch
sys.path.insert(0, "benchmarks")
from loadgen import measure
for model in ("vae-flow-z20", "vae-flow-z10"):
    body = ('{"n": 1024, "seed": 1, "model": "%s"}' % model).encode()
    r = measure("http://127.0.0.1:8077/sample", body, 4, 8, accept="application/x-npy")
    print(f"{model} sample n=1024 npy c=4: {r.rps * 1024:.0f} images/s p99 {r.quantile(.99) * 1e3:.1f} ms {r.statuses}")
for model, labels in (("vae-flow-z20", ""), ("cvae-z20", ', "labels": "balanced"')):  # uint8 made on the device
    body = ('{"n": 4096, "seed": 1, "dtype": "uint8", "model": "%s"%s}' % (model, labels)).encode()
    r = measure("http://127.0.0.1:8077/sample", body, 4, 8, accept="application/x-npy")
    print(f"{model} sample n=4096 uint8 npy c=4: {r.rps * 4096:.0f} digits/s p99 {r.quantile(.99) * 1e3:.1f} ms")
for model, n in (("vae-flow-z10", 64), ("vae-flow-z20", 64), ("vae-flow-z20", 1000)):  # 1000: split over streams
    gpu = np.load(io.BytesIO(httpx.post("http://127.0.0.1:8077/sample", json={"n": n, "seed": 5, "model": model},
                                        headers={"accept": "application/x-npy"}).content))
    m = torch.jit.load(f"models/{model}/1/model.ts").eval()
    z = torch.randn(n, int(model.rsplit("z", 1)[1]), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        cpu = m.decode(m.prior(z) if hasattr(m, "prior") else z, None)[:, 0].numpy()
    print(f"{model} n={n}: max |gpu - cpu| pixel difference:", float(np.abs(gpu - cpu).max()))
m = torch.jit.load("models/deep-ae-z20/1/model.ts").eval()  # a conv decoder: where a GPU's compute shows
md = m.cuda()
zz = torch.randn(1024, 20, device="cuda")
with torch.inference_mode():
    for _ in range(5): md.decode(zz, None)
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(50): md.decode(zz, None)
    torch.cuda.synchronize()
print(f"raw TorchScript decode on GPU, 1024 rows: {50 * 1024 / (time.perf_counter() - t):.0f} images/s")
PYEOF
  kill -TERM $pid; wait $pid; echo "exit code after SIGTERM: $?"
done
# Mixed traffic on the GPU (bulk and interactive clients on one model; default settings).
VAESERVE_DEVICE=cuda $PY benchmarks/mixed.py --seconds 15
