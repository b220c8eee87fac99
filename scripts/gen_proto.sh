#!/usr/bin/env bash
# Compile service/rpc/proto/inference.proto into the descriptor set the gRPC door loads at start
# (service/rpc/proto/inference.binpb). Needs grpcio-tools (a dev dependency); run after editing the .proto.
# tests/rpc/test_grpc_proto.py fails when the committed set and the .proto disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -Iservice/rpc/proto --descriptor_set_out=service/rpc/proto/inference.binpb \
  service/rpc/proto/inference.proto
