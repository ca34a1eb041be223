"""CLI commands for delegated permissions, run as real subprocesses against a
running gateway: keys, credentials, policy, audit."""

from __future__ import annotations

import itertools
import json
import selectors
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from registry.tls import client_tls
from tests.gateway.cli.test_cli import CLI, run
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.inspecting import verify_as_downstream
from tests.support.waiting import wait_for


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path) as d:
        yield d


def _data(dep: Deployment) -> list[str]:
    return ["--data-dir", str(dep.gateway.settings.data_dir)]


# The gateway under test re-reads its active key this often (default 10 s).
KEY_RECHECK = 1.0


def test_keys_rotate_while_the_gateway_runs(tmp_path: Path) -> None:
    with deployment(tmp_path, key_recheck_seconds=KEY_RECHECK) as dep:
        _keys_rotate_while_the_gateway_runs(dep)


def _keys_rotate_while_the_gateway_runs(dep: Deployment) -> None:
    gw = dep.gateway
    user_token = gw.token("alice", USER_SCOPES)
    assert dep.send("support", user_token).status_code == 200
    before = dep["support"].recorder.calls()[-1].bearer
    assert before is not None
    old_kid = jwt.get_unverified_header(before)["kid"]

    rotated = run("keys", "rotate", *_data(dep))
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split()[2]
    assert new_kid != old_kid
    assert f"{old_kid} stays published" in rotated.stdout
    listed = run("keys", "list", *_data(dep))
    assert new_kid in listed.stdout and "active" in listed.stdout
    assert old_kid in listed.stdout and "retires" in listed.stdout

    # Both keys are published: a token signed before the rotation still verifies.
    kids = {
        k["kid"]
        for k in httpx.get(gw.url + "/.well-known/jwks.json", verify=client_tls()).json()["keys"]
    }
    assert {old_kid, new_kid} <= kids
    verify_as_downstream(before, gw.url, dep["support"].resource)

    # The running gateway picks up the new key within its recheck interval
    # (a new user each time, so the token cache does not answer).
    users = (f"dave{attempt}" for attempt in itertools.count())

    def signed_with_the_new_key() -> str | None:
        assert dep.send("support", gw.token(next(users), USER_SCOPES)).status_code == 200
        latest = dep["support"].recorder.calls()[-1].bearer
        assert latest is not None
        return latest if jwt.get_unverified_header(latest)["kid"] == new_kid else None

    latest = wait_for(
        signed_with_the_new_key,
        seconds=KEY_RECHECK + 20,
        every=KEY_RECHECK / 10,
        what="the gateway never started signing with the new key",
    )
    verify_as_downstream(latest, gw.url, dep["support"].resource)

    # Retiring at once removes the old key from the JWKS once the gateway re-reads it.
    assert run("keys", "rotate", "--retire-after", "0", *_data(dep)).returncode == 0


def test_agents_credentials_command(dep: Deployment, tmp_path: Path) -> None:
    issued = run("agents", "credentials", "inventory", *_data(dep))
    assert issued.returncode == 0, issued.stderr
    info = json.loads(issued.stdout)
    assert info["client_id"] == "inventory"
    assert info["client_secret"].startswith("sbs_")
    assert "not shown again" in issued.stderr
    # The previous secret stopped working the moment the new one was issued.
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "not-a-token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "sales",
    }
    url = dep.gateway.url + "/oauth/token"
    old = httpx.post(
        url, data=form, auth=("inventory", dep["inventory"].secret or ""), verify=client_tls()
    )
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    new = httpx.post(url, data=form, auth=("inventory", info["client_secret"]), verify=client_tls())
    # Authentication passed; the (garbage) subject token is what fails now.
    assert new.status_code == 400 and new.json()["error"] == "invalid_grant"
    bad_jwks = tmp_path / "jwks.json"
    bad_jwks.write_text(json.dumps({"keys": [{"kty": "EC", "kid": "k", "d": "secret"}]}))
    refused = run("agents", "credentials", "inventory", "--jwks", str(bad_jwks), *_data(dep))
    assert refused.returncode == 2
    assert "private key" in refused.stderr
    missing = run("agents", "credentials", "nobody", *_data(dep))
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr


def test_policy_check_and_explain(dep: Deployment, tmp_path: Path) -> None:
    good = run("policy", "check", str(dep.policy_path))
    assert good.returncode == 0, good.stderr
    assert "ok (4 agent rules)" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  sales:\n    requires: [x]\n")
    checked = run("policy", "check", str(bad))
    assert checked.returncode == 2
    assert "bad.yaml:3: agents.sales.requires: unknown key" in checked.stderr

    allowed = run(
        "policy",
        "explain",
        "--scopes",
        USER_SCOPES,
        "--chain",
        "support",
        "--target",
        "sales",
        *_data(dep),
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.startswith("ALLOW  depth 2  granted: inventory:read sales:quote")
    denied = run(
        "policy",
        "explain",
        "--scopes",
        "inventory:read",
        "--target",
        "inventory",
        "--skill",
        "reserve-stock",
        *_data(dep),
    )
    assert denied.returncode == 1
    assert denied.stdout.startswith("DENY")
    assert "inventory:write" in denied.stdout


def test_serve_refuses_a_bad_policy_file_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("defaults:\n  max_depth: many\n")
    result = run(
        "serve",
        "--dev",
        "--data-dir",
        str(tmp_path),
        "--port",
        "0",
        env={"SWITCHBOARD_POLICY_FILE": str(bad)},
    )
    assert result.returncode == 2
    assert "policy.yaml:2: defaults.max_depth" in result.stderr
    assert "Traceback" not in result.stderr


def test_audit_tail_and_export(dep: Deployment, tmp_path: Path) -> None:
    dep.send("support", dep.gateway.token("alice", USER_SCOPES))
    dep.send("support", dep.gateway.token("bob", "sales:quote"))
    tail = run("audit", "tail", *_data(dep))
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 2
    assert "allow" in lines[0] and "alice" in lines[0] and "-> support" in lines[0]
    assert "deny" in lines[1] and "bob" in lines[1]
    only_bob = run("audit", "tail", "--user", "bob", *_data(dep))
    assert only_bob.stdout.count("\n") == 1 and "bob" in only_bob.stdout

    out = tmp_path / "audit.jsonl"
    exported = run("audit", "export", "--decision", "allow", "--out", str(out), *_data(dep))
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["subject"] for r in records] == ["alice"]

    # --follow prints decisions made after it started. When it is ready is not
    # observable from here, so keep making new decisions until one shows up.
    follower = subprocess.Popen(
        [*CLI, "audit", "tail", "-n", "0", "--follow", "--interval", "0.2", *_data(dep)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        ready = selectors.DefaultSelector()
        ready.register(follower.stdout, selectors.EVENT_READ)
        users = (f"erin{attempt}" for attempt in itertools.count())

        def printed() -> str | None:
            assert follower.stdout is not None
            dep.send("support", dep.gateway.token(next(users), USER_SCOPES))
            if not ready.select(timeout=1.0):
                return None
            line = follower.stdout.readline()
            assert "erin" in line and "allow" in line, line
            return line

        wait_for(printed, seconds=60, every=0, what="audit tail --follow printed nothing")
    finally:
        follower.kill()
        follower.communicate()  # reaps the process and closes its pipe
