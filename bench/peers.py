"""Switchboard and its peers, measured side by side (issue 19).

    python -m bench.peers                          # 3 rounds, 1 and 32 conns, every protocol
    python -m bench.peers --rounds 5 --seconds 8 --conns 1,64
    python -m bench.peers --contextforge-version 1.0.8 --contextforge-db sqlite
    python -m bench.peers --targets direct,switchboard-1,litellm-1 --ports 41300-41399

Peers: ContextForge (IBM's `mcp-contextforge-gateway`) and LiteLLM's proxy
(`litellm[proxy]`), each installed into its own virtual environment under
`.cache/peers/<name>/venv` at the pinned CONTEXTFORGE_VERSION and
LITELLM_VERSION (installed once; a different `--contextforge-version` or
`--litellm-version` reinstalls).

The same upstreams serve every target: one MCP server (the `mcp` SDK's
`MCPServer` with one `echo` tool, stateless Streamable HTTP, the one
bench.mcp_gateway uses) and two A2A 1.0 agents, both the a2a-sdk agent of
bench.a2a_forwarding: one answers with a message (protocol `a2a`, the echo
path), the other with a task, a working and a completed status update
(protocol `a2a-task`, the shape real agents answer in). Targets, all started
once and kept running:

* `direct`: the upstreams themselves, no gateway;
* `switchboard-<n>`: `switchboard serve --dev --workers n` on SQLite, auth on
  (a user token on every call; the policy decision, a minted upstream token,
  the audit record -- as bench.a2a_gateway and bench.mcp_gateway run it), the
  agent and the MCP server registered with the CLI;
* `contextforge-<n>`: gunicorn with n UvicornWorkers and --preload, as its
  run-gunicorn.sh launches it, configured as its docker-compose.yml does for
  production (see contextforge_env): PostgreSQL (a database of its own per
  target) and Redis, JWT auth required on the API and on /mcp, A2A on, access
  log off, log level ERROR. The MCP server is registered as a gateway
  (`POST /gateways`) and its tool bundled into a virtual server (`POST
  /servers`), whose `/servers/<id>/mcp` is what is loaded; the agent is
  registered with `POST /a2a` and loaded at `/a2a/<name>/jsonrpc`, its
  transparent A2A JSON-RPC proxy. The token is the one its README mints
  (`mcpgateway.utils.create_jwt_token --username admin@example.com`);
* `litellm-1`: `litellm --config config.yaml`, one worker, quiet logging, no
  database: the MCP server under `mcp_servers:`, the agents under `agents:`,
  a master key for auth (bench.peers_litellm says how and why).

Worker counts: 1 each (the same process count), then each one's recommended
count: Switchboard one per core (docs/configuration.md), ContextForge
run-gunicorn.sh's `auto`, 2 x cores + 1 capped at 16. LiteLLM runs with one
(its `--num_workers` default).

The load is raw HTTP/1.1 over keep-alive connections from a process of its
own (bench.a2a_forwarding's load generator for A2A SendMessage; the MCP one
below does the same for tools/call, after an `initialize` handshake per
connection at protocol 2025-06-18, the revision all three speak), 1 and N
connections. Each round runs every target in turn, protocol by protocol and
connection count by count, so a disturbance on the shared machine hits one
round of every target rather than one target; the table shows medians over
the rounds. Unless --no-pin, the load generator and the upstreams share the
first CPU and a one-process gateway has the second; gateways with more than
one process get both CPUs (as bench.workers places `--workers 2`).

Memory is each gateway's process tree (master and workers) after its rows:
RSS summed, and PSS summed (shared pages split between the processes that map
them, the fairer sum for forked workers). `gw µs/call` is the gateway's CPU
per call (all its processes), `other %` CPU taken by processes outside the
run (100 = one core): a row with much of it was disturbed. `SB÷ cpu` is Switchboard's CPU
per call over the target's (below 1: Switchboard spends less).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench import a2a_forwarding as harness
from bench import peers_litellm, ports
from bench.a2a_gateway import _switchboard, serve_argv
from bench.fresh_db import fresh_database
from bench.mcp_wire_client import jsonrpc_answer
from bench.venvs import peer_venv
from bench.workers import _wait_for_workers

CONTEXTFORGE_PACKAGE = "mcp-contextforge-gateway"
CONTEXTFORGE_VERSION = "1.0.7"  # the release measured by hand before this bench
ADMIN_EMAIL = "admin@example.com"  # ContextForge's PLATFORM_ADMIN_EMAIL default
MCP_PROTOCOL = "2025-06-18"
TOOL_ARGUMENTS = {"text": "hello"}
DATABASE_HOST = "127.0.0.1"
REDIS_DB = 13  # a database index of its own; keys also carry a per-run prefix

# gunicorn's config for ContextForge: the bind address, and what its own
# gunicorn.config.py does after fork for --preload -- drop the SQLAlchemy pool
# the master built, so no two workers share a database connection.
GUNICORN_CONF = """\
import os

bind = f"{os.environ['HOST']}:{os.environ['PORT']}"


def post_fork(server, worker):
    from mcpgateway.db import engine

    engine.dispose(close=False)
"""


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """pid and its descendants (gunicorn's workers, multiprocessing's)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in map(int, task.read_text().split()):
                found += _tree(child)
    return found


def _memory_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) of the processes together, in MB."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Rss":
                    rss += int(value.split()[0])
                elif name == "Pss":
                    pss += int(value.split()[0])
    return rss / 1024, pss / 1024


def _taskset(cpus: set[int] | None) -> list[str]:
    # taskset rather than pinning after the start: workers forked later inherit it.
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


@dataclass
class Target:
    name: str
    about: str
    mcp_url: str
    a2a_url: str
    a2a_task_url: str
    root: int | None  # the gateway's first process; None for `direct`
    stop: Callable[[], None]
    headers: dict[str, str] = field(default_factory=dict)

    def pids(self) -> list[int]:
        return _tree(self.root) if self.root else []


@dataclass(frozen=True)
class Upstreams:
    mcp_url: str
    a2a_url: str
    a2a_task_url: str
    pids: tuple[int, int, int]  # MCP server, echo agent, task agent

    def pid_for(self, protocol: str) -> int:
        return self.pids[PROTOCOLS.index(protocol)]


# The rows' protocols, in the order of `Upstreams.pids`.
PROTOCOLS = ("mcp", "a2a", "a2a-task")


@contextlib.contextmanager
def _upstreams(cpus: set[int] | None) -> Iterator[Upstreams]:
    mcp_port, agent_port, task_port = (ports.free_port() for _ in range(3))
    mcp = harness.spawn(
        [sys.executable, "-m", "bench.mcp_gateway", "_upstream", str(mcp_port)], mcp_port
    )
    try:
        agent = harness.spawn(harness._serve_argv("agent-sdk", agent_port), agent_port)
        try:
            task_agent = harness.spawn(harness._serve_argv("agent-task", task_port), task_port)
            try:
                for pid in (mcp.pid, agent.pid, task_agent.pid):
                    harness.pin(pid, cpus)
                yield Upstreams(
                    f"http://{harness.HOST}:{mcp_port}/mcp",
                    f"http://{harness.HOST}:{agent_port}/",
                    f"http://{harness.HOST}:{task_port}/",
                    (mcp.pid, agent.pid, task_agent.pid),
                )
            finally:
                harness.stop_process(task_agent)
        finally:
            harness.stop_process(agent)
    finally:
        harness.stop_process(mcp)


def switchboard_cli(*args: str) -> str:
    try:
        return _switchboard(*args)
    except subprocess.CalledProcessError as exc:  # the CLI says why on stderr
        raise RuntimeError(f"switchboard {' '.join(args[:2])}: {exc.stderr.strip()}") from None


def _direct(up: Upstreams) -> Target:
    return Target(
        "direct",
        "the upstreams, no gateway",
        up.mcp_url,
        up.a2a_url,
        up.a2a_task_url,
        None,
        lambda: None,
    )


def _start_switchboard(up: Upstreams, workers: int, cpus: set[int] | None) -> Target:
    data = tempfile.mkdtemp(prefix="switchboard-bench-peers-")
    port = ports.free_port()
    argv = [*_taskset(cpus), *serve_argv(data, port, "--workers", str(workers))]
    process = harness.spawn(argv, port, timeout=90)
    try:
        # `serve --data-dir` keeps SQLite in the data dir (the default database).
        _wait_for_workers(f"sqlite+aiosqlite:///{data}/switchboard.db", process.pid, workers)
        # --gateway: the run state names the address only once every worker is up.
        where = ["--data-dir", data, "--gateway", f"http://{harness.HOST}:{port}"]
        switchboard_cli("agents", "add", up.a2a_url.rstrip("/"), "--id", "bench", *where)
        switchboard_cli("agents", "add", up.a2a_task_url.rstrip("/"), "--id", "bench-task", *where)
        switchboard_cli(
            "mcp", "add", "Bench", up.mcp_url, "--id", "bench-mcp", "--no-prefix", *where
        )
        token = switchboard_cli("token", "issue", "--data-dir", data, "--sub", "bench-user")
    except BaseException:
        harness.stop_process(process)
        shutil.rmtree(data, ignore_errors=True)
        raise

    def stop() -> None:
        harness.stop_process(process)
        shutil.rmtree(data, ignore_errors=True)

    base = f"http://{harness.HOST}:{port}"
    return Target(
        f"switchboard-{workers}",
        f"switchboard serve --dev --workers {workers} (SQLite)",
        f"{base}/mcp",
        f"{base}/a2a/bench",
        f"{base}/a2a/bench-task",
        process.pid,
        stop,
        {"Authorization": f"Bearer {token}"},
    )


# --------------------------------------------------------------------------
# ContextForge
# --------------------------------------------------------------------------


def contextforge_env(port: int, database_url: str, secret: str, prefix: str) -> dict[str, str]:
    """ContextForge's settings: its docker-compose.yml's gateway service, less
    what needs the other containers (nginx, pgbouncer, the Rust sidecars,
    plugins, observability), plus this machine's addresses."""
    return {
        "HOST": harness.HOST,
        "PORT": str(port),
        "ENVIRONMENT": "production",  # full secret-strength checks
        "DATABASE_URL": database_url,
        "CACHE_TYPE": "redis",
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "CACHE_PREFIX": prefix,
        "AUTH_REQUIRED": "true",
        "MCP_CLIENT_AUTH_ENABLED": "true",
        "MCP_REQUIRE_AUTH": "true",
        "JWT_SECRET_KEY": secret,
        "JWT_ALGORITHM": "HS256",
        "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
        "PLATFORM_ADMIN_EMAIL": ADMIN_EMAIL,
        "PLATFORM_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "REQUIRE_TOKEN_EXPIRATION": "true",
        "REQUIRE_JTI": "true",
        "MCPGATEWAY_A2A_ENABLED": "true",
        "MCPGATEWAY_UI_ENABLED": "false",  # the admin UI is not under test
        "MCPGATEWAY_ADMIN_API_ENABLED": "true",
        "TRANSPORT_TYPE": "streamablehttp",
        "SSRF_ALLOW_LOCALHOST": "true",  # the upstreams are on loopback
        "SSRF_ALLOW_PRIVATE_NETWORKS": "true",
        "LOG_LEVEL": "ERROR",
        "DISABLE_ACCESS_LOG": "true",
        "AUTH_CACHE_ENABLED": "true",
        "REGISTRY_CACHE_ENABLED": "true",
        "STRUCTURED_LOGGING_DATABASE_ENABLED": "false",
        "AUDIT_TRAIL_ENABLED": "false",
        "SECURITY_LOGGING_ENABLED": "false",
        "COMPRESSION_ENABLED": "false",
        "CORRELATION_ID_ENABLED": "false",
        "OBSERVABILITY_ENABLED": "false",
        "DB_POOL_SIZE": "20",
        "DB_MAX_OVERFLOW": "10",
        "MCP_SESSION_POOL_ENABLED": "true",
        "HTTPX_MAX_CONNECTIONS": "500",
        "HTTPX_MAX_KEEPALIVE_CONNECTIONS": "300",
        "TOOL_RATE_LIMIT": "60000",
        "TOOL_CONCURRENT_LIMIT": "1000",
        "RATE_LIMITING_ENABLED": "false",
    }


def _contextforge_api(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    import httpx

    answer = httpx.request(
        method,
        base + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    if answer.status_code >= 400:
        raise RuntimeError(
            f"ContextForge {method} {path}: {answer.status_code} {answer.text[:500]}"
        )
    return answer.json()


def _start_contextforge(
    up: Upstreams, workers: int, cpus: set[int] | None, version: str, database: str
) -> Target:
    # The postgres extra brings psycopg, for the database its compose file uses.
    bin_dir = peer_venv(
        "contextforge",
        CONTEXTFORGE_PACKAGE,
        version,
        f"{CONTEXTFORGE_PACKAGE}[postgres]=={version}",
    )
    work = Path(tempfile.mkdtemp(prefix="contextforge-bench-"))
    (work / "gunicorn_conf.py").write_text(GUNICORN_CONF)
    dropped = contextlib.ExitStack()  # the fresh database, dropped at stop()
    if database == "postgres":
        server = f"postgresql://postgres@{DATABASE_HOST}:5432"
        fresh = dropped.enter_context(fresh_database(server, f"bench_contextforge_{workers}"))
        url = fresh.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{work}/mcp.db"
    port = ports.free_port()
    secret = secrets.token_urlsafe(48)
    prefix = f"benchpeers{os.getpid()}w{workers}:"
    env = {
        **os.environ,
        **contextforge_env(port, url, secret, prefix),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(bin_dir.parent),
    }
    env.pop("PYTHONPATH", None)
    # run-gunicorn.sh's command line (its defaults: timeout 600, max-requests
    # 100000 +- 100, --preload on Linux, access log to /dev/null).
    argv = [
        *_taskset(cpus),
        str(bin_dir / "gunicorn"),
        "-c",
        str(work / "gunicorn_conf.py"),
        "--worker-class",
        "uvicorn.workers.UvicornWorker",
        "--workers",
        str(workers),
        "--timeout",
        "600",
        "--max-requests",
        "100000",
        "--max-requests-jitter",
        "100",
        "--access-logfile",
        "/dev/null",
        "--error-logfile",
        "-",
        "--forwarded-allow-ips=*",
        "--preload",
        "mcpgateway.main:app",
    ]
    # cwd: its own directory, so no .env of anyone else's is read.
    log = open(work / "gunicorn.log", "wb")  # noqa: SIM115 -- kept open for the child's life
    process = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=log)
    base = f"http://{harness.HOST}:{port}"

    def stop() -> None:
        harness.stop_process(process)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            dropped.close()

    try:
        _wait_ready(base, process, work / "gunicorn.log", workers)
        token = (
            subprocess.run(
                [
                    str(bin_dir / "python"),
                    "-m",
                    "mcpgateway.utils.create_jwt_token",
                    "--username",
                    ADMIN_EMAIL,
                    "--exp",
                    "10080",
                    "--secret",
                    secret,
                ],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        mcp_url, a2a_url, a2a_task_url = _register_contextforge(base, token, up)
    except BaseException:
        stop()
        raise
    return Target(
        f"contextforge-{workers}",
        f"ContextForge {version}, gunicorn {workers} UvicornWorker(s), {database}",
        mcp_url,
        a2a_url,
        a2a_task_url,
        process.pid,
        stop,
        {"Authorization": f"Bearer {token}"},
    )


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path, workers: int) -> None:
    """Until /health answers and every worker has started its app."""
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ContextForge exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            healthy = httpx.get(f"{base}/health", timeout=5).status_code == 200
            if healthy and (workers == 1 or len(_tree(process.pid)) > workers):
                time.sleep(3)  # the last workers' startup (migrations are locked)
                return
        time.sleep(0.5)
    raise RuntimeError(f"ContextForge not ready in 180 s:\n{log.read_text()[-3000:]}")


def _register_contextforge(base: str, token: str, up: Upstreams) -> tuple[str, str, str]:
    """The MCP server as a gateway + virtual server, the agents as A2A
    agents; returns the URLs to load (MCP, echo agent, task agent)."""
    gateway = _contextforge_api(
        base,
        token,
        "POST",
        "/gateways",
        {"name": "bench", "url": up.mcp_url, "transport": "STREAMABLEHTTP"},
    )
    tools = _contextforge_api(base, token, "GET", "/tools")
    tools = tools if isinstance(tools, list) else tools.get("items", tools.get("tools", []))
    ours = [t for t in tools if t.get("gatewayId", t.get("gateway_id")) == gateway["id"]]
    if not ours:
        raise RuntimeError(f"ContextForge found no tools on the upstream: {tools}")
    server = _contextforge_api(
        base,
        token,
        "POST",
        "/servers",
        {"server": {"name": "bench", "associated_tools": [ours[0]["id"]]}, "visibility": "public"},
    )
    for name, url in (("bench", up.a2a_url), ("bench-task", up.a2a_task_url)):
        _contextforge_api(
            base,
            token,
            "POST",
            "/a2a",
            {
                "agent": {
                    "name": name,
                    "endpoint_url": url,
                    "agent_type": "jsonrpc",
                    "protocol_version": "1.0",
                    "description": f"the bench's {name} agent",
                },
                "visibility": "public",
            },
        )
    TOOL_NAMES[f"{base}/servers/{server['id']}/mcp"] = ours[0]["name"]
    return (
        f"{base}/servers/{server['id']}/mcp",
        f"{base}/a2a/bench/jsonrpc",
        f"{base}/a2a/bench-task/jsonrpc",
    )


# The tool's name as each MCP URL lists it (ContextForge and LiteLLM prefix it).
TOOL_NAMES: dict[str, str] = {}


def _start_litellm(up: Upstreams, cpus: set[int] | None, version: str) -> Target:
    proxy = peers_litellm.start(up.mcp_url, up.a2a_url, up.a2a_task_url, _taskset(cpus), version)
    TOOL_NAMES[proxy.mcp_url] = proxy.tool
    return Target(
        "litellm-1",
        proxy.about,
        proxy.mcp_url,
        proxy.a2a_url,
        proxy.a2a_task_url,
        proxy.process.pid,
        proxy.stop,
        proxy.headers,
    )


# --------------------------------------------------------------------------
# MCP load generator (its own process), the counterpart of
# bench.a2a_forwarding's for tools/call
# --------------------------------------------------------------------------


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    return await harness.read_response(reader)


async def _mcp_load(
    url: str,
    tool: str,
    conns: int,
    warmup: float,
    seconds: float,
    headers: dict[str, str],
    pids: list[int],
) -> harness.LoadResult:
    authority, _, path = url.removeprefix("http://").partition("/")
    host, _, port = authority.partition(":")

    def request_head(session: str | None) -> bytes:
        extra = dict(headers)
        if session:
            extra["Mcp-Session-Id"] = session
            extra["MCP-Protocol-Version"] = MCP_PROTOCOL
        lines = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
        return (
            f"POST /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\n{lines}Content-Length: "
        ).encode()

    async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        initialize = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": MCP_PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "bench.peers", "version": "1"},
            },
        }
        status, got, answer = await _exchange(
            reader, writer, request_head(None), json.dumps(initialize).encode()
        )
        if status != 200 or "result" not in jsonrpc_answer(answer, got.get("content-type", "")):
            raise ValueError(f"initialize: HTTP {status} {answer[:200]!r}")
        session = got.get("mcp-session-id")
        head = request_head(session)
        # Stateless servers leave the id out; the version header still goes.
        if not session:
            head = head.replace(
                b"Content-Length: ",
                f"MCP-Protocol-Version: {MCP_PROTOCOL}\r\nContent-Length: ".encode(),
            )
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        status, _, answer = await _exchange(reader, writer, head, json.dumps(note).encode())
        if status not in (200, 202, 204):
            raise ValueError(f"notifications/initialized: HTTP {status} {answer[:200]!r}")
        return head

    async def connect() -> harness.Connection:
        reader, writer = await asyncio.open_connection(host, int(port or 80))
        return reader, writer, await handshake(reader, writer)

    def body_for(request_id: int) -> bytes:
        params = {"name": tool, "arguments": TOOL_ARGUMENTS}
        return json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
        ).encode()

    async def exchange(
        connection: harness.Connection, body: bytes
    ) -> tuple[int, bytes, bool, bool]:
        reader, writer, head = connection
        status, got, answer = await _exchange(reader, writer, head, body)
        message = jsonrpc_answer(answer, got.get("content-type", "")) if status == 200 else {}
        good = "result" in message and not message["result"].get("isError")
        return status, answer, good, got.get("connection", "").lower() == "close"

    return await harness.drive(
        connect, body_for, exchange, conns=conns, warmup=warmup, seconds=seconds, pids=pids
    )


def _mcp_load_main(config: dict[str, Any]) -> None:
    harness.run_in_event_loop(_mcp_load, config)


def _run_load(
    protocol: str, target: Target, conns: int, warmup: float, seconds: float, pids: list[int]
) -> harness.LoadResult:
    if protocol in ("a2a", "a2a-task"):
        url = target.a2a_url if protocol == "a2a" else target.a2a_task_url
        running = harness.Running(url, tuple(pids[1:]), lambda: None, target.headers)
        return harness.run_load(running, conns, warmup, seconds, pids[0])
    config = {
        "url": target.mcp_url,
        "tool": TOOL_NAMES.get(target.mcp_url, "echo"),
        "conns": conns,
        "warmup": warmup,
        "seconds": seconds,
        "headers": target.headers,
        "pids": pids,
        "cpus": sorted(harness.LAYOUT["load"] or ()),
        "parent": os.getpid(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers", "_mcp_load", json.dumps(config)],
        cwd=harness.REPO,
        capture_output=True,
        check=False,
        timeout=warmup + seconds + harness.UPSTREAM_TIMEOUT + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"MCP load generator failed:\n{done.stderr.decode()[-2000:]}")
    return harness.LoadResult(**json.loads(done.stdout))


# --------------------------------------------------------------------------
# Orchestration and the table
# --------------------------------------------------------------------------


@dataclass
class Row:
    result: harness.LoadResult
    gateway_cpu: float
    other_cpu: float
    rss_mb: float
    pss_mb: float
    load_avg: float


def _measure(
    protocol: str,
    target: Target,
    up: Upstreams,
    conns: int,
    warmup: float,
    seconds: float,
) -> Row:
    upstream = up.pid_for(protocol)
    gateway = target.pids()
    result = _run_load(protocol, target, conns, warmup, seconds, [upstream, *gateway])
    cpu = sum(result.cpu.get(str(p), 0.0) for p in gateway) if gateway else float("nan")
    ours = sum(v for k, v in result.cpu.items() if k != "machine")
    rss, pss = _memory_mb(target.pids()) if gateway else (float("nan"), float("nan"))
    return Row(
        result,
        cpu,
        max(0.0, result.cpu["machine"] - ours),
        rss,
        pss,
        os.getloadavg()[0],
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cpu_per_call(row: Row) -> float:
    return row.gateway_cpu / max(row.result.ok, 1)


def _switchboard_for(name: str, targets: list[Target]) -> str | None:
    """The Switchboard target a peer's row is set against: the same
    process-count rule (-1 with -1, recommended with recommended)."""
    if name.startswith("switchboard") or name == "direct":
        return None
    if name.endswith("-1"):
        return "switchboard-1"
    return next(
        (t.name for t in targets if t.name.startswith("switchboard") and t.name != "switchboard-1"),
        None,
    )


def _ratio(
    rows: list[Row], theirs: list[Row] | None, of: Callable[[Row, Row], float | None]
) -> str:
    """The median over the rounds of `of(switchboard's row, this row)`."""
    if theirs is None:
        return "-"
    ratios = [v for r, s in zip(rows, theirs, strict=True) if (v := of(s, r)) is not None]
    return f"{_median(ratios):.3g}" if ratios else "n/a"  # no call answered in any round


def print_table(
    runs: dict[tuple[str, int, str], list[Row]], targets: list[Target], seconds: float
) -> int:
    failed = 0
    print(
        f"\n{'protocol':<8} {'conns':>5} {'target':<16} {'calls/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} {'vs SB':>6} {'gw µs/call':>10} {'SB÷ cpu':>7} "
        f"{'RSS MB':>7} {'PSS MB':>7} {'load1':>5} {'other %':>7}"
    )
    for (protocol, conns, name), rows in runs.items():
        failed += any(r.result.errors or not r.result.ok for r in rows)
        rate = _median([r.result.ok / seconds for r in rows])
        peer = _switchboard_for(name, targets)
        theirs = runs.get((protocol, conns, peer)) if peer else None
        speed = _ratio(
            rows, theirs, lambda s, r: s.result.ok / r.result.ok if r.result.ok else None
        )
        cpu = _ratio(
            rows,
            theirs,
            lambda s, r: _cpu_per_call(s) / _cpu_per_call(r) if r.result.ok else None,
        )
        print(
            f"{protocol:<8} {conns:>5} {name:<16} {rate:>8.0f} "
            f"{_median([r.result.p50_ms for r in rows]):>7.2f} "
            f"{_median([r.result.p99_ms for r in rows]):>7.2f} "
            f"{sum(r.result.errors for r in rows):>6} {speed:>6} "
            f"{_median([_cpu_per_call(r) * 1e6 for r in rows]):>10.0f} {cpu:>7} "
            f"{_median([r.rss_mb for r in rows]):>7.0f} {_median([r.pss_mb for r in rows]):>7.0f} "
            f"{_median([r.load_avg for r in rows]):>5.2f} "
            f"{max(r.other_cpu / seconds * 100 for r in rows):>7.0f}"
        )
        for r in rows:
            if r.result.error_sample:
                print(f"    e.g. {r.result.error_sample[:300]}")
                break
    print(
        "\nvs SB: Switchboard's calls/s over the target's (above 1: the target is slower); "
        "SB÷ cpu: Switchboard's CPU per call over the target's (below 1: Switchboard spends "
        "less). Medians of per-round ratios; -1 targets against switchboard-1, recommended "
        "against recommended."
    )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--conns", default="1,32")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="mcp, a2a, a2a-task")
    parser.add_argument("--contextforge-version", default=CONTEXTFORGE_VERSION)
    parser.add_argument("--contextforge-db", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument("--litellm-version", default=peers_litellm.LITELLM_VERSION)
    parser.add_argument(
        "--targets",
        help="comma-separated subset (default: direct, switchboard-1, contextforge-1, "
        "litellm-1, switchboard-<cores>, contextforge-<2 x cores + 1>)",
    )
    parser.add_argument("--no-pin", action="store_true")
    ports.add_argument(parser)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    cores = len(cpus)
    pinned = not args.no_pin and cores >= 2
    first = {cpus[0]} if pinned else None
    one = {cpus[1]} if pinned else None
    every = set(cpus) if pinned else None
    harness.LAYOUT.update(load=first, agent=first)
    sb_recommended = cores  # docs/configuration.md: one worker per core
    cf_recommended = min(2 * cores + 1, 16)  # run-gunicorn.sh's "auto"
    starters: dict[str, Callable[[Upstreams], Target]] = {
        "direct": _direct,
        "switchboard-1": lambda up: _start_switchboard(up, 1, one),
        "contextforge-1": lambda up: _start_contextforge(
            up, 1, one, args.contextforge_version, args.contextforge_db
        ),
        "litellm-1": lambda up: _start_litellm(up, one, args.litellm_version),
        f"switchboard-{sb_recommended}": lambda up: _start_switchboard(up, sb_recommended, every),
        f"contextforge-{cf_recommended}": lambda up: _start_contextforge(
            up, cf_recommended, every, args.contextforge_version, args.contextforge_db
        ),
    }
    chosen = args.targets.split(",") if args.targets else list(starters)
    levels = [int(c) for c in args.conns.split(",")]
    protocols = args.protocols.split(",")
    if unknown := [p for p in protocols if p not in PROTOCOLS]:
        parser.error(f"unknown protocol(s) {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    runs: dict[tuple[str, int, str], list[Row]] = {}
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(_upstreams(first))
        targets = []
        for name in chosen:
            print(f"starting {name}", file=sys.stderr)
            target = starters[name](up)
            stack.callback(target.stop)
            targets.append(target)
        harness.pin(os.getpid(), first)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}, load average {os.getloadavg()}", file=sys.stderr)
            for protocol in protocols:
                for conns in levels:
                    for target in targets:
                        row = _measure(protocol, target, up, conns, args.warmup, args.seconds)
                        runs.setdefault((protocol, conns, target.name), []).append(row)
                        print(
                            f"  {protocol} {conns} {target.name}: "
                            f"{row.result.ok / args.seconds:.0f}/s, {row.result.errors} errors "
                            f"{row.result.error_sample[:200]}",
                            file=sys.stderr,
                        )
    load_avg = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"\n{cores} CPUs, load average at the end {load_avg}; {args.rounds} rounds of {args.seconds:g} s"
    )
    print(
        f"load + upstreams on CPU {sorted(first or ())}; one-process gateways on {sorted(one or ())}, "
        f"others on {sorted(every or ())}"
        if pinned
        else "processes placed by the kernel"
    )
    for target in targets:
        print(f"  {target.name:<16} {target.about}")
    return print_table(runs, targets, args.seconds)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_mcp_load":
        _mcp_load_main(json.loads(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
