"""The settings of worker processes (`switchboard serve --workers`): a part of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from policies.rules import Policy

# `gateway_replicas.id` holds 32 characters; a worker's id is the replica's
# plus "-<slot>" (`gateway.cli.workers`), so the configured one must leave room.
REPLICA_ID_MAX = 32
SLOT_SUFFIX_MAX = 4  # "-" and up to three digits


class WorkerOptions(BaseModel):
    workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Gateway processes serving the one port (`serve --workers`); one per core. "
        "Each is a replica of its own (its own replica id, flow executor and address).",
    )
    shutdown_drain_seconds: int = Field(
        default=20,
        ge=1,
        le=3600,
        description="After SIGTERM or SIGINT: how long requests and streams in progress may "
        "go on (no new connection is taken) before they are cut; then the gateway's jobs "
        "stop. Keep it under the orchestrator's grace period (Kubernetes: 30 s by default).",
    )
    gc_young_threshold: int = Field(
        default=50_000,
        ge=0,
        le=10_000_000,
        description="Objects allocated (net) before the cyclic GC collects the youngest "
        "generation, set at start-up (`gc.set_threshold`); 0 keeps Python's own (700). "
        "Higher means fewer collections, each a little longer.",
    )


def rate_limits_problem(workers: int, redis_url: str | None, policy: Policy) -> str | None:
    """Why ``policy`` cannot be enforced by ``workers`` processes, if it cannot.

    Without Redis a rate limit is counted in each process's memory
    (`gateway.delegation.rate_limits`): each worker would allow the whole rate.
    Refused (at start-up, and on reload the previous policy stays) rather
    than enforced N times over.
    """
    if workers > 1 and not redis_url and policy.limits:
        return (
            f"its rate limits (limits:) need redis_url with {workers} workers: without Redis "
            "each process counts on its own and would allow the whole rate (set redis_url, "
            "or run one worker)"
        )
    return None
