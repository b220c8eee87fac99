"""A realistic traffic mix for vaeserve.

  SyntheticDigits (1 in 5 users): bulk /sample as .npy, the synthetic-data services
  Interactive     (4 in 5 users): single-row /decode and /encode, interpolations, reconstructions

Headless against a server or the compose load balancer:
  locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8000
Environment: VAESERVE_MODEL (default: the server's default model), VAESERVE_LATENT_DIM (default 20),
VAESERVE_P99_MS (fail the run when the p99 of any request type is above it; default 2000).
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, events, task

MODEL = os.environ.get("VAESERVE_MODEL") or None
M = int(os.environ.get("VAESERVE_LATENT_DIM", "20"))
P99_MS = float(os.environ.get("VAESERVE_P99_MS", "2000"))


def body(**kw: object) -> dict[str, object]:
    return {"model": MODEL, **kw} if MODEL else kw


def latent() -> list[float]:
    return [random.gauss(0, 1) for _ in range(M)]


def image() -> list[list[float]]:
    return [[random.random() * (4 < r < 24 and 8 < c < 20) for c in range(28)] for r in range(28)]


class SyntheticDigits(HttpUser):
    weight = 1
    wait_time = between(0.5, 1.5)

    @task
    def bulk_sample(self) -> None:
        with self.client.post("/sample", json=body(n=256, seed=random.randrange(2**31)),
                              headers={"accept": "application/x-npy"}, name="/sample n=256 npy",
                              catch_response=True) as r:
            if r.status_code == 200 and not r.content.startswith(b"\x93NUMPY"):
                r.failure("not a .npy body")


class Interactive(HttpUser):
    weight = 4
    wait_time = between(0.05, 0.3)

    @task(6)
    def decode_one(self) -> None:
        self.client.post("/decode", json=body(z=[latent()]), name="/decode 1 row")

    @task(3)
    def encode_one(self) -> None:
        self.client.post("/encode", json=body(images=[{"pixels": image()}]), name="/encode 1 image")

    @task(2)
    def interpolate(self) -> None:
        self.client.post("/interpolate", json=body(start={"z": latent()}, end={"z": latent()}, steps=8,
                                                   method=random.choice(["linear", "slerp"])), name="/interpolate")

    @task(1)
    def reconstruct(self) -> None:
        self.client.post("/reconstruct", json=body(images=[{"pixels": image()}], format="png"), name="/reconstruct")

    @task(1)
    def sample_small(self) -> None:
        self.client.post("/sample", json=body(n=4, seed=random.randrange(1000)), name="/sample n=4")


@events.quitting.add_listener
def _gate(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    """Exit non-zero on any failed request or a p99 above the bound (for CI)."""
    stats = environment.stats
    if stats.total.num_failures > 0:
        environment.process_exit_code = 1
        return
    for entry in stats.entries.values():
        if entry.num_requests and entry.get_response_time_percentile(0.99) > P99_MS:
            environment.process_exit_code = 1
