"""The Helm chart (deploy/helm/switchboard), rendered with its default values
and with values-production.yaml, deploys the gateway the kustomize files do:
every object valid Kubernetes (strict), the same probes, security context,
resources and migration Job; an environment made only of settings the gateway
reads, from which it would start; every secret by reference; the policy
mounted where SWITCHBOARD_POLICY_FILE points; a PodDisruptionBudget and
anti-affinity from two replicas on; a ServiceMonitor and the dashboard only
when asked for.

No helm binary runs here: deploy/helm/render renders the chart as `helm
template` does (Go's text/template with sprig, Debian's packages), and makes
the checks of `helm lint` that matter. These tests skip only when it cannot be
built (no Go); `make helm-check` installs what it needs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.api.health import router as health_router
from gateway.settings import Settings
from gateway.settings.environment import unknown_variables
from policies.policy_file import parse_policy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "switchboard"
PRODUCTION = ["-f", str(CHART / "values-production.yaml")]
KUSTOMIZE = DEPLOY / "kubernetes"
KUBERNETES = kubernetes_validate.latest_version()
POLICY_PATH = "/etc/switchboard/policy.yaml"
# The Secrets values-production.yaml names, as an operator would create them.
EXISTING_SECRETS = {
    ("switchboard", "SWITCHBOARD_SECRET_KEY"): secrets.token_urlsafe(48),
    ("switchboard", "SWITCHBOARD_DATABASE_URL"): "postgresql://sb:pw@postgres.db:5432/switchboard",
    ("switchboard", "SWITCHBOARD_REDIS_URL"): "rediss://:pw@redis.cache:6380/0",
    ("switchboard", "console-client-secret"): "a-confidential-client-secret",
}
SECRET_SETTINGS = {
    "SWITCHBOARD_SECRET_KEY",
    "SWITCHBOARD_DATABASE_URL",
    "SWITCHBOARD_REDIS_URL",
    "SWITCHBOARD_CONSOLE__OIDC__CLIENT_SECRET",
}


class Rendered:
    """The objects of one rendering, by kind and name."""

    def __init__(self, text: str) -> None:
        self.objects = [d for d in yaml.safe_load_all(text) if d]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        [found] = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        return found

    def pod(self, kind: str = "Deployment", name: str = "switchboard") -> dict[str, Any]:
        spec: dict[str, Any] = self.get(kind, name)["spec"]["template"]["spec"]
        return spec

    def gateway(self) -> dict[str, Any]:
        container: dict[str, Any] = self.pod()["containers"][0]
        return container

    def environ(self, container: dict[str, Any]) -> dict[str, str]:
        """The container's environment as the kubelet makes it: envFrom
        ConfigMaps, then env in order, with $(VAR) references, secretKeyRef
        from the rendered Secrets or EXISTING_SECRETS (an unknown one fails)."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self.get("ConfigMap", source["configMapRef"]["name"])["data"])
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
            elif "secretKeyRef" in var["valueFrom"]:
                env[var["name"]] = self.secret(**var["valueFrom"]["secretKeyRef"])
            else:
                assert var["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
                env[var["name"]] = "10.1.2.3"
        return env

    def secret(self, name: str, key: str) -> str:
        made = [s for s in self.all("Secret") if s["metadata"]["name"] == name]
        if made:
            return base64.b64decode(made[0]["data"][key]).decode()
        return EXISTING_SECRETS[(name, key)]


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("helm") / "render"
    built = subprocess.run(
        [str(DEPLOY / "helm" / "render" / "build.sh"), str(binary)],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode == 3:  # build.sh: a package is missing
        pytest.skip(built.stderr.strip())
    assert built.returncode == 0, built.stdout + built.stderr
    return binary


def run(renderer: Path, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(renderer), "--strict", *args, "switchboard", str(chart)],
        capture_output=True,
        text=True,
        check=False,
    )


def render(renderer: Path, *args: str) -> Rendered:
    result = run(renderer, *args)
    assert result.returncode == 0, result.stderr
    return Rendered(result.stdout)


def kustomize(kind: str) -> dict[str, Any]:
    for path in KUSTOMIZE.glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == kind:
                found: dict[str, Any] = document
                return found
    raise AssertionError(kind)


@pytest.fixture(params=["default", "production"])
def release(request: pytest.FixtureRequest, renderer: Path) -> Rendered:
    return render(renderer, *(PRODUCTION if request.param == "production" else []))


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A process environment with no SWITCHBOARD_ or OTEL_ variable but those a test sets."""
    for name in [n for n in os.environ if n.startswith(("SWITCHBOARD_", "OTEL_"))]:
        monkeypatch.delenv(name)
    yield monkeypatch


def test_every_object_is_valid_kubernetes(release: Rendered) -> None:
    kinds = {o["kind"] for o in release.objects}
    assert {"Deployment", "Service", "ConfigMap", "Job"} <= kinds
    for document in release.objects:
        if document["kind"] == "ServiceMonitor":  # a CRD: checked below
            continue
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_gateway_is_the_one_kustomize_deploys(release: Rendered) -> None:
    theirs = kustomize("Deployment")["spec"]
    ours = release.get("Deployment", "switchboard")["spec"]
    assert ours["strategy"] == theirs["strategy"]
    assert release.pod()["securityContext"] == theirs["template"]["spec"]["securityContext"]
    mine, kept = release.gateway(), theirs["template"]["spec"]["containers"][0]
    fields = ("args", "livenessProbe", "readinessProbe", "startupProbe", "securityContext")
    for field in (*fields, "volumeMounts"):
        assert mine[field] == kept[field], field
    assert mine["ports"][0] == kept["ports"][0]  # and a metrics port when asked for
    assert [v["name"] for v in release.pod()["volumes"]] == ["data", "tmp", "policy"]
    # The probes ask the gateway's own health routes, on the port it listens on.
    routes = {getattr(r, "path", None) for r in health_router.routes}
    probed = {mine[probe]["httpGet"]["path"] for probe in fields[1:4]}
    assert probed == {"/healthz", "/readyz"} and probed <= routes
    [http] = [p for p in mine["ports"] if p["name"] == "http"]
    assert str(http["containerPort"]) == release.environ(mine)["SWITCHBOARD_PORT"]
    job = release.pod("Job", "switchboard-migrate-1")
    assert job["containers"][0]["args"] == ["db", "upgrade"]
    assert job["containers"][0]["envFrom"] == mine["envFrom"]
    service = release.get("Service", "switchboard")["spec"]
    assert service["ports"][0] == kustomize("Service")["spec"]["ports"][0]
    assert service["selector"] == ours["selector"]["matchLabels"]


def test_the_default_values_are_the_kustomize_sizes(renderer: Path) -> None:
    default = render(renderer)
    kept = kustomize("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert default.gateway()["resources"] == kept["resources"]
    assert (
        default.get("HorizontalPodAutoscaler", "switchboard")["spec"]
        == (kustomize("HorizontalPodAutoscaler")["spec"])
    )
    assert "replicas" not in default.get("Deployment", "switchboard")["spec"]  # the HPA's
    pdb = default.get("PodDisruptionBudget", "switchboard")["spec"]
    assert pdb["maxUnavailable"] == kustomize("PodDisruptionBudget")["spec"]["maxUnavailable"]


def test_the_environment_is_settings_the_gateway_reads(
    release: Rendered, settings_env: pytest.MonkeyPatch
) -> None:
    """No unknown setting (the gateway's own check), every setting the
    kustomize files set, and from it the gateway would start (settings load,
    nothing insecure)."""
    env = release.environ(release.gateway())
    assert unknown_variables(Settings.model_fields, env) == []
    kept = set(kustomize("ConfigMap")["data"]) | set(kustomize("Secret")["stringData"])
    assert kept - set(env) == set()
    assert release.environ(release.pod("Job", "switchboard-migrate-1")["containers"][0]) == {
        k: v for k, v in env.items() if k not in {"POD_IP", "SWITCHBOARD_REPLICA_URL"}
    }
    for name, value in env.items():
        settings_env.setenv(name, value)
    settings = Settings.load()
    assert settings.insecurities() == []
    assert str(settings.policy_file) == POLICY_PATH
    assert settings.database_url and settings.database_url.startswith("postgresql://")
    assert settings.redis_url and settings.effective_replica_url == "http://10.1.2.3:8080"
    assert settings.trusted_issuers


def test_production_settings_reach_the_gateway(
    renderer: Path, settings_env: pytest.MonkeyPatch
) -> None:
    production = render(renderer, *PRODUCTION)
    for name, value in production.environ(production.gateway()).items():
        settings_env.setenv(name, value)
    settings = Settings.load()
    values = yaml.safe_load((CHART / "values-production.yaml").read_text())
    assert settings.workers == values["gateway"]["workers"]
    assert settings.log_format == "json"
    # A number read from YAML is a float in Helm: rendered as 1048576, not 1.048576e+06.
    assert settings.fetch_max_bytes == values["gateway"]["settings"]["fetch_max_bytes"]
    assert settings.mcp_allowed_origins == ["https://app.example.com"]
    assert settings.metrics_port == values["metrics"]["port"]
    assert settings.console.oidc is not None and settings.console.oidc.client_secret is not None
    assert settings.redis_url == EXISTING_SECRETS[("switchboard", "SWITCHBOARD_REDIS_URL")]


def test_secrets_are_read_by_reference(renderer: Path) -> None:
    production = render(renderer, *PRODUCTION)
    assert production.all("Secret") == []  # the operator's, never the chart's
    migrate = production.pod("Job", "switchboard-migrate-1")["containers"][0]
    for container in (production.gateway(), migrate):
        refs = {v["name"]: v.get("valueFrom", {}).get("secretKeyRef") for v in container["env"]}
        assert {name for name in SECRET_SETTINGS if refs.get(name)} == SECRET_SETTINGS
    for config in production.all("ConfigMap"):
        assert not set(config["data"]) & SECRET_SETTINGS
    # The trial's own Secrets: the sealing key outlives `helm uninstall`, and the
    # bundled database's password reaches the URL only through a reference.
    default = render(renderer)
    key = default.get("Secret", "switchboard-secret-key")
    assert key["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    env = {v["name"]: v for v in default.gateway()["env"]}
    assert (
        env["SWITCHBOARD_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"]
        == "switchboard-secret-key"
    )
    assert "$(POSTGRES_PASSWORD)" in env["SWITCHBOARD_DATABASE_URL"]["value"]
    assert "secretKeyRef" in env["POSTGRES_PASSWORD"]["valueFrom"]
    # Without the bundled services, the Secrets are required, by name.
    failed = run(renderer, "--set", "postgresql.enabled=false")
    assert failed.returncode == 1 and "externalDatabase.existingSecret" in failed.stderr


def test_every_pod_runs_as_non_root_on_a_read_only_root(release: Rendered) -> None:
    for kind in ("Deployment", "Job", "StatefulSet"):
        for owner in release.all(kind):
            pod = owner["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, owner["metadata"]["name"]
            assert pod["securityContext"]["runAsUser"] != 0
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"]["drop"] == ["ALL"]
    # What the gateway writes (its data dir, the working directory of the
    # image, and /tmp) is a volume of its own.
    mounts = {m["mountPath"] for m in release.gateway()["volumeMounts"]}
    assert {"/var/lib/switchboard", "/tmp"} <= mounts  # noqa: S108 - paths in the pod


@pytest.mark.parametrize(
    ("args", "budget", "affinity"),
    [
        ([], True, "preferredDuringSchedulingIgnoredDuringExecution"),
        (PRODUCTION, True, "preferredDuringSchedulingIgnoredDuringExecution"),
        (["--set", "autoscaling.enabled=false,replicaCount=1"], False, None),
        (["--set", "autoscaling.minReplicas=1"], False, None),
        (["--set", "podAntiAffinity=hard"], True, "requiredDuringSchedulingIgnoredDuringExecution"),
        (["--set", "podAntiAffinity="], True, None),
    ],
    ids=["default", "production", "one-replica", "hpa-from-one", "hard", "no-affinity"],
)
def test_two_replicas_or_more_get_a_budget_and_anti_affinity(
    renderer: Path, args: list[str], budget: bool, affinity: str | None
) -> None:
    release = render(renderer, *args)
    labels = release.get("Deployment", "switchboard")["spec"]["template"]["metadata"]["labels"]
    pdbs = release.all("PodDisruptionBudget")
    assert bool(pdbs) == budget
    for pdb in pdbs:
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    anti = release.pod().get("affinity", {}).get("podAntiAffinity", {})
    assert list(anti) == ([affinity] if affinity else [])
    if affinity:
        [term] = anti[affinity]
        selector = term.get("podAffinityTerm", term)["labelSelector"]["matchLabels"]
        assert selector.items() <= labels.items()


def test_the_service_monitor_is_optional(renderer: Path) -> None:
    assert render(renderer).all("ServiceMonitor") == []
    production = render(renderer, *PRODUCTION)
    [monitor] = production.all("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [service] = [
        s
        for s in production.all("Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    [endpoint] = monitor["spec"]["endpoints"]
    [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    [target] = [p for p in production.gateway()["ports"] if p["name"] == port["targetPort"]]
    env = production.environ(production.gateway())
    assert str(target["containerPort"]) == env["SWITCHBOARD_METRICS_PORT"]
    assert endpoint["path"] == "/metrics"
    # Without a metrics port, /metrics asks for an admin token: refused, saying so.
    failed = run(renderer, "--set", "metrics.serviceMonitor.enabled=true")
    assert failed.returncode == 1 and "metrics.port" in failed.stderr


def test_the_policy_is_the_kustomize_file_mounted_where_the_gateway_reads_it(
    release: Rendered,
) -> None:
    assert (CHART / "files" / "policy.yaml").resolve() == (KUSTOMIZE / "policy.yaml").resolve()
    env = release.environ(release.gateway())
    assert env["SWITCHBOARD_POLICY_FILE"] == POLICY_PATH
    [volume] = [v for v in release.pod()["volumes"] if "configMap" in v]
    [mount] = [m for m in release.gateway()["volumeMounts"] if m["name"] == volume["name"]]
    assert str(Path(mount["mountPath"]) / "policy.yaml") == POLICY_PATH and mount["readOnly"]
    policy = release.get("ConfigMap", volume["configMap"]["name"])["data"]["policy.yaml"]
    assert policy == (KUSTOMIZE / "policy.yaml").read_text()
    parse_policy(policy)


def test_a_policy_of_ones_own(renderer: Path) -> None:
    given = render(renderer, "--set-string", "policy.content=version: 1")
    assert given.get("ConfigMap", "switchboard-policy")["data"]["policy.yaml"] == "version: 1\n"
    existing = render(renderer, "--set", "policy.existingConfigMap=our-policy")
    assert [c["metadata"]["name"] for c in existing.all("ConfigMap")] == ["switchboard"]
    [volume] = [v for v in existing.pod()["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == "our-policy"


def test_the_dashboard_is_optional(renderer: Path) -> None:
    names = {c["metadata"]["name"] for c in render(renderer).all("ConfigMap")}
    assert names == {"switchboard", "switchboard-policy"}
    production = render(renderer, *PRODUCTION)
    dashboard = production.get("ConfigMap", "switchboard-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((DEPLOY / "grafana" / "switchboard.json").read_text())
    assert json.loads(dashboard["data"]["switchboard.json"]) == shipped


def test_the_renderer_refuses_what_helm_lint_refuses(renderer: Path, tmp_path: Path) -> None:
    """The checks can fail: a value misspelt in a template (--strict), an
    object without a kind, a name that is no DNS name, a Chart.yaml version
    that is no SemVer, a required value left empty."""
    broken = [
        ("templates/x.yaml", "a: {{ .Values.gateway.publicUrI }}\n", "publicUrI"),
        ("templates/x.yaml", "apiVersion: v1\nmetadata: {name: x}\n", "kind required"),
        ("templates/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: X_y}\n", "DNS"),
        (
            "templates/x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: switchboard}\n",
            "also in",
        ),
        ("Chart.yaml", None, "SemVer"),
    ]
    for path, text, said in broken:
        chart = tmp_path / said.replace(" ", "-")
        shutil.copytree(CHART, chart)  # symlinks followed: the files themselves
        if text is None:
            chart_yaml = (chart / path).read_text().replace("version: 0.1.0", "version: 1.0")
            (chart / path).write_text(chart_yaml)
        else:
            (chart / path).write_text(text)
        result = run(renderer, chart=chart)
        assert result.returncode == 1 and said in result.stderr, (said, result.stderr)
    failed = run(renderer, "--set", "gateway.publicUrl=")
    assert failed.returncode == 1 and "gateway.publicUrl" in failed.stderr


def test_every_value_is_documented() -> None:
    """values.yaml is documented field by field: every key holding a value
    (not a section of keys) has a `# --` comment above it, or sits inside a
    value so documented (`resources:` and its requests)."""
    documented: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    previous = comment = ""  # the last line not blank; the first of the last comment block
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z_][\w.-]*):(.*)$", line)
        if key:
            indent, name, rest = len(key.group(1)), key.group(2), key.group(3).strip()
            while documented and documented[-1][0] >= indent:
                documented.pop()
            mine = previous.lstrip().startswith("#") and comment.startswith("# --")
            inherited = any(doc for _, doc in documented)
            following = next((n for n in lines[number + 1 :] if n.strip()), "")
            section = rest == "" and not following.lstrip().startswith("-")
            if not section and not mine and not inherited:
                undocumented.append(f"{number + 1}: {name}")
            documented.append((indent, mine))
        if line.lstrip().startswith("#") and not lines[number - 1].lstrip().startswith("#"):
            comment = line.strip()
        if line.strip():
            previous = line
    assert undocumented == [], undocumented
