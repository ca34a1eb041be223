"""The deployment files validate: Kubernetes manifests against the Kubernetes
API schemas (`kubernetes-validate`, strict: no unknown fields), the Compose
file against the Compose specification (`check-jsonschema`'s vendored
compose-spec schema), and both against what the gateway reads (every
`SWITCHBOARD_*` variable is a real setting; probes hit the real endpoints).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KUBERNETES = kubernetes_validate.latest_version()


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _resources() -> dict[str, dict[str, Any]]:
    return {
        d["kind"]: d
        for path in MANIFESTS
        for d in _documents(path)
        if d.get("kind") != "Kustomization"
    }


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_is_valid_kubernetes(path: Path) -> None:
    for document in _documents(path):
        if document["kind"] == "Kustomization":
            continue
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    broken = _resources()["Deployment"]
    broken = {**broken, "spec": {**broken["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    unknown = {**_resources()["Service"], "spek": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES, strict=True)


def test_the_kustomization_lists_every_resource_but_the_secret() -> None:
    (kustomization,) = _documents(DEPLOY / "kubernetes" / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in MANIFESTS} - {"kustomization.yaml"}
    # The Secret is created by hand with real values (see secret.yaml).
    assert listed == on_disk - {"secret.yaml"}


def test_kubernetes_shape() -> None:
    resources = _resources()
    assert set(resources) >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "ConfigMap",
        "Job",
    }
    container = resources["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert resources["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "db",
        "upgrade",
    ]
    selector = resources["Deployment"]["spec"]["selector"]["matchLabels"]
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    assert resources["Service"]["spec"]["selector"] == selector
    assert resources["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2


def _setting_names(variables: dict[str, Any]) -> set[str]:
    return {
        name.removeprefix("SWITCHBOARD_").lower()
        for name in variables
        if name.startswith("SWITCHBOARD_")
    }


def test_every_variable_is_a_setting_the_gateway_reads() -> None:
    resources = _resources()
    names = _setting_names(resources["ConfigMap"]["data"]) | _setting_names(
        resources["Secret"]["stringData"]
    )
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    names |= _setting_names(compose["x-gateway"]["environment"])
    assert names
    assert names <= set(Settings.model_fields), names - set(Settings.model_fields)


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_two_replicas_a_balancer_and_a_persistent_redis() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "gateway-1", "gateway-2", "lb", "otel-collector"} <= (
        set(services)
    )
    assert "--appendonly" in services["redis"]["command"]
    upstream = re.search(
        r"upstream switchboard \{(.*?)\}", (DEPLOY / "nginx.conf").read_text(), re.S
    )
    assert upstream is not None
    assert "gateway-1:8080" in upstream.group(1)
    assert "gateway-2:8080" in upstream.group(1)
    assert "ip_hash" not in upstream.group(1)  # no affinity: any replica serves any request
