"""The settings of a replica among others: where they reach it, its name, its
heartbeat and when it counts as gone: a part of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class ReplicaOptions(BaseModel):
    replica_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the other replicas reach this one (http://<pod ip>:<port>), to pass "
        "on requests for the 2025-11-25 MCP sessions it holds; default http://<host>:<port>, "
        "with this machine's name for a wildcard host.",
    )
    replica_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="This replica's stable name (a StatefulSet pod's name): restarted, it takes "
        "its own unfinished flow runs back at once. Default: a random id per process, whose "
        "runs another replica takes over once it is gone (`replica_stale_seconds`).",
    )
    replica_heartbeat_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How often a replica renews its registration."
    )
    replica_stale_seconds: float = Field(
        default=45.0,
        gt=0,
        le=3600,
        description="A replica not renewed for this long is gone: its MCP sessions answer 404 "
        "and its unfinished flow runs and gateway-run tasks are taken over. Keep it several "
        "heartbeats long.",
    )

    @model_validator(mode="after")
    def _stale_after_heartbeats(self) -> ReplicaOptions:
        # A live replica taken for gone would have its flow runs run twice.
        if self.replica_stale_seconds < 2 * self.replica_heartbeat_seconds:
            raise ValueError("replica_stale_seconds must be at least two heartbeats long")
        return self
