"""An agent's transport failure reads the same whichever HTTP library met it:
the SDK transports' (httpx over aiohttp) or the pool's own (aiohttp)."""

from __future__ import annotations

import aiohttp
import httpx
from a2a.client.errors import A2AClientError

from gateway.agents.upstream_errors import upstream_error


def _caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


def test_an_answer_cut_off_is_a_connection_lost_in_either_library() -> None:
    cut = aiohttp.ClientPayloadError("Response payload is not completed")
    through_httpx = _caused(
        A2AClientError("Network communication error"), _caused(httpx.ReadError("cut"), cut)
    )
    said = {str(upstream_error("echo", failure, None)) for failure in (cut, through_httpx)}
    assert said == {"agent echo could not be reached (connection lost)"}
