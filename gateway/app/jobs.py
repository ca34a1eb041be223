"""The app's background jobs: this replica's heartbeat, the jobs each subsystem
names, and the pacing of those that only look for another replica's changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app.doors import Doors
from gateway.app.subsystems import Subsystems
from gateway.federation.federation import McpFederation
from gateway.mcp.change_watch import ChangeWatch
from gateway.mcp.sets import SetCache
from gateway.settings import Settings
from gateway.storage.bell import ChangeBell, Spaced
from gateway.storage.periodic import Periodic, paced_by_company
from gateway.storage.replicas import ReplicaDirectory
from registry.service import RegistryService


async def announce_replica(
    replicas: ReplicaDirectory, engine: AsyncEngine, stack: contextlib.AsyncExitStack
) -> Periodic:
    """This replica's row, announced and then renewed by the returned job."""
    # Announced before anything that runs durable work starts (gateway-run
    # tasks, the flows engine: their runs are named by this replica's
    # id), so it withdraws its row only once they have all stopped:
    # then it is gone, and its runs are another replica's to take.
    await replicas.announce(engine)
    stack.push_async_callback(replicas.withdraw)
    # Renewed from now until just before it withdraws -- through the
    # rest of the start and the whole of a clean stop, which waits for
    # runs writing their outcomes: a row left stale meanwhile would
    # have its runs taken while they still run here.
    heartbeat = Periodic("replica", replicas.heartbeat_seconds, replicas.renew)
    stack.push_async_callback(_cancel, asyncio.create_task(heartbeat.run_forever(), name="replica"))
    return heartbeat


def run_jobs(
    app: FastAPI,
    settings: Settings,
    started: Subsystems,
    doors: Doors,
    set_cache: SetCache,
    heartbeat: Periodic,
    bell: ChangeBell,
    stack: contextlib.AsyncExitStack,
) -> None:
    """The background jobs each subsystem names, each a task cancelled at stop."""
    core, mcp_parts = started.core, started.mcp
    watch = ChangeWatch(
        started.engine,
        doors.mcp.notifier,
        set_moved=set_cache.changed,
        catalog_moved=_invalidating(mcp_parts.federation, core.registry),
    )
    jobs = (
        *core.jobs(),
        *mcp_parts.jobs(),
        *started.a2a.jobs(),
        *started.observed.jobs(),
        *started.flows.jobs(),
        *started.exported.jobs(),
        *_change_watch(app, settings, watch),
    )
    periodic = [heartbeat, *(job for job in jobs if isinstance(job, Periodic))]
    policy_file = settings.policy_file is not None
    started.observed.metrics.watch(_paced(periodic, doors.replicas, bell, policy_file))
    stack.push_async_callback(_cancel, asyncio.create_task(bell.run_forever(), name="change-bell"))
    for job in jobs:
        name, running = (job.name, job.run_forever()) if isinstance(job, Periodic) else job
        stack.push_async_callback(_cancel, asyncio.create_task(running, name=name))


# What each job that looks only for another replica's changes reads: a
# notice naming one of these tables wakes it (`gateway.storage.bell`).
WATCHED_TABLES = {
    "mcp-change-watch": ("agents", "mcp_sets", "mcp_tools"),
    "mcp-upstreams": ("mcp_servers",),
    "policy-reloader": ("policy_versions",),
}


def _paced(
    jobs: list[Periodic], replicas: ReplicaDirectory, bell: ChangeBell, policy_file: bool
) -> list[Periodic]:
    """The jobs that look only for what another replica changed -- a set, the
    catalog or an agent (`mcp-change-watch`), an MCP server (`mcp-upstreams`),
    a stored policy (`policy-reloader`, without a policy file: the file is
    read at its own pace) -- look at their interval while another replica
    runs and its writes are not heard, and once a minute while this one is
    alone or they are (`paced_by_company`; `ChangeBell` wakes them): what this
    replica changes it applies itself, at once."""
    watches = {"mcp-change-watch", "mcp-upstreams"} | (
        set() if policy_file else {"policy-reloader"}
    )
    for job in jobs:
        if job.name in watches:
            own = job.interval()  # before pacing: what it looked at while not told
            paced_by_company(job, lambda: replicas.alone() or bell.heard(), replicas.on_others)
            wake = Spaced(job.wake, own)
            for table in WATCHED_TABLES[job.name]:
                bell.on(table, wake)
    return jobs


def _change_watch(app: FastAPI, settings: Settings, watch: ChangeWatch) -> list[Periodic]:
    """Another replica's changes told to this one's MCP clients (`gateway.mcp.change_watch`)."""
    every = settings.mcp_change_watch_seconds
    if not every:
        return []
    app.state.mcp_change_watch = watch
    return [Periodic("mcp-change-watch", every, watch.check)]


def _invalidating(federation: McpFederation, registry: RegistryService) -> Callable[[], None]:
    """The catalog moved elsewhere: this replica's copies dropped, its clients told."""

    def moved() -> None:
        federation.invalidate()  # its listeners tell every client
        registry.changed()  # the agents' skills, as tools

    return moved


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
