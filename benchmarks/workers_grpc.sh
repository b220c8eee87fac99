#!/usr/bin/env bash
# gRPC over several connections against 1 and 2 workers: what a second process does for the gRPC door.
# Two perf_analyzer processes (each its own HTTP/2 connection, c=32 each) against `python -m service --workers W`,
# W = 1, 2, 1, 2; unpinned: the load generators share the 2 cores with the server (say so beside any figure).
# SO_REUSEPORT spreads connections by their address hash, so two connections land on one worker about half the time.
# Usage: bash benchmarks/workers_grpc.sh [SECONDS]   (perf_analyzer: bash benchmarks/get_perf_analyzer.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PA=.cache/perf_analyzer
MS=$(( ${1:-5} * 1000 ))
OUT=$(mktemp -d)
for W in 1 2 1 2; do
  P=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  G=$((P + 1))
  VAESERVE_PORT=$P VAESERVE_GRPC_PORT=$G VAESERVE_TORCH_THREADS=1 VAESERVE_LOG_LEVEL=warning OMP_NUM_THREADS=1 \
    .venv/bin/python -m service --workers "$W" > "$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 120); do curl -sf "localhost:$P/readyz" > /dev/null && break; sleep 0.5; done
  for k in 1 2; do
    LD_LIBRARY_PATH=$PA/lib $PA/perf_analyzer -m vae-flow-z20-decoder -i grpc -u "127.0.0.1:$G" --input-data zero \
      --shape z:20 -b 1 --concurrency-range 32 --measurement-interval "$MS" > "$OUT/pa$k.log" 2>&1 &
  done
  wait $(jobs -p | grep -v "^$SERVER$")
  total=$(grep -h "Throughput" "$OUT/pa1.log" "$OUT/pa2.log" | awk '{s += $2} END {printf "%.0f", s}')
  echo "workers $W: two connections, c=32 each: $total calls/s"
  kill -TERM "$SERVER"; wait "$SERVER" || true
done
rm -rf "$OUT"
