"""Public keys of an external issuer, fetched from its JWKS URL and cached.

A token naming an unknown `kid` triggers a refetch (the issuer may have
rotated), but at most once per ``min_refetch_seconds``: otherwise a stream of
garbage `kid`s would turn the gateway into a load generator against the IdP.
Concurrent misses share one fetch. The URL comes from operator configuration,
not from tokens (a `jku` header is never followed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

logger = logging.getLogger(__name__)
_MAX_JWKS_BYTES = 256 * 1024


class RemoteJwks:
    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        cache_seconds: float = 600,
        min_refetch_seconds: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = client
        self._cache_seconds = cache_seconds
        self._min_refetch = min_refetch_seconds
        self._clock = clock
        self._keys: dict[str, Mapping[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get(self, kid: str) -> Mapping[str, Any] | None:
        if self._fetched_at is None or self._clock() - self._fetched_at > self._cache_seconds:
            await self._refresh(force=True)
        elif kid not in self._keys:
            await self._refresh(force=False)
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is not None:
                age = now - self._fetched_at
                if age < self._min_refetch or (force and age <= self._cache_seconds):
                    return  # someone refreshed while we waited, or too soon to ask again
            try:
                self._keys = await self._fetch()
            except (httpx.HTTPError, ValueError, RecursionError) as exc:
                # Keep the keys we had; a flaky IdP must not log everyone out.
                logger.warning("JWKS fetch from %s failed: %s", self.url, exc)
            finally:
                self._fetched_at = now
                self.fetch_count += 1

    async def _fetch(self) -> dict[str, Mapping[str, Any]]:
        async with self._client.stream(
            "GET", self.url, headers={"Accept": "application/json"}
        ) as r:
            r.raise_for_status()
            body = bytearray()
            async for chunk in r.aiter_bytes():
                body.extend(chunk)
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError("JWKS document is too large")
        document = json.loads(bytes(body))
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ValueError("JWKS document has no keys array")
        return {
            k["kid"]: k
            for k in keys
            if isinstance(k, dict)
            and isinstance(k.get("kid"), str)
            and k.get("use", "sig") == "sig"
        }
