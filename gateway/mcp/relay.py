"""The downstream end of a relayed upstream call: the one `/mcp` request it serves.

`adapters.mcp_relay` routes what an upstream server asks or logs mid-call to
the `CallRelay` of the call that caused it; this is that relay for a call
made from the gateway's `/mcp`:

* its capabilities are the caller's own ``elicitation``, ``sampling`` and
  ``roots`` declarations -- the only ones the gateway can carry back to the
  caller (``roots.listChanged`` is dropped: the gateway does not forward the
  client's roots notifications upstream; nor extensions or experimental
  capabilities, which it does not understand);
* a question (`elicitation/create`, `sampling/createMessage`, `roots/list`)
  goes to a 2025-11-25 caller on its own call's stream, as the server-to-
  client request of that revision (MCP 2025-11-25 "Transports", Streamable
  HTTP: requests related to a client request go on its stream), and only if
  the caller declared the capability -- else the answer is the error the
  SDK's own client gives. A 2026-07-28 caller cannot be asked mid-call (the
  revision has no server-to-client requests; a server asks with an
  `InputRequiredResult`), so the server hears that instead;
* a log line goes out on the call's stream at or above the level the caller
  asked for: a 2026-07-28 request's ``io.modelcontextprotocol/logLevel``
  (the SDK also enforces that opt-in), a 2025-11-25 session's
  `logging/setLevel` (all levels if it never set one);
* an upstream that keeps asking, or floods the log, is cut off at
  `MAX_QUESTIONS` / `MAX_LOG_LINES` (and `MAX_LOG_BYTES`) per call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, get_args

import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp_types import INVALID_REQUEST, LOG_LEVEL_META_KEY

from adapters.mcp_relay import APP_EXTENSION
from gateway.mcp.input_relay import is_modern, put_to_caller, takes_form

logger = logging.getLogger(__name__)

MAX_QUESTIONS = 16  # per upstream call: a server that keeps asking cannot pester the user
MAX_LOG_LINES = 1000  # per upstream call
MAX_LOG_BYTES = 1024 * 1024  # per upstream call (a line may be as big as one SSE event: 1 MiB)

_LEVELS: tuple[types.LoggingLevel, ...] = get_args(types.LoggingLevel)  # ascending severity

R = TypeVar("R")
SessionLevel = Callable[[ServerRequestContext], types.LoggingLevel | None]


def _has(granted: Any, feature: str | None) -> bool:
    if feature is None:
        return True
    if feature == "form" and isinstance(granted, types.ElicitationCapability):
        return takes_form(granted)
    return getattr(granted, feature, None) is not None


def _at_least(level: str, floor: types.LoggingLevel) -> bool:
    return level in _LEVELS and _LEVELS.index(level) >= _LEVELS.index(floor)


class DownstreamRelay:
    """Carries one upstream call's questions and log lines to its caller."""

    def __init__(self, ctx: ServerRequestContext, session_level: SessionLevel) -> None:
        self._ctx = ctx
        self._session_level = session_level
        self._questions = 0
        self._log_lines = 0
        self._log_bytes = 0
        self._log_capped = False

    def upstream_capabilities(self) -> dict[str, Any]:
        declared = self._ctx.session.client_capabilities
        if declared is None:
            return {}
        sampling = declared.sampling
        carried = types.ClientCapabilities(
            elicitation=declared.elicitation,
            # Without ``context``: the caller's context of "this server" (the
            # gateway) is every upstream's, so none is given (see `sample`).
            sampling=types.SamplingCapability(tools=sampling.tools) if sampling else None,
            roots=types.RootsCapability() if declared.roots is not None else None,
            # A client that renders MCP Apps says so to the server it reaches.
            extensions={APP_EXTENSION: declared.extensions[APP_EXTENSION]}
            if declared.extensions and APP_EXTENSION in declared.extensions
            else None,
        )
        return carried.model_dump(by_alias=True, mode="json", exclude_none=True)

    def log_level(self) -> types.LoggingLevel | None:
        if is_modern(self._ctx):
            requested = (self._ctx.meta or {}).get(LOG_LEVEL_META_KEY)
            return requested if requested in _LEVELS else None
        # 2025-11-25: the session's setLevel, else the server chooses (all).
        return self._session_level(self._ctx) or "debug"

    async def elicit(
        self, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        mode = "url" if isinstance(params, types.ElicitRequestURLParams) else "form"
        refusal = self._may_ask("elicitation", "Elicitation not supported", mode)
        if refusal is not None:
            return refusal
        return await self._ask(put_to_caller(self._ctx, types.ElicitRequest(params=params)))

    async def sample(
        self, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        refusal = self._may_ask(
            "sampling", "Sampling not supported", "tools" if params.tools else None
        )
        if refusal is not None:
            return refusal
        return await self._ask(put_to_caller(self._ctx, types.CreateMessageRequest(params=params)))

    async def list_roots(self) -> types.ListRootsResult | types.ErrorData:
        refusal = self._may_ask("roots", "List roots not supported")
        if refusal is not None:
            return refusal
        return await self._ask(put_to_caller(self._ctx, types.ListRootsRequest()))

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        floor = self.log_level()
        if floor is None or not _at_least(params.level, floor):
            return
        self._log_lines += 1
        self._log_bytes += len(json.dumps(params.data, default=str))
        if self._log_lines > MAX_LOG_LINES or self._log_bytes > MAX_LOG_BYTES:
            if not self._log_capped:
                self._log_capped = True
                logger.warning(
                    "an upstream logged more than %d lines or %d bytes in one call",
                    MAX_LOG_LINES,
                    MAX_LOG_BYTES,
                )
            return
        await self._ctx.session.send_log_message(
            params.level, params.data, params.logger, related_request_id=self._ctx.request_id
        )

    def _may_ask(
        self, capability: str, unsupported: str, feature: str | None = None
    ) -> types.ErrorData | None:
        """None if the caller may be asked; ``feature``: the part of the
        capability the question needs (an elicitation's mode, sampling's
        tools), which the caller must have declared too."""
        if is_modern(self._ctx):
            return types.ErrorData(
                code=INVALID_REQUEST,
                message=f"{unsupported} mid-call: the caller speaks MCP 2026-07-28, "
                "where a server asks with an input_required result",
            )
        declared = self._ctx.session.client_capabilities
        granted = getattr(declared, capability) if declared is not None else None
        if granted is None:
            return types.ErrorData(code=INVALID_REQUEST, message=unsupported)
        if not _has(granted, feature):
            return types.ErrorData(code=INVALID_REQUEST, message=f"{unsupported} ({feature})")
        self._questions += 1
        if self._questions > MAX_QUESTIONS:
            return types.ErrorData(
                code=INVALID_REQUEST,
                message=f"the gateway relays at most {MAX_QUESTIONS} questions per call",
            )
        return None

    @staticmethod
    async def _ask(question: Awaitable[R]) -> R | types.ErrorData:
        try:
            return await question
        except MCPError as exc:  # the caller's client said no: the server hears its answer
            return exc.error
