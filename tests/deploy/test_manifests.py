"""The deployment files validate: Kubernetes manifests against the Kubernetes
API schemas (`kubernetes-validate`, strict: no unknown fields), the Compose
file against the Compose specification (`check-jsonschema`'s vendored
compose-spec schema), and both against what the gateway reads (every
`SWITCHBOARD_*` variable is a real setting; probes hit the real endpoints).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.settings import Settings
from policies.policy_file import parse_policy
from tests.support.waiting import wait_answering

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# policy.yaml beside them is the policy the kustomization mounts, not a manifest.
MANIFESTS = sorted(p for p in (DEPLOY / "kubernetes").glob("*.yaml") if p.name != "policy.yaml")
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


POLICY_PATH = "/etc/switchboard/policy.yaml"


def test_the_policy_is_mounted_where_the_gateway_reads_it() -> None:
    """Issue 32.12: kustomize and Compose mount the one policy file at the
    path SWITCHBOARD_POLICY_FILE names, and that file is a valid policy."""
    parse_policy((DEPLOY / "kubernetes" / "policy.yaml").read_text())
    (kustomization,) = _documents(DEPLOY / "kubernetes" / "kustomization.yaml")
    [generated] = [g for g in kustomization["configMapGenerator"] if "policy.yaml" in g["files"]]
    resources = _resources()
    assert resources["ConfigMap"]["data"]["SWITCHBOARD_POLICY_FILE"] == POLICY_PATH
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    [volume] = [
        v for v in pod["volumes"] if v.get("configMap", {}).get("name") == generated["name"]
    ]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert str(Path(mount["mountPath"]) / "policy.yaml") == POLICY_PATH and mount["readOnly"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in {"x-gateway": compose["x-gateway"], **compose["services"]}.items():
        if name.startswith("gateway") or name == "x-gateway":
            env = service.get("environment") or compose["x-gateway"]["environment"]
            assert env["SWITCHBOARD_POLICY_FILE"] == POLICY_PATH, name
            source, target, mode = service.get("volumes", compose["x-gateway"]["volumes"])[0].split(
                ":"
            )
            assert (DEPLOY / source).resolve() == (DEPLOY / "kubernetes" / "policy.yaml").resolve()
            assert (target, mode) == (POLICY_PATH, "ro"), name


def test_the_dev_profile_runs_with_nothing_else(tmp_path: Path) -> None:
    """The `dev` profile: one gateway in dev mode, no other service, no
    variable to set (Compose interpolates the whole file: no `${VAR:?}`
    anywhere) -- and its command, run with its environment, serves."""
    text = (DEPLOY / "compose.yaml").read_text()
    assert not re.search(r"\$\{\w+:\?", text)
    dev = yaml.safe_load(text)["services"]["gateway-dev"]
    assert dev["profiles"] == ["dev"] and dev["command"] == ["serve", "--dev"]
    assert "depends_on" not in dev
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")},
        **dev["environment"],
        "SWITCHBOARD_POLICY_FILE": str(DEPLOY / "kubernetes" / "policy.yaml"),
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
        "SWITCHBOARD_PORT": str(_free_port()),
    }
    env["SWITCHBOARD_PUBLIC_URL"] = f"http://127.0.0.1:{env['SWITCHBOARD_PORT']}"
    command = [sys.executable, "-m", "gateway", *dev["command"]]
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_answering(
            env["SWITCHBOARD_PUBLIC_URL"] + "/readyz",
            process,
            seconds=60,
            every=0.2,
            what=lambda: f"the dev gateway did not become ready: {log.read_text()}",
        )
    finally:
        process.terminate()
        process.wait(30)


def test_the_image_can_run_the_demo() -> None:
    """`docker run IMAGE demo`: the entry point is the CLI, and the sample
    agents the demo loads are in the image where it looks for them."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["switchboard"\]$', dockerfile, re.M)
    copied = re.search(r"^COPY examples (\S+)$", dockerfile, re.M)
    assert copied is not None
    assert f"ENV SWITCHBOARD_EXAMPLES={copied.group(1)}" in dockerfile
    ignored = ROOT / ".dockerignore"
    if ignored.exists():
        assert "examples" not in ignored.read_text()
    demo = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--help"], capture_output=True, text=True
    )
    assert demo.returncode == 0 and "--scenario" in demo.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
