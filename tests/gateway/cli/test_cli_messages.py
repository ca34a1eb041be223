"""Errors a person can act on: each mistake a new user makes gets one clear line
(what, where, what to do) and a non-zero exit, never a Python traceback; and
the gateway's own answers to the same mistakes name the field or the agent.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gateway.settings import Settings
from gateway.storage import runstate
from tests.gateway.cli.test_cli import run
from tests.support.gateway import Gateway


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("switchboard: "), result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("card.json", "{bad", "not valid JSON at line 1, column 2"),
        ("card.yaml", "a: [\n", "not valid YAML"),
        ("card.json", '"a string"', "an agent card is a JSON object, not a string"),
    ],
)
def test_agents_add_file_that_is_not_a_card(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    (tmp_path / name).write_text(content)
    result = run("agents", "add", "--file", str(tmp_path / name), "--data-dir", str(tmp_path))
    one_line_error(result, f"--file {tmp_path / name}", expected)


def test_agents_add_missing_file_or_a_directory(tmp_path: Path) -> None:
    missing = run("agents", "add", "--file", str(tmp_path / "nope.json"))
    one_line_error(missing, "nope.json: no such file")
    directory = run("agents", "add", "--file", str(tmp_path))
    one_line_error(directory, "is a directory")


def test_agents_add_with_neither_url_nor_file() -> None:
    one_line_error(run("agents", "add"), "give the agent's URL, or --file")


def test_agents_credentials_jwks_missing(tmp_path: Path) -> None:
    result = run("agents", "credentials", "billing", "--jwks", str(tmp_path / "jwks.json"))
    one_line_error(result, "--jwks", "jwks.json: no such file")


def test_audit_export_into_a_missing_directory(tmp_path: Path) -> None:
    out = tmp_path / "nowhere" / "audit.jsonl"
    result = run("audit", "export", "--out", str(out), "--data-dir", str(tmp_path))
    one_line_error(result, f"the directory {out.parent} does not exist")


def test_trusted_issuers_that_are_not_json(tmp_path: Path) -> None:
    result = run(
        "db",
        "upgrade",
        "--data-dir",
        str(tmp_path),
        env={"SWITCHBOARD_TRUSTED_ISSUERS": "https://issuer.example"},
    )
    one_line_error(result, "SWITCHBOARD_TRUSTED_ISSUERS", "JSON")


def test_unreachable_database_hides_the_password(tmp_path: Path) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{closed_port()}/test"
    for command in (["db", "upgrade"], ["serve", "--dev", "--data-dir", str(tmp_path)]):
        result = run(*command, env={"SWITCHBOARD_DATABASE_URL": url})
        text = one_line_error(result, "cannot connect to the database", "is it running?")
        assert "hunter2" not in text


@pytest.mark.postgres
def test_missing_database_says_so_and_how_to_create_it() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/switchboard_no_such_database"
    result = run("db", "upgrade", env={"SWITCHBOARD_DATABASE_URL": url})
    one_line_error(
        result, "'switchboard_no_such_database' does not exist", "createdb switchboard_no_such"
    )


@pytest.mark.postgres
def test_a_postgres_url_is_accepted(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+asyncpg://", "postgres://", 1)
    result = run("db", "upgrade", env={"SWITCHBOARD_DATABASE_URL": plain})
    assert result.returncode == 0, result.stderr
    assert Settings(database_url=plain).effective_database_url == postgres_url


def test_a_database_the_gateway_does_not_run_on(tmp_path: Path) -> None:
    result = run("db", "upgrade", env={"SWITCHBOARD_DATABASE_URL": "mysql://u:pw@host/db"})
    text = one_line_error(result, "'mysql' is not a database the gateway runs on")
    assert "pw@" not in text


def test_a_port_out_of_range(tmp_path: Path) -> None:
    result = run("serve", "--dev", "--port", "99999", "--data-dir", str(tmp_path))
    text = one_line_error(result, "setting 'port'", "65535", "--port")
    assert "errors.pydantic.dev" not in text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin'"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            },
            "use http/protobuf or grpc",
        ),
    ],
)
def test_tracing_variables_the_gateway_cannot_act_on(
    tmp_path: Path, environ: dict[str, str], expected: str
) -> None:
    result = run(
        "serve", "--dev", "--port", str(closed_port()), "--data-dir", str(tmp_path), env=environ
    )
    one_line_error(result, "tracing cannot be set up", expected)


def test_an_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.yaml"
    config.write_text("dev: true\nprot: 8181\n")
    result = run("db", "upgrade", "--config", str(config), "--data-dir", str(tmp_path))
    one_line_error(result, f"unknown setting 'prot' in {config}")


def test_version_and_log_level_help() -> None:
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("switchboard ")
    help_text = run("serve", "--help").stdout
    assert "--log-level" in help_text
    assert "how much the server logs" in help_text
    bad = run("serve", "--log-level", "loud")
    assert bad.returncode == 2
    assert "invalid choice" in bad.stderr


def test_run_state_of_a_dead_process_is_ignored(tmp_path: Path) -> None:
    # A gateway that failed to bind, or was killed, leaves its file behind.
    with subprocess.Popen(["true"]) as gone:
        gone.wait()
    (tmp_path / runstate.FILENAME).write_text(
        json.dumps({"public_url": "http://127.0.0.1:1", "pid": gone.pid})
    )
    assert runstate.read(tmp_path) == {}
    assert run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    result = run("token", "issue", "--sub", "alice", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_second_gateway_on_the_same_data_dir_leaves_the_first_ones_state(
    tmp_path: Path,
) -> None:
    with subprocess.Popen(["sleep", "30"]) as first:
        try:
            state = {"public_url": "http://127.0.0.1:8181", "pid": first.pid}
            (tmp_path / runstate.FILENAME).write_text(json.dumps(state))
            settings = Settings(data_dir=tmp_path, dev=True, port=8282)
            assert runstate.write(settings) is False
            assert runstate.read(tmp_path) == state
            runstate.remove(settings)  # not ours: left alone
            assert runstate.read(tmp_path) == state
        finally:
            first.kill()


def test_own_run_state_is_removed_on_shutdown(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dev=True)
    assert runstate.write(settings) is True
    assert runstate.read(tmp_path)["pid"] == os.getpid()
    runstate.remove(settings)
    assert not (tmp_path / runstate.FILENAME).exists()


def test_a_card_with_wrong_types_names_the_fields(gateway: Gateway) -> None:
    card = {"name": "x", "skills": "nope", "supportedInterfaces": 5, "capabilities": []}
    with gateway.client() as client:
        response = client.post("/agents", json={"card": card})
    assert response.status_code == 422, response.text
    problem = response.json()
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert fields["skills"].startswith("must be a list of objects")
    assert fields["supportedInterfaces"] == "must be a list of objects, not a number"
    assert fields["capabilities"] == "must be an object, not a list"
    assert "attribute" not in response.text


def test_a_duplicate_registration_names_the_agent_that_has_it(
    gateway: Gateway, tmp_path: Path
) -> None:
    card = {
        "name": "Dup",
        "description": "d",
        "version": "1",
        "supportedInterfaces": [
            {"url": "http://127.0.0.1:9/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "s", "name": "s", "description": "d", "tags": ["t"]}],
    }
    with gateway.client() as client:
        assert client.post("/agents", json={"card": card}).status_code == 201
        again = client.post("/agents", json={"card": card, "id": "other"})
    assert again.status_code == 409
    assert "agent 'dup' already has the resource http://127.0.0.1:9/" in again.json()["detail"]


def test_an_unreachable_card_url_says_so_in_words(gateway: Gateway) -> None:
    with gateway.client() as client:
        response = client.post("/agents", json={"card_url": f"http://127.0.0.1:{closed_port()}/"})
    assert response.status_code == 502, response.text
    detail = response.json()["detail"]
    assert "connection refused" in detail
    assert "ConnectError" not in detail
    assert "ssl:default" not in detail


def test_a_url_that_is_not_an_mcp_server(gateway: Gateway, tmp_path: Path) -> None:
    # A plain HTTP server that is no MCP server: it answers POST with 501.
    with subprocess.Popen(
        ["python3", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as web:
        try:
            assert web.stdout is not None
            port = int(web.stdout.readline().split(" port ")[1].split(" ")[0])
            with gateway.client() as client:
                response = client.post(
                    "/mcp-servers", json={"name": "web", "url": f"http://127.0.0.1:{port}/"}
                )
        finally:
            web.kill()
    assert response.status_code == 502, response.text
    assert "not JSON-RPC" in response.json()["detail"]
    assert "Streamable HTTP endpoint" in response.json()["detail"]


def test_make_run_takes_a_port() -> None:
    makefile = (Path(__file__).resolve().parents[3] / "Makefile").read_text()
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=9191"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert "PORT" in makefile
    assert "--port 9191" in dry.stdout, dry.stdout + dry.stderr


# A newcomer's first ten minutes (issue 32) ------------------------------------


def test_token_issue_outside_a_gateway_s_data_dir_refuses(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-gateway"
    empty.mkdir()
    one_line_error(
        run("token", "issue", "--sub", "dana", "--data-dir", str(empty)),
        "no gateway's data in",
        "--data-dir",
    )
    assert list(empty.iterdir()) == [], "a database was made where there was none"


def test_serve_on_an_unwritable_data_dir_says_so(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    said = one_line_error(
        run("serve", "--dev", "--data-dir", str(blocked / "data"), "--port", str(closed_port())),
        "data directory",
        "cannot be written",
    )
    assert "is it running" not in said


def test_serve_on_a_port_in_use_says_so_before_touching_the_database(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line_error(
            run("serve", "--dev", "--data-dir", str(tmp_path), "--port", str(port)),
            f"127.0.0.1:{port} is already in use",
        )
    assert not (tmp_path / "switchboard.db").exists(), "migrations ran before the port check"


def test_empty_listings_say_so(gateway: Gateway) -> None:
    common = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    assert "no agents yet" in run("agents", "list", *common).stdout
    assert "no MCP servers yet" in run("mcp", "list", *common).stdout
    assert "no audit records" in run("audit", "tail", *common).stdout
