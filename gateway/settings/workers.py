"""The settings of worker processes (`switchboard serve --workers`): a part of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator
from sqlalchemy.engine import make_url

from policies.rules import Policy

# `gateway_replicas.id` holds 32 characters; a worker's id is the replica's
# plus "-<slot>" (`gateway.cli.workers`), so the configured one must leave room.
REPLICA_ID_MAX = 32
SLOT_SUFFIX_MAX = 4  # "-" and up to three digits
MIN_CONNECTIONS_A_WORKER = 4  # two for its own pool, two for its flows engine's


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
    database_connections: int = Field(
        default=50,
        ge=4,
        le=10_000,
        description="PostgreSQL connections the gateway may hold open in its pools, every "
        "worker of `serve --workers` together: each worker's share goes 3:2 to its own pool "
        "and to the flows engine's (DBOS's system database); each worker also holds two "
        "listening connections. Keep it, times the replicas, under the server's "
        "max_connections (100 by default) less what else connects.",
    )
    gc_young_threshold: int = Field(
        default=50_000,
        ge=0,
        le=10_000_000,
        description="Objects allocated (net) before the cyclic GC collects the youngest "
        "generation, set at start-up (`gc.set_threshold`); 0 keeps Python's own (700). "
        "Higher means fewer collections, each a little longer.",
    )

    @model_validator(mode="after")
    def _connections_for_every_worker(self) -> WorkerOptions:
        # `database_url` is a field of `Settings`, of which this is a part.
        url = getattr(self, "database_url", None)
        if url is None or make_url(url).get_backend_name() != "postgresql":
            return self  # SQLite: no connections to share out
        if self.database_connections < MIN_CONNECTIONS_A_WORKER * self.workers:
            raise ValueError(
                f"database_connections ({self.database_connections}) leaves fewer than "
                f"{MIN_CONNECTIONS_A_WORKER} PostgreSQL connections to each of {self.workers} "
                "workers: raise it (within the server's max_connections) or run fewer workers"
            )
        return self

    def database_pools(self) -> tuple[int, int]:
        """This process's share of `database_connections`: the size of its
        own pool and of the flows engine's (30 and 20 for one worker)."""
        share = self.database_connections // self.workers
        own = max(2, share * 3 // 5)
        return own, share - own


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
