"""Prometheus metrics. One registry per app, so tests and several apps in one process never clash; with several
workers (service/workers.py) prometheus-client's multiprocess mode adds every worker's series in one scrape."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ  # set by the workers' parent before any import


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        live = {"multiprocess_mode": "livesum"}  # gauges: the sum over live workers (ignored in one process)
        self.requests = Counter("vaeserve_requests_total",
                                "requests by route and status (499: the client went away first)",
                                ["route", "status"], registry=r)
        self.latency = Histogram("vaeserve_request_seconds", "request latency by route", ["route"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.batch_rows = Histogram("vaeserve_batch_rows", "rows per forward pass (chunk sizes)", ["model", "op"],
                                    registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.queue_wait = Histogram("vaeserve_queue_wait_seconds", "from submit to a request's first rows in a "
                                    "chunk, by priority level (1 high, 2 default, 3+ low)", ["model", "priority"],
                                    registry=r, buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.rows_computed = Counter("vaeserve_rows_computed_total", "rows through a forward pass, by model and "
                                     "operation: work that stops when its requests are cancelled",
                                     ["model", "op"], registry=r)
        self.queue_rows = Gauge("vaeserve_queue_rows", "rows waiting, all batchers", registry=r, **live)
        self.queue_bytes = Gauge("vaeserve_queue_bytes", "bytes held by queued requests (inputs and answers to "
                                 "come), all models", registry=r, **live)
        self.estimated_wait = Gauge("vaeserve_estimated_wait_seconds", "seconds of work waiting, by model: what a "
                                    "new bulk request would wait", ["model"], registry=r, multiprocess_mode="max")
        self.inflight = Gauge("vaeserve_inflight_requests", "requests being served", registry=r, **live)
        self.rejections = Counter("vaeserve_rejections_total", "requests refused by reason", ["reason"], registry=r)
        self.load_failures = Counter("vaeserve_model_load_failures_total", "checkpoints refused at load",
                                     registry=r)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}  # labelled children, looked up once

    def observe_request(self, route: str, status: int, elapsed: float) -> None:
        """One answered request, whatever its door: route label, status (HTTP's code for the same outcome; 499 for a
        client that left), latency."""
        pair = self._children.get((route, status))
        if pair is None:
            pair = self._children[(route, status)] = (self.requests.labels(route, str(status)),
                                                      self.latency.labels(route))
        pair[0].inc()
        pair[1].observe(elapsed)

    def exposition(self) -> bytes:
        """The scrape: this process's registry, or with workers every worker's series added up."""
        if not MULTIPROCESS:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)
