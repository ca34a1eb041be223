"""`switchboard mcp add|list|show|refresh|approve|remove`, run as real subprocesses."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.scopes import ADMIN_SCOPE
from tests.gateway.cli.test_cli import run
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.mcp_servers import legacy_server, stdio_command, upstream_server
from tests.support.servers import ServerThread


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    server, _, _ = upstream_server()
    yield server
    server.stop()


def test_mcp_commands_manage_servers(gateway: Gateway, upstream: ServerThread) -> None:
    common = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    env = {"UPSTREAM_KEY": "from-the-environment"}
    added = run(
        "mcp",
        "add",
        "Alpha",
        upstream.url + "/mcp",
        "--header",
        "X-Api-Key:$UPSTREAM_KEY",
        *common,
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert "alpha" in added.stdout and "alpha__add" in added.stdout and "approved" in added.stdout
    listed = run("mcp", "list", *common)
    assert listed.returncode == 0 and "alpha__whoami" in listed.stdout
    assert upstream.url in listed.stdout
    # A user's token reads the view: the tools they may call, no URL.
    as_user = run("mcp", "list", "--token", gateway.token("alice"), *common)
    assert as_user.returncode == 0, as_user.stderr
    assert "alpha__whoami" in as_user.stdout and upstream.url not in as_user.stdout
    shown = run("mcp", "show", "alpha", *common)
    assert '"secret_set": true' in shown.stdout and "from-the-environment" not in shown.stdout
    refreshed = run("mcp", "refresh", "alpha", *common)
    assert refreshed.returncode == 0, refreshed.stderr
    approved = run("mcp", "approve", "alpha", "alpha__add", *common)
    assert approved.returncode == 0 and "approved alpha__add at sha256:" in approved.stdout
    command, args = stdio_command()
    refused = run("mcp", "add", "Local", "--stdio", shlex.join([command, *args]), *common)
    assert refused.returncode == 2 and "not allowed" in refused.stderr
    both = run("mcp", "add", "X", upstream.url + "/mcp", "--stdio", command, *common)
    assert both.returncode == 2 and "not both" in both.stderr
    removed = run("mcp", "remove", "alpha", *common)
    assert removed.returncode == 0 and "removed alpha" in removed.stdout
    missing = run("mcp", "remove", "alpha", *common)
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr


def test_mcp_sets_commands_manage_virtual_servers(
    gateway: Gateway, upstream: ServerThread, tmp_path: Path
) -> None:
    common = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    assert run("mcp", "add", "Alpha", upstream.url + "/mcp", *common).returncode == 0
    assert run("mcp", "sets", "list", *common).stdout.strip() == "no sets"
    put = run(
        "mcp", "sets", "put", "ops", "--title", "Ops", "--server", "alpha", "--tool", "x__*",
        "--tool-search", "only", *common,
    )  # fmt: skip
    assert put.returncode == 0, put.stderr
    assert put.stdout.startswith("created /mcp/ops") and "server alpha" in put.stdout
    assert "tool search: only" in put.stdout
    spec = tmp_path / "ops.yaml"
    spec.write_text(
        "title: Ops, renamed\ninstructions: Ask first.\nselect:\n  tools: [alpha__add]\n"
    )
    replaced = run("mcp", "sets", "put", "ops", "--file", str(spec), *common)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.startswith("replaced /mcp/ops") and "tool alpha__add" in replaced.stdout
    listed = run("mcp", "sets", "list", "--token", gateway.token("alice"), *common)
    assert listed.returncode == 0 and "Ops, renamed" in listed.stdout
    shown = run("mcp", "sets", "show", "ops", *common)
    assert '"instructions": "Ask first."' in shown.stdout
    assert '"tool_search": "off"' in shown.stdout  # a file without it: the default
    # Not an admin, an unknown server, a bad file: refused, said, nothing changed.
    as_user = run("mcp", "sets", "remove", "ops", "--token", gateway.token("alice"), *common)
    assert as_user.returncode == 2 and "HTTP 403" in as_user.stderr
    unknown = run("mcp", "sets", "put", "x", "--title", "X", "--server", "nope", *common)
    assert unknown.returncode == 2 and "nope" in unknown.stderr
    spec.write_text("- not a mapping\n")
    bad = run("mcp", "sets", "put", "ops", "--file", str(spec), *common)
    assert bad.returncode == 2 and "mapping" in bad.stderr
    assert run("mcp", "sets", "remove", "ops", *common).stdout.strip() == "removed /mcp/ops"
    missing = run("mcp", "sets", "show", "ops", *common)
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr


def test_mcp_add_a_legacy_sse_server(
    make_gateway: GatewayFactory, database_url: str | None
) -> None:
    """`--transport sse`, detection without it, and what the CLI refuses (both databases)."""
    gateway = make_gateway(database_url)
    admin = gateway.token("admin", ADMIN_SCOPE)  # on PostgreSQL the key is not in the data dir
    common = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    common += ["--token", admin]
    first, _, _ = legacy_server()
    second, _, _ = legacy_server()
    try:
        added = run("mcp", "add", "Old", first.url + "/sse", "--transport", "sse", *common)
        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("old ") and " sse " in added.stdout
        assert "old__add" in added.stdout and "approved" in added.stdout
        found = run("mcp", "add", "Found", second.url + "/sse", *common)
        assert found.returncode == 0, found.stderr
        assert " sse " in found.stdout.splitlines()[0]
        listed = run("mcp", "list", *common)
        assert listed.returncode == 0 and listed.stdout.count(" sse ") == 2
        bad = run("mcp", "add", "Bad", second.url + "/sse", "--transport", "websocket", *common)
        assert bad.returncode == 2 and "invalid choice" in bad.stderr
        stdio = run("mcp", "add", "X", "--stdio", "python", "--transport", "sse", *common)
        assert stdio.returncode == 2 and "--transport goes with a URL" in stdio.stderr
        # Given http, an SSE-only server is refused with the reason; nothing stored.
        strict = run("mcp", "add", "Strict", first.url + "/sse", "--transport", "http", *common)
        assert strict.returncode == 2 and "MCP server strict" in strict.stderr
        assert "strict" not in run("mcp", "list", *common).stdout
    finally:
        first.stop()
        second.stop()
