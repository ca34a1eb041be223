"""LiteLLM's proxy as a peer of bench.peers, run from a config file alone.

`litellm[proxy]` and `a2a-sdk` (its A2A agent gateway needs the SDK) in a
venv of their own (`bench.venvs`), at LITELLM_VERSION unless
`--litellm-version` says otherwise. No database: LiteLLM's documented way
to manage keys and agents is its admin API on PostgreSQL through Prisma, but
its proxy also reads MCP servers (`mcp_servers:`) and A2A agents
(`agents:`) from its config file (`ProxyConfig`, "Initialize non-LLM
configs"), and a `master_key` in `general_settings` authenticates callers
without one -- auth on, as for the other gateways.

Launched as its docs run it, `litellm --config config.yaml`, with one worker
(`--num_workers 1`: uvicorn in the one process) and quiet logging
(`LITELLM_LOG=ERROR`, which also sets uvicorn's log level, so no access
log). Loaded at its MCP gateway `/mcp` (the tool is listed as
`<server>-<tool>`: LiteLLM prefixes each tool with its server's name) and at
its A2A gateway `/a2a/<agent name>` (JSON-RPC; `protocolVersion: "1.0"` in
the agent's card parameters has it serve A2A 1.0, as the load speaks it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import a2a_forwarding as harness
from bench import ports
from bench.venvs import installed_version, peer_venv

LITELLM_PACKAGE = "litellm"
# The newest release that installs here (pip's choice for `litellm[proxy]`
# on 2026-11-28, with a2a-sdk 1.3.0 and mcp 2.3.0 beside it).
LITELLM_VERSION = "1.108.7"
MCP_SERVER = "bench"  # LiteLLM's separator between server and tool is "-"
ECHO_AGENT, TASK_AGENT = "bench", "bench-task"  # the names in /a2a/<name>


@dataclass
class LiteLLM:
    base: str
    mcp_url: str
    tool: str  # the echo tool as LiteLLM lists it
    a2a_url: str
    a2a_task_url: str
    process: subprocess.Popen[bytes]
    headers: dict[str, str]
    about: str
    stop: Callable[[], None]


def config(mcp_url: str, agents: dict[str, str], master_key: str) -> dict[str, object]:
    """LiteLLM's config.yaml (as JSON, a subset of YAML): the MCP server and
    the A2A agents (name -> URL), the master key, nothing that needs a
    database."""
    return {
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"set_verbose": False},
        "mcp_servers": {MCP_SERVER: {"url": mcp_url, "transport": "http"}},
        "agents": [
            {
                "agent_name": name,
                "agent_card_params": {
                    "name": name,
                    "url": url,
                    "protocolVersion": "1.0",
                    "description": f"the bench's {name} agent",
                },
            }
            for name, url in agents.items()
        ],
    }


def start(
    mcp_url: str,
    a2a_url: str,
    a2a_task_url: str,
    prefix: list[str],
    version: str = LITELLM_VERSION,
) -> LiteLLM:
    """LiteLLM's proxy on a port of its own in front of the MCP server and
    the two agents, ready once it lists them; `prefix` goes before its
    command (taskset)."""
    agents = {ECHO_AGENT: a2a_url, TASK_AGENT: a2a_task_url}
    bin_dir = peer_venv(
        "litellm", LITELLM_PACKAGE, version, f"litellm[proxy]=={version}", "a2a-sdk"
    )
    a2a_sdk = installed_version(bin_dir / "python", "a2a-sdk")
    work = Path(tempfile.mkdtemp(prefix="litellm-bench-"))
    key = f"sk-{secrets.token_urlsafe(24)}"
    (work / "config.yaml").write_text(json.dumps(config(mcp_url, agents, key), indent=2))
    port = ports.free_port()
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(bin_dir.parent),
    }
    for unset in ("PYTHONPATH", "DATABASE_URL"):  # its own packages; no database
        env.pop(unset, None)
    argv = [
        *prefix,
        str(bin_dir / "litellm"),
        "--config",
        str(work / "config.yaml"),
        "--host",
        harness.HOST,
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    # cwd: its own directory, so no .env of anyone else's is read.
    log = open(work / "litellm.log", "wb")  # noqa: SIM115 -- kept open for the child's life
    process = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=log)

    def stop() -> None:
        harness.stop_process(process)
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    base = f"http://{harness.HOST}:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        _wait_ready(base, headers, process, work / "litellm.log", list(agents))
    except BaseException:
        stop()
        raise
    return LiteLLM(
        base,
        f"{base}/mcp",
        f"{MCP_SERVER}-echo",
        f"{base}/a2a/{ECHO_AGENT}",
        f"{base}/a2a/{TASK_AGENT}",
        process=process,
        headers=headers,
        about=f"LiteLLM proxy {version} (a2a-sdk {a2a_sdk}), 1 worker, config file, no database",
        stop=stop,
    )


def _wait_ready(
    base: str,
    headers: dict[str, str],
    process: subprocess.Popen[bytes],
    log: Path,
    agents: list[str],
) -> None:
    """Until its health check answers and it lists every agent of the config
    (its MCP servers load in the same startup step, before the agents)."""
    import httpx

    deadline = time.monotonic() + 180  # its imports alone take ~30 s on a busy machine
    listed: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"LiteLLM exited:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(f"{base}/health/liveness", timeout=5).status_code == 200:
                answer = httpx.get(f"{base}/v1/agents", headers=headers, timeout=10)
                listed = answer.json()
                names = {a.get("agent_name") for a in listed} if isinstance(listed, list) else set()
                if set(agents) <= names:
                    return
        time.sleep(0.5)
    raise RuntimeError(
        f"LiteLLM not ready in 180 s (agents listed: {listed!r}):\n"
        f"{log.read_text(errors='replace')[-3000:]}"
    )
