"""Reference servers for benchmarks/serve.py, on the same checkpoint as ours.

  bare          POST /bare: 20 floats in, {"ok": true} out (the HTTP ceiling of FastAPI here)
  naive-json    POST /decode: one forward per request, stdlib json, as a beginner writes it
  naive-orjson  the same with orjson
Usage: python benchmarks/baselines.py MODE PORT CHECKPOINT
"""

from __future__ import annotations

import json
import sys

import orjson
import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import Response


class Body(BaseModel):
    z: list[list[float]]


class Bare(BaseModel):
    z: list[float]


def make(mode: str, checkpoint: str) -> FastAPI:
    app = FastAPI()
    torch.set_num_threads(1)
    module = torch.jit.load(checkpoint).eval()

    if mode == "bare":
        @app.post("/bare")
        async def bare(body: Bare) -> Response:
            return Response(b'{"ok":true}', media_type="application/json")

        return app

    dumps = (lambda o: json.dumps(o).encode()) if mode == "naive-json" else orjson.dumps

    @app.post("/decode")
    def decode(body: Body) -> Response:  # sync: FastAPI runs it in its threadpool, one forward per request
        with torch.inference_mode():
            img = module.decode(torch.tensor(body.z), None)[:, 0]
        return Response(dumps({"images": img.tolist()}), media_type="application/json")

    return app


if __name__ == "__main__":
    mode, port, ckpt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    uvicorn.run(make(mode, ckpt), host="127.0.0.1", port=port, log_level="warning", access_log=False)
