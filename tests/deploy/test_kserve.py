"""deploy/kserve/inferenceservice.yaml against KServe's own API types (the OpenAPI models shipped in the
`kserve` wheel, read as source, not imported: its runtime needs are not ours) and its pod parts against
Kubernetes' schemas."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy/kserve/inferenceservice.yaml"
GRPC_MANIFEST = ROOT / "deploy/kserve/inferenceservice-grpc.yaml"
BOTH = pytest.mark.parametrize("manifest", [MANIFEST, GRPC_MANIFEST], ids=["rest", "grpc"])


def kserve_types() -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """class name -> (json key -> python attribute, python attribute -> type string), for every v1beta1 model."""
    spec = importlib.util.find_spec("kserve")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the kserve wheel (its API types) is a test dependency: run bash scripts/setup.sh --tests")
    out = {}
    for path in (Path(spec.submodule_search_locations[0]) / "models").glob("v1beta1_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                found: dict[str, dict[str, str]] = {}
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                        if stmt.targets[0].id in ("openapi_types", "attribute_map"):
                            found[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                if len(found) == 2:
                    json_to_attr = {v: k for k, v in found["attribute_map"].items()}
                    out[node.name] = (json_to_attr, found["openapi_types"])
    return out


def check(value: Any, type_name: str, types: dict, where: str, k8s: list[tuple[str, str, Any]]) -> None:
    """Every key known to KServe's type at its place; Kubernetes types are collected for their own schema."""
    if type_name.startswith("list["):
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            check(item, type_name[5:-1], types, f"{where}[{i}]", k8s)
        return
    if type_name.startswith("V1beta1"):
        assert type_name in types, f"{where}: KServe has no type {type_name}"
        json_to_attr, attr_types = types[type_name]
        assert isinstance(value, dict), f"{where}: expected an object ({type_name})"
        for key, item in value.items():
            assert key in json_to_attr, f"{where}.{key}: not a field of KServe's {type_name}"
            check(item, attr_types[json_to_attr[key]], types, f"{where}.{key}", k8s)
        return
    if type_name.startswith("V1"):
        k8s.append((where, type_name, value))


@BOTH
def test_inference_service_matches_kserve_types(manifest: Path) -> None:
    doc = yaml.safe_load(manifest.read_text())
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    k8s: list[tuple[str, str, Any]] = []
    check(doc["spec"], "V1beta1InferenceServiceSpec", kserve_types(), "spec", k8s)
    assert {t for _, t, _ in k8s} >= {"V1Container", "V1PodSecurityContext", "V1Volume"}


@BOTH
def test_inference_service_pod_parts_are_valid_kubernetes(manifest: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    pred = yaml.safe_load(manifest.read_text())["spec"]["predictor"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vaeserve"},
           "spec": {k: pred[k] for k in ("containers", "volumes", "securityContext", "terminationGracePeriodSeconds")}}
    kubernetes_validate.validate(pod, "1.30.0", strict=True)


def test_inference_service_speaks_v2_on_its_probes() -> None:
    (c,) = yaml.safe_load(MANIFEST.read_text())["spec"]["predictor"]["containers"]
    port = c["ports"][0]["containerPort"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["VAESERVE_PORT"] == str(port) and c["ports"][0]["name"] == "http1"
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": port}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_grpc_inference_service_routes_h2c_to_the_grpc_door() -> None:
    (c,) = yaml.safe_load(GRPC_MANIFEST.read_text())["spec"]["predictor"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    (port,) = c["ports"]
    assert port["name"] == "h2c" and env["VAESERVE_GRPC_PORT"] == str(port["containerPort"])
    assert c["readinessProbe"]["grpc"] == {"port": port["containerPort"], "service": "inference.GRPCInferenceService"}
    assert c["livenessProbe"]["grpc"]["port"] == port["containerPort"]
