#!/usr/bin/env bash
# The deployment, run for real: build the CPU image, start the compose `cpu` profile (two replicas behind nginx,
# and Prometheus), wait for readiness through the balancer, check the gRPC door through it, run the locust mix through nginx, kill one replica in
# the middle of the load and bring it back, stop the other gracefully (SIGTERM) and bring it back, then check and
# print a summary table. Tears everything down however it ends. Loopback only: ports are published on 127.0.0.1
# and the load goes to 127.0.0.1.
#
# Usage: bash scripts/deploy-check.sh            (from a clean clone, on a machine with Docker; root for dockerd)
# Environment:
#   BASE=auto|public|local   base images: public (python:3.11-slim-bookworm, nginx, prom/prometheus), local (made
#                            here from a debootstrapped Debian bookworm), auto (public when they can be pulled)
#   LOAD_S=60 USERS=20 P99_MS=2000 TORCH_VERSION=2.13.0 KEEP=0 (1: leave the deployment running)
set -uo pipefail
cd "$(dirname "$0")/.."
LOAD_S=${LOAD_S:-60} USERS=${USERS:-20} P99_MS=${P99_MS:-2000} BASE=${BASE:-auto} KEEP=${KEEP:-0}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
PY=${PYTHON:-.venv/bin/python}; [[ -x $PY ]] || PY=python3
LOCUST=${LOCUST:-$(dirname "$PY")/locust}
OUT=${OUT:-$(mktemp -d /tmp/deploy-check.XXXX)}
export COMPOSE_PROJECT_NAME=vaeserve-check
COMPOSE=(docker-compose --profile cpu --profile monitoring)
docker compose version >/dev/null 2>&1 && COMPOSE=(docker compose --profile cpu --profile monitoring)
declare -a ROWS=()
FAILED=0
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); [[ $4 == pass || $4 == info ]] || FAILED=1; }
say() { echo "[deploy-check] $*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

teardown() {
  if [[ $KEEP != 1 ]]; then "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1; fi
  echo
  echo "| check | measured | bound | result |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "logs and locust CSVs: $OUT"
}
trap teardown EXIT

# -- Docker -----------------------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { say "no Docker engine here (apt-get install docker.io)"; exit 2; }
  say "starting dockerd"; (dockerd >"$OUT/dockerd.log" 2>&1 &)
  for _ in $(seq 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
docker info >/dev/null 2>&1 || { say "dockerd did not start: $OUT/dockerd.log"; exit 2; }
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || {
  say "no docker compose (apt-get install docker-compose)"; exit 2; }

# -- base images ------------------------------------------------------------------------------------------
if [[ $BASE == auto ]]; then
  if timeout 30 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then BASE=public; else BASE=local; fi
fi
if [[ $BASE == local ]]; then
  if ! docker image inspect vaeserve-bookworm:base >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
    say "debootstrap bookworm (a local base image: public registries are out of reach)"
    root=$(mktemp -d /tmp/bookworm.XXXX)
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$OUT/debootstrap.log" 2>&1 \
      || { say "debootstrap failed: $OUT/debootstrap.log"; exit 2; }
    tar -C "$root" -c . | docker import - vaeserve-bookworm:base >/dev/null
    rm -rf "$root"
  fi
  for img in python:vaeserve-python:3.11-bookworm nginx:vaeserve-nginx:bookworm prometheus:vaeserve-prometheus:bookworm; do
    docker build -q -f "deploy/base/${img%%:*}.Dockerfile" -t "${img#*:}" deploy/base >>"$OUT/base-build.log" 2>&1 \
      || { say "base image ${img#*:} failed: $OUT/base-build.log"; exit 2; }
  done
  export PYTHON_IMAGE=vaeserve-python:3.11-bookworm LB_IMAGE=vaeserve-nginx:bookworm
  export PROMETHEUS_IMAGE=vaeserve-prometheus:bookworm
else
  export PYTHON_IMAGE=python:3.11-slim-bookworm
fi

# -- the CPU image ----------------------------------------------------------------------------------------
mkdir -p .wheels
if ! ls .wheels/torch-"$TORCH_VERSION"*.whl >/dev/null 2>&1; then  # PyTorch's index may be out of reach
  $PY -m pip download -q --no-deps "torch==$TORCH_VERSION" -d .wheels >/dev/null 2>&1 || true
fi
ca=${PIP_CERT:-${SSL_CERT_FILE:-}}
[[ -n $ca && -f $ca ]] && cp "$ca" .wheels/ca.crt  # a TLS-intercepting proxy's CA, for pip inside the build
t0=$(now)
docker build --build-arg VARIANT=cpu --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" -t vaeserve:cpu . >"$OUT/build.log" 2>&1 \
  || { say "image build failed: $OUT/build.log"; row "image build" "failed" "≤ 600 s" FAIL; exit 1; }
build_s=$(secs "$t0" "$(now)")
row "CPU image build (base images ready)" "${build_s} s" "≤ 600 s" "$(awk -v s="$build_s" 'BEGIN{print (s<=600)?"pass":"FAIL"}')"
size=$(docker image inspect vaeserve:cpu --format '{{.Size}}')
size_gb=$(awk -v b="$size" 'BEGIN { printf "%.2f", b / 1e9 }')
row "CPU image size" "${size_gb} GB" "≤ 1.5 GB" "$(awk -v g="$size_gb" 'BEGIN{print (g<=1.5)?"pass":"FAIL"}')"

# -- up, ready through the balancer ----------------------------------------------------------------------------
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1
t0=$(now)
"${COMPOSE[@]}" up -d --no-build vaeserve-cpu lb prometheus >"$OUT/up.log" 2>&1 || { say "up failed"; exit 1; }
replicas=($(docker ps -q --filter "label=com.docker.compose.service=vaeserve-cpu" \
                      --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"))
ready_s=""
for _ in $(seq 240); do
  healthy=0
  for c in "${replicas[@]}"; do
    [[ $(docker inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null) == healthy ]] && healthy=$((healthy + 1))
  done
  if [[ $healthy -eq ${#replicas[@]} ]] && curl -sf -m 2 http://127.0.0.1:8000/readyz >/dev/null; then
    ready_s=$(secs "$t0" "$(now)"); break
  fi
  sleep 0.5
done
row "replicas" "${#replicas[@]}" "2" "$([[ ${#replicas[@]} -eq 2 ]] && echo pass || echo FAIL)"
row "both replicas healthy, ready through nginx" "${ready_s:-never} s after up" "≤ 60 s" \
    "$(awk -v s="${ready_s:-999}" 'BEGIN{print (s<=60)?"pass":"FAIL"}')"
[[ -n $ready_s ]] || exit 1

# -- image hygiene ------------------------------------------------------------------------------------------
c=${replicas[0]}
user=$(docker inspect -f '{{.Config.User}}' "$c"); ro=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$c")
row "runs as" "$user" "non-root" "$([[ -n $user && $user != 0* && $user != root* ]] && echo pass || echo FAIL)"
row "read-only root filesystem" "$ro" "true" "$([[ $ro == true ]] && echo pass || echo FAIL)"
json=$(docker logs "$c" 2>&1 | head -3 | $PY -c 'import json,sys; [json.loads(l) for l in sys.stdin if l.strip()]; print("yes")' 2>/dev/null)
row "logs are JSON lines" "${json:-no}" "yes" "$([[ $json == yes ]] && echo pass || echo FAIL)"

# -- the gRPC door through the container and nginx (h2c, grpc_pass) ------------------------------------------------
grpc_out=$($PY - <<'PYEOF' 2>&1
import grpc, numpy as np, tritonclient.grpc as g
from grpc_health.v1 import health_pb2, health_pb2_grpc
c = g.InferenceServerClient("127.0.0.1:8001")
assert c.is_server_ready() and c.is_model_ready("vae-flow-z20-decoder")
z = g.InferInput("z", [8, 20], "FP32"); z.set_data_from_numpy(np.zeros((8, 20), np.float32))
x = c.infer("vae-flow-z20-decoder", [z]).as_numpy("x")
assert x.shape == (8, 1, 28, 28)
with grpc.insecure_channel("127.0.0.1:8001") as ch:
    assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == 1
try:
    c.unload_model("vae-flow-z2"); raise SystemExit("unload was allowed")
except g.InferenceServerException as e:
    assert "PERMISSION_DENIED" in e.status(), e
print("ok")
PYEOF
)
row "gRPC through nginx: ready, infer 8 rows, health SERVING, unload refused" "${grpc_out:0:80}" "ok" \
    "$([[ $grpc_out == ok ]] && echo pass || echo FAIL)"

# -- load through nginx, a replica killed and restarted, the other stopped gracefully and restarted ----------------
say "locust: $USERS users for ${LOAD_S}s through nginx on 127.0.0.1"
load_t0=$(date +%s)
VAESERVE_P99_MS=$P99_MS "$LOCUST" -f loadtest/locustfile.py --headless -u "$USERS" -r 10 -t "${LOAD_S}s" \
  --host http://127.0.0.1:8000 --csv "$OUT/locust" --only-summary >"$OUT/locust.log" 2>&1 &
locust_pid=$!
sleep $((LOAD_S / 4))
say "docker kill ${replicas[0]}"; docker kill "${replicas[0]}" >/dev/null
sleep 5
t0=$(now); docker start "${replicas[0]}" >/dev/null
for _ in $(seq 120); do
  [[ $(docker inspect -f '{{.State.Health.Status}}' "${replicas[0]}") == healthy ]] && break; sleep 0.5
done
restart_s=$(secs "$t0" "$(now)")
sleep $((LOAD_S / 6))
say "docker stop ${replicas[1]} (SIGTERM: drain)"; t0=$(now); docker stop -t 30 "${replicas[1]}" >/dev/null
stop_s=$(secs "$t0" "$(now)"); code=$(docker inspect -f '{{.State.ExitCode}}' "${replicas[1]}")
docker start "${replicas[1]}" >/dev/null
wait "$locust_pid"; locust_rc=$?
stats="$OUT/locust_stats.csv"
read -r reqs fails p99 < <($PY - "$stats" <<'PYEOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
agg = next(r for r in rows if r["Name"] == "Aggregated")
print(agg["Request Count"], agg["Failure Count"], agg["99%"])
PYEOF
)
row "requests through nginx (kill + restart, stop + restart under load)" "${reqs:-?}" "> 0" \
    "$([[ ${reqs:-0} -gt 0 ]] && echo pass || echo FAIL)"
row "failed client requests" "${fails:-?}" "0" "$([[ ${fails:-1} -eq 0 ]] && echo pass || echo FAIL)"
row "p99 of all requests" "${p99:-?} ms" "≤ $P99_MS ms" "$(awk -v p="${p99:-99999}" -v b="$P99_MS" 'BEGIN{print (p<=b)?"pass":"FAIL"}')"
row "killed replica healthy again" "${restart_s} s after start" "≤ 60 s" \
    "$(awk -v s="$restart_s" 'BEGIN{print (s<=60)?"pass":"FAIL"}')"
row "docker stop (SIGTERM) of a replica under load" "exit $code after ${stop_s} s" "exit 0, < 30 s" \
    "$([[ $code -eq 0 ]] && echo pass || echo FAIL)"
row "locust exit code" "$locust_rc" "0" "$([[ $locust_rc -eq 0 ]] && echo pass || echo FAIL)"

# -- Prometheus scraped both replicas ---------------------------------------------------------------------------
up=0
for _ in $(seq 30); do
  up=$(curl -sg 'http://127.0.0.1:9090/api/v1/query?query=sum(up{job="vaeserve"})' \
       | $PY -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')
  [[ $up -ge 2 ]] && break; sleep 1
done
# Each replica served requests during the run, whatever the timing: a replica restarted near the end has served
# nothing since (its new counters may not exist yet), so count, over the whole run's window, the replicas whose
# inference counters rose at any time in it (health checks do not count) (increase() spans the restart's counter reset).
window=$(( $(date +%s) - load_t0 + 20 ))
sleep 6  # one more scrape after the load (the scrape interval is 5 s)
served=$(curl -sG 'http://127.0.0.1:9090/api/v1/query' --data-urlencode \
         "query=count(sum by (instance) (increase(vaeserve_requests_total{route=~\"/sample|/decode|/encode|/reconstruct|/interpolate\"}[${window}s])) > 0)" \
         | $PY -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')
row "Prometheus targets up" "$up" "2" "$([[ $up -ge 2 ]] && echo pass || echo FAIL)"
row "replicas that served requests during the run (Prometheus, whole window)" "$served" "2" \
    "$([[ $served -ge 2 ]] && echo pass || echo FAIL)"
exit $FAILED
