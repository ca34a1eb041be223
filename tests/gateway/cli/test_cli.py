"""The `switchboard` command line, run as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from registry.tls import client_tls
from tests.support.gateway import Gateway
from tests.support.servers import ServerThread, bound_socket
from tests.support.waiting import wait_answering

CLI = [sys.executable, "-m", "gateway"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**clean, **(env or {})}
    )


def test_token_issue_works_while_the_server_runs(gateway: Gateway) -> None:
    data_dir = str(gateway.settings.data_dir)
    result = run(
        "token",
        "issue",
        "--sub",
        "alice",
        "--scope",
        "crm:read orders:write",
        "--ttl",
        "30m",
        "--data-dir",
        data_dir,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert claims["scope"] == "crm:read orders:write"
    assert claims["exp"] - claims["iat"] == 1800
    assert claims["iss"] == gateway.url  # read from the running gateway's run state
    response = httpx.get(
        gateway.url + "/agents", headers={"Authorization": f"Bearer {token}"}, verify=client_tls()
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttl", "forever"], "--ttl"),
        (["--ttl", "0"], "--ttl"),
        (["--ttl", "400d"], "--ttl"),
        (["--scope", 'bad"scope'], "invalid scope"),
    ],
)
def test_token_issue_rejects_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = run("token", "issue", "--sub", "alice", "--data-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_agents_commands_over_http(gateway: Gateway, sdk_agent: ServerThread) -> None:
    data = ["--data-dir", str(gateway.settings.data_dir)]
    added = run("agents", "add", sdk_agent.url, "--id", "stock", *data)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["id"] == "stock"
    listed = run("agents", "list", *data)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    # Issue 57: the columns are named, each over its values.
    assert header.split() == ["ID", "HEALTH", "SIGNED", "PROTOCOL", "NAME", "[SKILLS]"]
    assert row.startswith("stock ") and "Inventory Agent" in row
    assert row.index("A2A") == header.index("PROTOCOL"), listed.stdout
    assert run("agents", "list", "--skill", "nope", *data).stdout.strip() == "no agents match"
    shown = run("agents", "show", "stock", *data)
    assert json.loads(shown.stdout)["skills"][0]["id"] == "check-stock"
    duplicate = run("agents", "add", sdk_agent.url, "--id", "stock", *data)
    assert duplicate.returncode == 2
    assert "HTTP 409" in duplicate.stderr
    removed = run("agents", "remove", "stock", *data)
    assert removed.returncode == 0
    missing = run("agents", "show", "stock", *data)
    assert missing.returncode == 2
    assert "HTTP 404" in missing.stderr


def test_agents_command_reports_an_unreachable_gateway(tmp_path: Path) -> None:
    result = run("agents", "list", "--data-dir", str(tmp_path), "--gateway", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "cannot reach the gateway" in result.stderr


def test_serve_refuses_insecure_settings_outside_dev(tmp_path: Path) -> None:
    result = run("serve", "--data-dir", str(tmp_path), "--port", "0")
    assert result.returncode == 2
    assert "refusing to start with insecure settings" in result.stderr
    assert "SWITCHBOARD_SECRET_KEY" in result.stderr
    assert "SWITCHBOARD_PUBLIC_URL" in result.stderr
    weak = run(
        "serve",
        "--data-dir",
        str(tmp_path),
        env={"SWITCHBOARD_SECRET_KEY": "changeme", "SWITCHBOARD_PUBLIC_URL": "http://gw.example"},
    )
    assert weak.returncode == 2
    assert "at least 32" in weak.stderr
    assert "https://" in weak.stderr


def test_config_file_and_unknown_keys(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.yaml"
    config.write_text("dev: true\nport: 8181\nnot_a_setting: 1\n")
    result = run("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "not_a_setting" in result.stderr
    missing = run("serve", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = run("db", "upgrade", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "switchboard.db").exists()
    assert run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0  # idempotent


def test_serve_dev_end_to_end(tmp_path: Path) -> None:
    """What `make run` does: a real `switchboard serve --dev` process."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [*CLI, "serve", "--dev", "--data-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def exited_with() -> str:  # read only once it has exited (a read would wait for it)
            if process.poll() is None or process.stdout is None:
                return "the gateway did not become ready"
            return process.stdout.read()

        # A bound, not a figure: on a loaded 2-core machine the process's
        # imports and migrations alone have taken over 30 s.
        wait_answering(f"http://127.0.0.1:{port}/readyz", process, 120, what=exited_with)
        token = run(
            "token",
            "issue",
            "--sub",
            "root",
            "--scope",
            "switchboard:admin",
            "--data-dir",
            str(tmp_path),
        ).stdout.strip()
        response = httpx.get(
            f"http://127.0.0.1:{port}/agents",
            headers={"Authorization": f"Bearer {token}"},
            verify=client_tls(),
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=20)[0]
    assert process.returncode == 0, output
    assert "DEV MODE" in output
    assert "BEGIN" not in output  # the private key is never printed
