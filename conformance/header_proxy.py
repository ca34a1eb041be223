"""A local reverse proxy that adds `Authorization: Bearer <token>` to every
request: the MCP conformance suite and the A2A TCK have no option for headers,
and the gateway requires a token. Responses (SSE streams included) are
passed through as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 §7.6.1) and what aiohttp recomputes.
_SKIP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def build(upstream: str, token: str) -> web.Application:
    session: aiohttp.ClientSession | None = None

    async def forward(request: web.Request) -> web.StreamResponse:
        assert session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP}
        headers["Authorization"] = f"Bearer {token}"
        async with session.request(
            request.method,
            upstream + request.rel_url.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            response = web.StreamResponse(status=answer.status)
            for name, value in answer.headers.items():
                if name.lower() not in _SKIP:
                    response.headers.add(name, value)
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        nonlocal session
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        yield
        await session.close()

    app = web.Application()
    app.cleanup_ctx.append(lifespan)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@contextlib.asynccontextmanager
async def running(upstream: str, token: str, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(build(upstream, token))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def serve(upstream: str, token: str, port: int) -> None:
    """Run until interrupted (by conformance.mcp, or by hand; the TCK reads
    the gateway's URLs from its cards, so conformance.a2a uses
    conformance.tck_auth instead)."""

    async def main() -> None:
        async with running(upstream, token, port):
            await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    import sys

    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
