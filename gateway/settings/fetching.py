"""The settings of what the gateway fetches itself (agent cards, JWKS,
metadata): its limits and the addresses the SSRF guard lets through
(`registry.ssrf`): a part of `Settings`."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, field_validator

from registry.ssrf import NEVER_ALLOWED_NETWORKS


class FetchOptions(BaseModel):
    ssrf_allow_cidrs: list[str] = Field(default_factory=list)
    fetch_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    fetch_max_bytes: int = Field(default=512 * 1024, gt=0, le=16 * 1024 * 1024)
    fetch_max_redirects: int = Field(default=3, ge=0, le=10)

    @field_validator("ssrf_allow_cidrs")
    @classmethod
    def _cidrs_parse(cls, value: list[str]) -> list[str]:
        for cidr in value:
            network = ipaddress.ip_network(cidr, strict=False)
            if network.prefixlen == 0:
                raise ValueError(f"{cidr}: allowing every address defeats the SSRF guard")
            for forbidden in NEVER_ALLOWED_NETWORKS:
                if network.version == forbidden.version and network.overlaps(forbidden):
                    raise ValueError(
                        f"{cidr} overlaps {forbidden} (link-local / cloud metadata), "
                        "which can never be allowed"
                    )
        return value
