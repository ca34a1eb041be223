"""What forwarding one A2A call costs, by HTTP client library.

    python -m bench.a2a_forwarding                      # every leg, 1 and 32 connections
    python -m bench.a2a_forwarding --agent sdk,stub --rounds 3
    python -m bench.a2a_forwarding --seconds 5 --legs direct,aiohttp,httpx-limits

The upstream is an A2A 1.0 agent built with the official a2a-sdk (an executor
that answers every SendMessage with one Message) under uvicorn. Each leg puts
a minimal reverse proxy in front of it that POSTs the same body to the agent
and returns the agent's body; a separate load process sends JSON-RPC
SendMessage over keep-alive connections for a fixed time and checks every
answer is a 200 carrying a JSON-RPC "result" (a row with any other answer is
flagged and left out of the ratios).

Baseline, measured in the same run: a minimal aiohttp forwarder (aiohttp.web
plus one shared ClientSession). The gateway is a FastAPI app under uvicorn, so
the uvicorn legs show what each *client* library costs relative to it when the
server side is fixed. `direct` (no forwarder) shows the agent's own cost.

The SDK agent costs more CPU per call than the aiohttp forwarder, so with it
the legs at 32 connections are capped by the agent (`agent %` near 100) and
the ratios mostly measure latency. `--agent stub` swaps in a bare ASGI app
that answers the same way for a fraction of the CPU, which leaves the
forwarder as the bottleneck; `--agent slow` is that app taking 50 ms per
answer, like an agent doing real work, so that many calls are in flight in
the forwarder at once (try `--conns 32,256`): connection pools whose cost
grows with the number of requests in flight show there. `fwd µs/req`
(forwarder CPU per request) is steadier than req/s on a noisy machine, though
it grows when the rate is low (wake-ups are paid per request). `other %` is
CPU that processes outside the run took meanwhile (a test suite, an install):
a row with much of it was disturbed and should be run again. `--rounds N`
repeats every leg and prints medians, the ratios taken within each round.

Every process is a child of this one: the agent and each forwarder are
`python -m bench.a2a_forwarding _serve <role> ...`, the load generator is
`... _load <json>`. Legs run one after another, each against a freshly started
agent, so no leg inherits another's state or competes with it. Unless
`--no-pin`, the load generator and the agent share one CPU and the forwarder
gets another (see LAYOUT).

Adding a leg (e.g. the gateway itself): write a function that takes the
agent's JSON-RPC URL, starts whatever sits in front of it and returns a
`Running` (the URL to load, the pids whose CPU to report, any headers the load
must send such as `Authorization`, and a `stop` callback), then register it:

    def _start_gateway(upstream_url: str) -> Running:
        port = ports.free_port()
        process = spawn([sys.executable, "-m", "gateway.cli", "serve", ...], port)
        pin(process.pid, LAYOUT["forwarder"])
        ...  # register the agent at upstream_url, mint a token
        return Running(url, (process.pid,), stop=lambda: stop_process(process),
                       headers={"Authorization": f"Bearer {token}"})

    LEGS["gateway"] = Leg(_start_gateway, "the Switchboard gateway")

`spawn` waits until the port accepts connections and raises with the child's
stderr if it exits first; `stop` must leave no process behind. A leg that
raises is reported as FAILED in its rows and the other legs still run.
bench/a2a_gateway.py adds the gateway this way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench import asgi_stub, ports
from bench.proc_cpu import cpu_seconds

if TYPE_CHECKING:
    from starlette.applications import Starlette

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
# Request headers a forwarder passes on; the gateway sends the same set upstream.
SDK_TYPES = "uvicorn-sdk-types"
FORWARDED = ("content-type", "accept", "a2a-version", "a2a-extensions", "authorization")
# The gateway reads upstream answers as a stream with a size cap; forwarders do
# too, so each library is measured on the code path the gateway would use.
MAX_BYTES = 1 << 20
UPSTREAM_TIMEOUT = 30.0
# Raised limits for the legs that tune the pool, as adapters/http.py gives its
# httpx transport: more connections, and more kept alive, than the load's
# concurrency, so no request waits for a connection and none is closed after
# use (httpx's default keeps only 20 idle). aiohttp keeps every idle one.
MAX_CONNECTIONS = 256
MAX_KEEPALIVE = 64
BASELINE = "aiohttp"
DIRECT = "direct"
SLOW_AGENT_SECONDS = 0.05


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: uvicorn and aiohttp both shut down cleanly
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def spawn(
    argv: list[str],
    port: int,
    timeout: float = 30.0,
    cwd: str | Path = REPO,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server process (in ``cwd``, with ``env``: default this process's
    environment) and return once its port accepts connections."""
    # stderr to a file, not a pipe: nobody reads a pipe while the load runs,
    # and a server that logged a pipe's worth would block mid-measurement.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                tail = log.read()[-2000:].decode(errors="replace")
                raise RuntimeError(
                    f"{' '.join(argv[2:])} exited with {process.returncode}:\n{tail}"
                )
            with socket.socket() as s:
                if s.connect_ex((HOST, port)) == 0:
                    return process  # the child keeps its own handle on the file
            time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"{' '.join(argv[2:])} did not listen on {port} within {timeout:.0f} s")


def _serve_argv(role: str, port: int, upstream_url: str = "") -> list[str]:
    parent = str(os.getpid())
    return [
        sys.executable,
        "-m",
        "bench.a2a_forwarding",
        "_serve",
        role,
        str(port),
        upstream_url,
        parent,
    ]


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGTERM this process if the harness dies (Linux), so an
    interrupted or killed run leaves no servers behind."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict every thread of a process to `cpus` (None: leave it alone)."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


# Where processes run unless --no-pin. Left to the kernel, loopback peers get
# pulled onto each other's CPU on wake-up some runs and not others: on the
# 2-core VM this was written on, `direct` at 32 conns swung between 12k and
# 22k req/s unpinned and between 10.6k and 12.1k pinned. Pinned, the load generator
# and the agent share the first CPU in every leg and the forwarder under test
# has the second to itself, so a costlier client shows as fewer req/s.
LAYOUT: dict[str, set[int] | None] = {"load": None, "agent": None, "forwarder": None}


@dataclass
class Running:
    """A started leg: where the load goes and how to tear it down."""

    url: str
    pids: tuple[int, ...]  # processes whose CPU is reported as the forwarder's
    stop: Callable[[], None]
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request


@dataclass(frozen=True)
class Leg:
    start: Callable[[str], Running]  # given the agent's JSON-RPC URL
    about: str
    requires: tuple[str, ...] = ()  # importable modules; a leg without them is skipped


def _forwarder(role: str) -> Callable[[str], Running]:
    def start(upstream_url: str) -> Running:
        port = ports.free_port()
        process = spawn(_serve_argv(role, port, upstream_url), port)
        pin(process.pid, LAYOUT["forwarder"])
        return Running(f"http://{HOST}:{port}/", (process.pid,), lambda: stop_process(process))

    return start


def _direct(upstream_url: str) -> Running:
    return Running(upstream_url, (), lambda: None)


LEGS: dict[str, Leg] = {
    DIRECT: Leg(_direct, "no forwarder: the agent alone"),
    BASELINE: Leg(
        _forwarder("aiohttp"), "aiohttp.web + aiohttp.ClientSession (baseline)", ("aiohttp",)
    ),
    "httpx": Leg(_forwarder("httpx"), "uvicorn + httpx.AsyncClient, default limits"),
    "httpx-limits": Leg(
        _forwarder("httpx-limits"),
        f"uvicorn + httpx.AsyncClient, limits {MAX_CONNECTIONS}/{MAX_KEEPALIVE} kept alive",
    ),
    "httpx-aiohttp": Leg(
        _forwarder("httpx-aiohttp"),
        "uvicorn + httpx.AsyncClient over httpx_aiohttp.AiohttpTransport",
        ("aiohttp", "httpx_aiohttp"),
    ),
    "httpx2": Leg(
        _forwarder("httpx2"), "uvicorn + httpx2.AsyncClient, default limits", ("httpx2",)
    ),
    "httpx2-limits": Leg(
        _forwarder("httpx2-limits"),
        f"uvicorn + httpx2.AsyncClient, limits {MAX_CONNECTIONS}/{MAX_KEEPALIVE} kept alive",
        ("httpx2",),
    ),
    "httpx2-aiohttp": Leg(
        _forwarder("httpx2-aiohttp"),
        "uvicorn + httpx2.AsyncClient over httpx_aiohttp.httpx2.AiohttpTransport",
        ("httpx2", "aiohttp", "httpx_aiohttp"),
    ),
    "uvicorn-aiohttp": Leg(
        _forwarder("uvicorn-aiohttp"), "uvicorn + aiohttp.ClientSession", ("aiohttp",)
    ),
    SDK_TYPES: Leg(
        _forwarder(SDK_TYPES),
        "uvicorn + aiohttp.ClientSession + the a2a-sdk's types both ways (no auth, policy, audit)",
        ("aiohttp",),
    ),
}


# --------------------------------------------------------------------------
# Servers (run in child processes; third-party imports stay local so each
# process loads only the libraries it measures)
# --------------------------------------------------------------------------


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _run_uvicorn(app: Starlette | Callable[..., Awaitable[None]], port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=HOST,
        port=port,
        http="httptools" if _has("httptools") else "h11",
        loop="uvloop" if _has("uvloop") else "asyncio",
        access_log=False,
        log_level="warning",
    )


def _serve_agent(port: int, answer: str = "message") -> None:
    """The a2a-sdk agent. ``answer="message"``: one Message (the echo path);
    ``"task"``: a Task, a working status update and a completed one carrying
    the answer, the shape real agents answer in (the SDK's TaskUpdater)."""
    from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
    from starlette.applications import Starlette

    class Echo(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            text = f"echo: {context.get_user_input()}"
            if answer == "message":
                await event_queue.enqueue_event(new_text_message(text))
                return
            assert context.message is not None
            task = context.current_task or new_task_from_user_message(context.message)
            if context.current_task is None:
                await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.start_work()
            await updater.complete(updater.new_agent_message([new_text_part(text)]))

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            raise NotImplementedError

    card = AgentCard(
        name="Echo",
        description="Echoes the text it is sent.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(
                url=f"http://{HOST}:{port}/", protocol_binding="JSONRPC", protocol_version="1.0"
            )
        ],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="Echo text.", tags=["echo"])],
    )
    handler = DefaultRequestHandler(
        agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/")
    _run_uvicorn(Starlette(routes=routes), port)


def _stub_card(port: int) -> dict[str, Any]:
    """The SDK agent's card, in A2A 1.0 JSON."""
    return {
        "name": "Echo",
        "description": "Echoes the text it is sent.",
        "version": "1.0.0",
        "supportedInterfaces": [
            {
                "url": f"http://{HOST}:{port}/",
                "protocolBinding": "JSONRPC",
                "protocolVersion": "1.0",
            }
        ],
        "capabilities": {"streaming": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "echo", "name": "Echo", "description": "Echo text.", "tags": ["echo"]}],
    }


def _serve_stub_agent(port: int, delay: float = 0.0) -> None:
    """A bare ASGI app answering SendMessage the way the SDK agent does (same
    header checked, same answer shape and size) at a fraction of its CPU, so
    the agent stops being the bottleneck and forwarder costs show in req/s."""

    async def app(scope: dict[str, Any], receive: asgi_stub.Receive, send: asgi_stub.Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_stub.lifespan(receive, send)
            return
        if scope["method"] == "GET":
            # The card, so the gateway leg can register the stub like any agent.
            await asgi_stub.respond(send, json.dumps(_stub_card(port)).encode())
            return
        request = await asgi_stub.read_request(receive)
        if delay:
            await asyncio.sleep(delay)
        if (b"a2a-version", b"1.0") in scope["headers"]:
            text = " ".join(p.get("text", "") for p in request["params"]["message"]["parts"])
            result = {
                "message": {
                    "messageId": str(uuid.uuid4()),
                    "role": "ROLE_AGENT",
                    "parts": [{"text": f"echo: {text}"}],
                }
            }
            answer = {"result": result, "id": request["id"], "jsonrpc": "2.0"}
        else:
            error = {"code": -32009, "message": "A2A version '0.3' is not supported"}
            answer = {"error": error, "id": request["id"], "jsonrpc": "2.0"}
        await asgi_stub.respond(send, json.dumps(answer, separators=(",", ":")).encode())

    _run_uvicorn(app, port)


def _serve_aiohttp(port: int, upstream_url: str) -> None:
    import aiohttp
    from aiohttp import web

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT),
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        ) as session:
            app[session_key] = session
            yield

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
        async with request.app[session_key].post(upstream_url, data=body, headers=headers) as up:
            payload = await _read_aiohttp(up)
            return web.Response(
                body=payload,
                status=up.status,
                headers={"Content-Type": up.headers.get("Content-Type", "application/json")},
            )

    session_key = web.AppKey("session", aiohttp.ClientSession)
    app = web.Application()
    app.cleanup_ctx.append(session_context)
    app.router.add_post("/", forward)
    loop = None
    if _has("uvloop"):
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host=HOST, port=port, access_log=None, print=None, loop=loop)


async def _read_aiohttp(response: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_BYTES:
            raise RuntimeError("upstream answer too large")
        chunks.append(chunk)
    return b"".join(chunks)


class Upstream(Protocol):
    """The one call a forwarder makes: POST a body, get (status, type, body)."""

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]: ...

    async def aclose(self) -> None: ...


class _HttpxUpstream:
    """httpx or httpx2 (same API), used the way adapters/a2a.py uses httpx:
    build_request + send(stream=True) + aiter_bytes under a size cap."""

    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self._url = url

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        request = self._client.build_request("POST", self._url, content=body, headers=headers)
        response = await self._client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise RuntimeError("upstream answer too large")
                chunks.append(chunk)
        finally:
            await response.aclose()
        content_type: str = response.headers.get("content-type", "application/json")
        return response.status_code, content_type, b"".join(chunks)

    async def aclose(self) -> None:
        await self._client.aclose()


class _AiohttpUpstream:
    def __init__(self, url: str) -> None:
        import aiohttp

        self._url = url
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT),
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        )

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        async with self._session.post(self._url, data=body, headers=headers) as response:
            payload = await _read_aiohttp(response)
            content_type = response.headers.get("Content-Type", "application/json")
            return response.status, content_type, payload

    async def aclose(self) -> None:
        await self._session.close()


def _upstream_client(role: str, url: str) -> Upstream:
    """Built inside the server's lifespan: aiohttp sessions need a running loop."""
    # Each client as the gateway would configure it: no proxies from the
    # environment, no redirects, a generous timeout so none fires under load.
    if role in ("httpx", "httpx-limits", "httpx-aiohttp"):
        import httpx

        tuned = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE
        )
        # httpx's own default, spelled out: 100 connections, 20 kept alive.
        default = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        transport: httpx.AsyncBaseTransport | None = None
        if role == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            # The transport builds its own aiohttp session; of the limits only
            # max_connections carries over. This is the leg for the gateway as
            # it stands: adapters/http.py's PinnedTransport takes any httpx
            # transport as `inner`, and the a2a-sdk's client transports need an
            # httpx.AsyncClient on top.
            transport = AiohttpTransport(limits=tuned, trust_env=False)
        client = httpx.AsyncClient(
            timeout=UPSTREAM_TIMEOUT,
            trust_env=False,
            follow_redirects=False,
            limits=tuned if role == "httpx-limits" else default,
            transport=transport,
        )
        return _HttpxUpstream(client, url)
    if role in ("httpx2", "httpx2-limits", "httpx2-aiohttp"):
        import httpx2

        tuned2 = httpx2.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE
        )
        default2 = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
        transport2: httpx2.AsyncBaseTransport | None = None
        if role == "httpx2-aiohttp":
            from httpx_aiohttp.httpx2 import AiohttpTransport as Aiohttp2Transport

            transport2 = Aiohttp2Transport(limits=tuned2, trust_env=False)
        client2 = httpx2.AsyncClient(
            timeout=UPSTREAM_TIMEOUT,
            trust_env=False,
            follow_redirects=False,
            limits=tuned2 if role == "httpx2-limits" else default2,
            transport=transport2,
        )
        return _HttpxUpstream(client2, url)
    if role in ("uvicorn-aiohttp", SDK_TYPES):
        return _AiohttpUpstream(url)
    raise ValueError(f"no such forwarder: {role}")


def _serve_uvicorn_forwarder(role: str, port: int, upstream_url: str) -> None:
    # Starlette, not FastAPI: the same ASGI stack the gateway sits on, minus
    # FastAPI's routing and validation, which is a server cost, not a client one.
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    clients: list[Upstream] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        clients.append(_upstream_client(role, upstream_url))
        try:
            yield
        finally:
            await clients[0].aclose()

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
        if role == SDK_TYPES:
            body = _through_sdk_types(body, "params")
        status, content_type, payload = await clients[0].post(body, headers)
        if role == SDK_TYPES:
            payload = _through_sdk_types(payload, "result")
        return Response(payload, status_code=status, headers={"content-type": content_type})

    app = Starlette(routes=[Route("/", forward, methods=["POST"])], lifespan=lifespan)
    _run_uvicorn(app, port)


def _through_sdk_types(document: bytes, member: str) -> bytes:
    """What any A2A proxy built on the a2a-sdk does with a SendMessage and its
    answer, and no more: the member parsed into the SDK's protobuf type (the
    request also checked for the proto's required fields, as the SDK's server
    does) and the envelope re-encoded from it -- the pass-through's protocol
    work (`gateway.agents.passthrough`) without its authentication, decision,
    minted token, ownership checks and audit. The floor of the SDK's types on
    this server stack."""
    from a2a.types import SendMessageRequest, SendMessageResponse
    from a2a.utils.proto_utils import parse_lenient, validate_proto_required_fields
    from google.protobuf.json_format import MessageToDict, ParseDict

    envelope = json.loads(document)
    if member == "params":
        params = ParseDict(envelope["params"], SendMessageRequest(), ignore_unknown_fields=True)
        validate_proto_required_fields(params)
        envelope["params"] = MessageToDict(params)
    else:
        envelope["result"] = MessageToDict(parse_lenient(envelope["result"], SendMessageResponse()))
    return json.dumps(envelope, separators=(",", ":")).encode()


def _serve(role: str, port: int, upstream_url: str) -> None:
    if role == "agent-sdk":
        _serve_agent(port)
    elif role == "agent-task":
        _serve_agent(port, answer="task")
    elif role == "agent-stub":
        _serve_stub_agent(port)
    elif role == "agent-slow":
        _serve_stub_agent(port, SLOW_AGENT_SECONDS)
    elif role == "aiohttp":
        _serve_aiohttp(port, upstream_url)
    else:
        _serve_uvicorn_forwarder(role, port, upstream_url)


# --------------------------------------------------------------------------
# Load generator (its own process): raw HTTP/1.1 over asyncio streams, the
# cheapest client there is, so it takes as little of the 2 cores as possible.
# --------------------------------------------------------------------------


@dataclass
class LoadResult:
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    # CPU seconds over the measured window, by pid; "self": the load generator,
    # "machine": all CPUs together, so what nobody here used was someone else's.
    cpu: dict[str, float]
    error_sample: str = ""


def _cpu_seconds(pid: int | str) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return float("nan")


def _machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent running processes, or stolen by the
    hypervisor: what a run shares with, and loses to, anything else. Interrupt
    time is left out: loopback traffic is handled there, and it would show up
    as someone else's when it is this run's own."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(v) for v in first)
    return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer off a keep-alive connection: status, headers (names
    lowered), body (chunked or by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


# A connection of the load: its reader, its writer, and what else the
# protocol keeps for it (an MCP session's request head, say).
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]


async def drive(
    connect: Callable[[], Awaitable[Connection]],
    body_for: Callable[[int], bytes],
    exchange: Callable[[Connection, bytes], Awaitable[tuple[int, bytes, bool, bool]]],
    *,
    conns: int,
    warmup: float,
    seconds: float,
    pids: list[int],
) -> LoadResult:
    """``conns`` keep-alive connections sending one request after another for
    ``warmup`` + ``seconds``; what is answered in the window is counted.
    ``body_for(request id)`` makes a request's body (outside the timing);
    ``exchange`` sends it and says (status, answer, good, close the connection)."""
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    clock = time.perf_counter
    start = clock() + warmup
    end = start + seconds
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(1, 1 << 62))

    async def worker() -> None:
        connection: Connection | None = None
        while clock() < end:
            try:
                if connection is None:
                    connection = await connect()
                body = body_for(next(counter))
                sent = clock()
                async with asyncio.timeout(UPSTREAM_TIMEOUT):
                    status, answer, good, close = await exchange(connection, body)
                done = clock()
                if close:
                    connection[1].close()
                    connection = None
                if start <= done <= end:
                    if good:
                        latencies.append(done - sent)
                    else:
                        errors.append(f"HTTP {status}: {answer[:200]!r}")
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ValueError,
            ) as exc:
                if connection is not None:
                    connection[1].close()
                    connection = None
                if start <= clock() <= end:
                    errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)  # no hot loop against a dead server
        if connection is not None:
            connection[1].close()

    window = asyncio.create_task(cpu_window(pids, start, end, clock))
    await asyncio.gather(*(worker() for _ in range(conns)))
    return load_result(latencies, errors, seconds, await window)


async def cpu_window(
    pids: list[int], start: float, end: float, clock: Callable[[], float]
) -> dict[str, float]:
    """CPU seconds between ``start`` and ``end`` (on ``clock``), by pid;
    "self": this process; "machine": all CPUs together."""
    watched: list[int | str] = [*pids, "self"]
    await asyncio.sleep(max(0.0, start - clock()))
    before = {str(p): _cpu_seconds(p) for p in watched}
    before["machine"] = _machine_busy_seconds()
    await asyncio.sleep(max(0.0, end - clock()))
    after = {str(p): _cpu_seconds(p) for p in watched}
    after["machine"] = _machine_busy_seconds()
    return {p: after[p] - before[p] for p in before}


def load_result(
    latencies: list[float], errors: list[str], seconds: float, cpu: dict[str, float]
) -> LoadResult:
    """A load's answers counted in its window, as every load process reports them."""
    ordered = sorted(latencies) or [float("nan")]
    return LoadResult(
        ok=len(latencies),
        errors=len(errors),
        seconds=seconds,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=_percentile(ordered, 99) * 1000,
        cpu=cpu,
        error_sample=errors[0] if errors else "",
    )


def run_in_event_loop(
    load: Callable[..., Coroutine[Any, Any, LoadResult]], config: dict[str, Any]
) -> None:
    """A load process's main: gone with its parent, pinned, ``load(**config)``
    on uvloop where installed, its result printed as JSON for the parent."""
    _die_with_parent(config.pop("parent"))
    if cpus := config.pop("cpus"):
        os.sched_setaffinity(0, cpus)
    if _has("uvloop"):
        import uvloop

        result = uvloop.run(load(**config))
    else:
        result = asyncio.run(load(**config))
    print(json.dumps(dataclasses.asdict(result)))


async def _load(
    url: str, conns: int, warmup: float, seconds: float, headers: dict[str, str], pids: list[int]
) -> LoadResult:
    rest = url.removeprefix("http://")
    authority, _, path = rest.partition("/")
    host, _, port_text = authority.partition(":")
    port = int(port_text or "80")
    # Without A2A-Version: 1.0 an a2a-sdk agent takes the call for 0.3 and
    # answers -32009. A leg's own headers override these.
    merged = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "A2A-Version": "1.0",
    }
    merged = {k: v for k, v in merged.items() if k.lower() not in {h.lower() for h in headers}}
    lines = "".join(f"{k}: {v}\r\n" for k, v in (merged | headers).items())
    head = f"POST /{path} HTTP/1.1\r\nHost: {authority}\r\n{lines}Content-Length: ".encode()

    async def connect() -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return reader, writer, None

    def body_for(request_id: int) -> bytes:
        message = {
            "messageId": str(uuid.uuid4()),
            "role": "ROLE_USER",
            "parts": [{"text": "hello"}],
        }
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "SendMessage",
                "params": {"message": message},
            }
        ).encode()

    async def exchange(connection: Connection, body: bytes) -> tuple[int, bytes, bool, bool]:
        reader, writer, _ = connection
        writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status, headers, answer = await read_response(reader)
        close = headers.get("connection", "").lower() == "close"
        return status, answer, status == 200 and b'"result"' in answer, close

    return await drive(
        connect, body_for, exchange, conns=conns, warmup=warmup, seconds=seconds, pids=pids
    )


def _load_main(config: dict[str, Any]) -> None:
    run_in_event_loop(_load, config)


def run_load(
    running: Running, conns: int, warmup: float, seconds: float, agent_pid: int
) -> LoadResult:
    config = {
        "url": running.url,
        "conns": conns,
        "warmup": warmup,
        "seconds": seconds,
        "headers": running.headers,
        "pids": [agent_pid, *running.pids],
        "cpus": sorted(LAYOUT["load"] or ()),
        "parent": os.getpid(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.a2a_forwarding", "_load", json.dumps(config)],
        cwd=REPO,
        capture_output=True,
        check=False,
        timeout=warmup + seconds + UPSTREAM_TIMEOUT + 30,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr.decode()[-2000:]}")
    return LoadResult(**json.loads(done.stdout))


# --------------------------------------------------------------------------
# Orchestration and the table
# --------------------------------------------------------------------------


AGENTS = {
    "sdk": "an a2a-sdk agent (DefaultRequestHandler, InMemoryTaskStore) under uvicorn",
    "task": "the a2a-sdk agent answering with a task, a working and a completed status update",
    "stub": "a bare ASGI app answering like the a2a-sdk agent, under uvicorn",
    "slow": f"the bare ASGI app, answering after {SLOW_AGENT_SECONDS * 1000:g} ms",
}


@dataclass
class Row:
    leg: str
    conns: int
    round: int
    result: LoadResult | None  # None: skipped
    agent_cpu: float = float("nan")  # CPU seconds over the measured window
    forwarder_cpu: float = float("nan")
    other_cpu: float = float("nan")  # used by processes outside this run
    note: str = ""


def measure_leg(
    name: str, agent_kind: str, conn_levels: list[int], warmup: float, seconds: float, round_: int
) -> list[Row]:
    leg = LEGS[name]
    missing = [m for m in leg.requires if not _has(m)]
    if missing:
        note = f"skipped: no {', '.join(missing)}"
        return [Row(name, c, round_, None, note=note) for c in conn_levels]
    rows: list[Row] = []
    try:
        # A fresh agent per leg: no leg inherits the task store, pool or heap
        # another leg left behind.
        agent_port = ports.free_port()
        agent = spawn(_serve_argv(f"agent-{agent_kind}", agent_port), agent_port)
        try:
            pin(agent.pid, LAYOUT["agent"])
            running = leg.start(f"http://{HOST}:{agent_port}/")
            try:
                for conns in conn_levels:
                    result = run_load(running, conns, warmup, seconds, agent.pid)
                    forwarder = (
                        sum(result.cpu[str(p)] for p in running.pids)
                        if running.pids
                        else float("nan")
                    )
                    agent_cpu = result.cpu[str(agent.pid)]
                    ours = sum(v for k, v in result.cpu.items() if k != "machine")
                    other = max(0.0, result.cpu["machine"] - ours)
                    rows.append(Row(name, conns, round_, result, agent_cpu, forwarder, other))
                    print(
                        f"  round {round_ + 1}, {agent_kind} agent, {name}, {conns} conns: "
                        f"{result.ok / seconds:.0f} req/s, {result.errors} errors",
                        file=sys.stderr,
                    )
            finally:
                running.stop()
        finally:
            stop_process(agent)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        # One broken leg (a server that would not start, a load process that
        # crashed) is reported in its row; the other legs still run.
        print(f"  round {round_ + 1}, {agent_kind} agent, {name}: FAILED {exc}", file=sys.stderr)
        done = {r.conns for r in rows}
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        rows += [
            Row(name, c, round_, None, note=f"FAILED: {first_line}")
            for c in conn_levels
            if c not in done
        ]
    return rows


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in (
        "a2a-sdk",
        "uvicorn",
        "starlette",
        "httptools",
        "uvloop",
        "aiohttp",
        "httpx",
        "httpcore",
        "httpx-aiohttp",
        "httpx2",
        "httpcore2",
    ):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{package} {version(package)}")
    return ", ".join(found)


def _fmt(value: float, spec: str, width: int) -> str:
    return f"{'-' if value != value else format(value, spec):>{width}}"  # NaN: not measured


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(rows: list[Row], agent_kind: str, seconds: float, rounds: int) -> int:
    """One line per (leg, conns): medians over rounds. The ratio is taken
    within each round first, so a round that was slow for every leg (a noisy
    neighbour) does not skew it."""
    groups: dict[tuple[str, int], dict[int, Row]] = {}
    for r in rows:
        groups.setdefault((r.leg, r.conns), {})[r.round] = r

    def clean(r: Row | None) -> LoadResult | None:
        return r.result if r and r.result and r.result.ok and not r.result.errors else None

    per_round = "" if rounds == 1 else f", median of {rounds} rounds"
    print(f"\nagent: {AGENTS[agent_kind]}; {seconds:g} s per row{per_round}")
    print(
        f"{'leg':<15} {'conns':>5} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'x aiohttp':>9} "
        f"{'+p50 ms':>8} {'agent %':>7} {'fwd %':>7} {'load %':>7} {'other %':>7} "
        f"{'fwd µs/req':>10}"
    )
    failed = 0
    for (leg, conns), by_round in groups.items():
        measured = [(n, r, r.result) for n, r in by_round.items() if r.result is not None]
        for n, r in by_round.items():
            if r.result is None:
                failed += r.note.startswith("FAILED")
                print(
                    f"{leg:<15} {conns:>5} {r.note}" + (f" (round {n + 1})" if rounds > 1 else "")
                )
        if not measured:
            continue
        base, direct = groups.get((BASELINE, conns), {}), groups.get((DIRECT, conns), {})
        ratios = [
            res.ok / b.ok
            for n, _, res in measured
            if not res.errors and (b := clean(base.get(n))) is not None
        ]
        direct_p50 = [d.p50_ms for r in direct.values() if (d := clean(r)) is not None]
        results = [res for _, _, res in measured]
        cpu_rows = [r for _, r, _ in measured]

        def share(cpu_seconds: list[float]) -> str:
            return _fmt(_median(cpu_seconds) / seconds * 100, ".0f", 7)

        p50 = _median([res.p50_ms for res in results])
        added = p50 - _median(direct_p50) if leg != DIRECT else float("nan")
        fwd_us = [r.forwarder_cpu / res.ok * 1e6 for _, r, res in measured if res.ok]
        print(
            f"{leg:<15} {conns:>5} {_median([res.ok / seconds for res in results]):>7.0f} "
            f"{p50:>7.2f} {_median([res.p99_ms for res in results]):>7.2f} "
            f"{_fmt(_median(ratios), '.2f', 9)} {_fmt(added, '+.2f', 8)} "
            f"{share([r.agent_cpu for r in cpu_rows])} "
            f"{share([r.forwarder_cpu for r in cpu_rows])} "
            f"{share([res.cpu['self'] for res in results])} "
            f"{share([r.other_cpu for r in cpu_rows])} "
            f"{_fmt(_median(fwd_us), '.0f', 10)}"
        )
        for n, _, res in measured:
            if res.errors or not res.ok:
                failed += 1
                print(
                    f"{'':<15} ^ round {n + 1}: {res.errors} ERRORS, {res.ok} ok; "
                    f"first: {res.error_sample}"
                )
    return failed


def main(
    legs: list[str],
    agents: list[str],
    conn_levels: list[int],
    warmup: float,
    seconds: float,
    rounds: int = 1,
) -> int:
    tables = {
        kind: [
            row
            for round_ in range(rounds)
            for leg in legs
            for row in measure_leg(leg, kind, conn_levels, warmup, seconds, round_)
        ]
        for kind in agents
    }
    pinned = (
        f"load + agent on CPU {LAYOUT['load']}, forwarder on CPU {LAYOUT['forwarder']}"
        if LAYOUT["forwarder"]
        else "processes unpinned"
    )
    print(f"\nA2A SendMessage forwarding, {os.cpu_count()} cores, {pinned}\n{_versions()}")
    failed = sum(print_table(rows, kind, seconds, rounds) for kind, rows in tables.items())
    print("\nlegs:")
    for leg in legs:
        print(f"  {leg:<15} {LEGS[leg].about}")
    print(
        "\nx aiohttp: req/s over the aiohttp forwarder's at the same conns; +p50 ms: over direct."
        "\n%: CPU over the measured window, 100 = one core; other: processes outside this run"
        " (and hypervisor steal) -- a row with much of it was disturbed."
        "\nfwd µs/req: forwarder CPU per request."
    )
    if failed:
        print(f"\n{failed} row(s) had errors or no answers: their numbers are not comparable")
    return 1 if failed else 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the finally blocks that stop the servers


def cli() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time first")
    parser.add_argument("--conns", default="1,32", help="concurrent connections, comma-separated")
    parser.add_argument(
        "--legs", default=",".join(LEGS), help=f"comma-separated: {', '.join(LEGS)}"
    )
    parser.add_argument(
        "--agent", default="sdk", help=f"upstream(s), comma-separated: {', '.join(AGENTS)}"
    )
    parser.add_argument("--rounds", type=int, default=1, help="run every leg this often; medians")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the kernel place processes (default: load+agent on one CPU, forwarder on another)",
    )
    ports.add_argument(parser)
    args = parser.parse_args()
    legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    if unknown := [leg for leg in legs if leg not in LEGS]:
        parser.error(f"unknown leg(s) {', '.join(unknown)}; known: {', '.join(LEGS)}")
    agents = [a.strip() for a in args.agent.split(",") if a.strip()]
    if unknown := [a for a in agents if a not in AGENTS]:
        parser.error(f"unknown agent(s) {', '.join(unknown)}; known: {', '.join(AGENTS)}")
    if not args.no_pin and hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
        first, second = sorted(os.sched_getaffinity(0))[:2]
        LAYOUT.update(load={first}, agent={first}, forwarder={second})
    levels = [int(c) for c in args.conns.split(",")]
    return main(legs, agents, levels, args.warmup, args.seconds, args.rounds)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_serve"]:
        role, port, upstream, parent = sys.argv[2:6]
        _die_with_parent(int(parent))
        _serve(role, int(port), upstream)
    elif sys.argv[1:2] == ["_load"]:
        _load_main(json.loads(sys.argv[2]))
    else:
        try:
            raise SystemExit(cli())
        except KeyboardInterrupt:  # the finally blocks have stopped every server
            raise SystemExit(130) from None
