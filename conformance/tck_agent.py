"""The A2A TCK's reference agent, hosted on the a2a-sdk installed here.

    python -m conformance.tck_agent TCK_DIR PORT [--push] [--grpc-port N]

The TCK ships its system under test as `sut/a2a-python/sut_agent.py`,
generated for a2a-sdk 1.0.0a0. Nothing of it is copied here: it is loaded
from the checkout at run time, and three things are adapted to the 1.x line
this gateway uses:

* `a2a.server.apps` (the 1.0 alpha's application classes) is gone in 1.x; a
  stand-in lets the module import, and its `main()` runs only up to where it
  hands its card to them, so the card is the TCK's own, taken from there;
* the routes are the 1.x factories' (`a2a.server.routes`), and the card is
  served with `Cache-Control` (without it the TCK's CARD-CACHE tests fail on
  the agent, not the gateway; docs/conformance.md);
* 1.x wants the Task enqueued before its first status update, which the
  executor written for 1.0.0a0 does not do: `TaskFirst` does it for it.

With ``--push`` the card declares `pushNotifications: true` and the agent
keeps push configs and sends notifications (the SDK's in-memory store and
sender), so the TCK's push tests run. With ``--grpc-port`` it also serves
gRPC there (the SDK's `GrpcHandler`), which the TCK's card lists.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc.aio
import httpx
import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers import DefaultRequestHandler, RequestHandler
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
)
from a2a.types import AgentCard, Message, Task, TaskState, TaskStatus, a2a_pb2_grpc
from starlette.applications import Starlette
from starlette.routing import BaseRoute

SUT = Path("sut") / "a2a-python" / "sut_agent.py"
CARD_CACHE_CONTROL = "public, max-age=3600"


class _CardTaken(Exception):
    def __init__(self, card: AgentCard) -> None:
        self.card = card


class _TakeCard:
    """Stands in for the 1.0 alpha's `A2AStarletteApplication`: the first
    thing `main()` gives the card to, where it stops."""

    def __init__(self, agent_card: AgentCard, **_: Any) -> None:
        raise _CardTaken(agent_card)


@contextmanager
def _alpha_names() -> Iterator[None]:
    """The two names `sut_agent` imports from where 1.0.0a0 had them, for as
    long as it takes to import it: `a2a.server.apps` (gone in 1.x; `main()`
    reaches it only to hand it the card), and `DefaultRequestHandler` in its
    own module (1.x exports it from the package)."""
    apps = types.ModuleType("a2a.server.apps")
    apps.A2ARESTFastAPIApplication = _TakeCard  # type: ignore[attr-defined]
    apps.A2AStarletteApplication = _TakeCard  # type: ignore[attr-defined]
    added = "a2a.server.apps" not in sys.modules
    sys.modules.setdefault("a2a.server.apps", apps)
    name = "DefaultRequestHandler"
    old = importlib.import_module("a2a.server.request_handlers.default_request_handler")
    missing = not hasattr(old, name)
    if missing:
        setattr(old, name, DefaultRequestHandler)
    try:
        yield
    finally:
        if added:
            del sys.modules["a2a.server.apps"]
        if missing:
            delattr(old, name)


def load_sut(tck_dir: Path) -> types.ModuleType:
    """The TCK's `sut_agent` module, imported on 1.x."""
    spec = importlib.util.spec_from_file_location("tck_sut_agent", tck_dir / SUT)
    if spec is None or spec.loader is None or not (tck_dir / SUT).exists():
        raise SystemExit(f"no {SUT} in {tck_dir}")
    module = importlib.util.module_from_spec(spec)
    with _alpha_names():
        spec.loader.exec_module(module)
    return module


def sut_card(sut: types.ModuleType, port: int, grpc_port: int | None = None) -> AgentCard:
    """The card the TCK's `main()` builds for ``port`` (its `SUT_HOST`) and,
    for its gRPC interface, ``grpc_port`` (its `GRPC_PORT`; else port + 1)."""
    os.environ["SUT_HOST"] = f"127.0.0.1:{port}"
    if grpc_port is not None:
        os.environ["GRPC_PORT"] = str(grpc_port)
    # main() builds its handler the 1.0-alpha way before it reaches the card.
    sut.DefaultRequestHandler = lambda **_: None  # type: ignore[attr-defined]
    sut.A2AStarletteApplication = _TakeCard  # type: ignore[attr-defined]
    try:
        asyncio.run(sut.main())
    except _CardTaken as taken:
        return taken.card
    raise SystemExit("the TCK's sut_agent.main() built no card")


class TaskFirst(EventQueue):
    """Enqueues ``task`` ahead of the first event that is not a Task or a
    Message: what a 1.x executor does before its first status update."""

    def __init__(self, queue: EventQueue, task: Task) -> None:
        self._queue = queue
        self._task: Task | None = task

    async def enqueue_event(self, event: Event) -> None:
        task, self._task = self._task, None
        if task is not None and not isinstance(event, Task | Message):
            await self._queue.enqueue_event(task)
        await self._queue.enqueue_event(event)


class OnOneX(AgentExecutor):
    """The TCK's executor, on a2a-sdk 1.x."""

    def __init__(self, inner: AgentExecutor) -> None:
        self.inner = inner

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message, task_id, context_id = context.message, context.task_id, context.context_id
        if context.current_task is None and message is not None and task_id and context_id:
            task = Task(
                id=task_id,
                context_id=context_id,
                status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                history=[message],
            )
            event_queue = TaskFirst(event_queue, task)
        await self.inner.execute(context, event_queue)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await self.inner.cancel(context, event_queue)


def build(
    tck_dir: Path, port: int, *, push: bool, grpc_port: int | None = None
) -> tuple[Starlette, RequestHandler]:
    sut = load_sut(tck_dir)
    card = sut_card(sut, port, grpc_port)
    card.capabilities.push_notifications = push
    configs = InMemoryPushNotificationConfigStore() if push else None
    handler = DefaultRequestHandler(
        agent_executor=OnOneX(sut.TckAgentExecutor()),
        task_store=InMemoryTaskStore(),
        agent_card=card,
        push_config_store=configs,
        push_sender=(
            BasePushNotificationSender(httpx.AsyncClient(timeout=10), configs)
            if configs is not None
            else None
        ),
    )
    routes: list[BaseRoute] = [
        *create_agent_card_routes(card, cache_control=CARD_CACHE_CONTROL),
        *create_jsonrpc_routes(handler, rpc_url="/"),
        *create_rest_routes(handler, path_prefix=sut.REST_URL),
    ]
    return Starlette(routes=routes), handler


async def serve(app: Starlette, handler: RequestHandler, port: int, grpc_port: int | None) -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    if grpc_port is None:
        await server.serve()
        return
    grpc_server = grpc.aio.server()
    grpc_server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), grpc_server)  # type: ignore[no-untyped-call]
    await grpc_server.start()
    try:
        await server.serve()
    finally:
        await grpc_server.stop(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tck_dir", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--push", action="store_true", help="declare and send push notifications")
    parser.add_argument("--grpc-port", type=int, help="serve gRPC on this port too")
    args = parser.parse_args(argv)
    app, handler = build(
        args.tck_dir.resolve(), args.port, push=args.push, grpc_port=args.grpc_port
    )
    asyncio.run(serve(app, handler, args.port, args.grpc_port))


if __name__ == "__main__":
    main()
