"""Sending and recording only inside the core: the run-time half of "every
upstream call goes through `delegate()`" (the layout test is the import half).

The core (`gateway.delegation.delegate.Delegate`: `send`, `stream`, `record`)
marks the work it does with `inside_the_core()`, a context variable. Each
adapter's send entry point, and the audit writer for the record of a call,
asks `require_core(site)` whether it runs under that mark:

* the adapters: `OpenAICompatAdapter.call`/`.stream`, `RestWebhookAdapter.call`,
  `OpenApiUpstream.call_tool`, `UpstreamCalls.call_tool`/`.request` (MCP:
  the SDK session, the 2025-11-25 lane and the pass-through behind it), and
  every A2A request (`adapters.http`: the SDK transports' httpx client and the
  pass-through's `post`; `adapters.a2a_grpc`: each gRPC call);
* the audit writer (`gateway.delegation.audit.AuditLog.record`): for a
  record that carries a minted token's id -- the record of a call made with
  a token the core minted for it. Records without one (a decision refused
  before a token exists, an admin's change, a login, a flow's own events)
  are not a call's and are not checked.

What talks to an upstream outside any caller's call -- a health probe,
registration's discovery of a server's tools, a push notification to a
caller's webhook, the record a recovery writes for a call a crash cut off
-- is not a delegation: it runs under `outside_a_call("why")`, a named
exemption, never with the check turned off. docs/architecture.md lists them.

How a miss is told: ``SWITCHBOARD_CORE_CHECK`` -- ``off``; ``warn`` (the
default: one warning per site, the call goes on; a gateway in production
never fails a user's call for it); ``strict`` (raise `OutsideTheCore`, and
keep it in `missed()` so that a miss a caller swallowed still fails the test:
the test suite runs strict, tests/conftest.py). Read once, at the first
check; `configure` sets it again (tests). Every miss, warned of or raised,
is counted by site (`misses()`): the gateway's ``/metrics`` shows the counts
(`switchboard_core_check_misses_total`), where one warning in a log would
be all an operator had.

The context variable is copied into tasks created under it (asyncio), so
work a call starts in a task of its own is inside the core too; an
exemption's likewise.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from contextvars import ContextVar, Token
from typing import Literal

Mode = Literal["off", "warn", "strict"]
MODES: tuple[Mode, ...] = ("off", "warn", "strict")
ENV = "SWITCHBOARD_CORE_CHECK"
DEFAULT: Mode = "warn"
CORE = "delegate()"

logger = logging.getLogger(__name__)
# None: outside the core; CORE: inside it; else "exempt: <why>".
_where: ContextVar[str | None] = ContextVar("switchboard_core_check", default=None)
_mode: Mode | None = None
_warned: set[str] = set()
_missed: list[str] = []
# Every miss since the process started, by site (warn and strict alike).
_misses: collections.Counter[str] = collections.Counter()


class OutsideTheCore(RuntimeError):
    """An adapter sent, or a call's record was written, outside `delegate()`
    (strict mode)."""


def _read(value: str | None) -> Mode:
    said = (value or DEFAULT).strip().lower()
    if said not in MODES:
        raise ValueError(f"{ENV} is one of off, warn, strict; not {value!r}")
    return said


def mode() -> Mode:
    """The mode in force (``SWITCHBOARD_CORE_CHECK``, read at the first ask)."""
    global _mode
    if _mode is None:
        _mode = _read(os.environ.get(ENV))
    return _mode


def configure(value: str | None) -> None:
    """Set the mode (None: read ``SWITCHBOARD_CORE_CHECK`` again at the next
    check); forgets which sites were warned of."""
    global _mode
    _mode = _read(value) if value is not None else None
    _warned.clear()


class _Marked:
    """`_where` set for a ``with`` block (a class, not `contextlib`'s
    generator: the core enters one per call and per stream item)."""

    __slots__ = ("_token", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._token: Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = _where.set(self._value)

    def __exit__(self, *_: object) -> None:
        assert self._token is not None
        _where.reset(self._token)


def inside_the_core() -> contextlib.AbstractContextManager[None]:
    """What the core runs: sends and records under it pass the check. Never
    held across a ``yield`` of an async generator (the variable would follow
    the generator's consumer)."""
    return _Marked(CORE)


def outside_a_call(why: str) -> contextlib.AbstractContextManager[None]:
    """Talking to an upstream, or recording, for no caller's call: a health
    probe, a discovery, a push delivery. ``why`` names the exemption (it is
    what a debugger or a log shows)."""
    if not why.strip():
        raise ValueError("an exemption says why")
    return _Marked(f"exempt: {why}")


def where() -> str | None:
    """Under what the current code runs: `CORE`, ``"exempt: <why>"``, or None."""
    return _where.get()


def require_core(site: str) -> None:
    """Pass inside the core or an exemption; else, by the mode: nothing, a
    warning (once per ``site``), or `OutsideTheCore` (kept in `missed()`);
    the last two counted (`misses()`)."""
    if _where.get() is not None:
        return
    current = _mode if _mode is not None else mode()
    if current == "off":
        return
    _misses[site] += 1
    said = f"{site} outside delegate(): every upstream call and its record go through the core"
    if current == "strict":
        _missed.append(said)
        raise OutsideTheCore(said)
    if site not in _warned:
        _warned.add(site)
        logger.warning("%s (warned once per site; SWITCHBOARD_CORE_CHECK)", said)


def misses() -> dict[str, int]:
    """How often each site missed since the process started, warned of or
    raised (never reset: a count for `/metrics`, which only goes up)."""
    return dict(_misses)


def missed() -> list[str]:
    """Every strict miss since the last `forget_missed` (a test's autouse
    fixture reads this: a caller that caught the error must not hide it)."""
    return list(_missed)


def forget_missed() -> None:
    _missed.clear()
