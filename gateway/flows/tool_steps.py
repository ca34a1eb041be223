"""A tool step's call as the step reads it: its refusals and failures, and
its result (`gateway.flows.calls` decides and sends it through the federation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import mcp_types as types

from adapters.mcp import UpstreamError, UpstreamUnavailable
from gateway.delegation.pipeline import ApprovalRequired, DelegationDenied
from gateway.federation.federated_tools import NotSent, ToolNotFound, ToolQuarantined
from gateway.flows.outcomes import completed
from gateway.flows.step_errors import NeedsApproval, StepFailed, users_own


@contextlib.contextmanager
def refusals(name: str) -> Iterator[None]:
    """The call's refusals and failures as the step's (`users_own`: the run's
    user's own credential). A coordination rule's deferral is waited out
    inside (`StepAdmission.waiting`), never seen here."""
    try:
        with users_own(name):
            yield
    except ApprovalRequired as waits:
        raise NeedsApproval(name, list(waits.decision.reasons)) from None
    except DelegationDenied as denied:
        reasons = "; ".join(denied.decision.reasons)
        raise StepFailed(f"refused by the policy: {reasons}", final=True) from None
    except (ToolNotFound, ToolQuarantined) as exc:
        raise StepFailed(f"{name}: {exc}", final=True) from None
    except (UpstreamUnavailable, UpstreamError, NotSent) as exc:
        raise StepFailed(f"{name}: {exc}") from None


def outcome_of(
    name: str, result: types.CallToolResult | types.InputRequiredResult
) -> dict[str, Any]:
    """The step's outcome: the structured content (a lone ``result`` unwrapped),
    else the text; the tool's own failure is the attempt's (retried)."""
    if isinstance(result, types.InputRequiredResult):
        raise StepFailed(f"{name} asked for input; a flow cannot answer a tool yet", final=True)
    text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    if result.is_error:
        raise StepFailed(f"{name}: {text or 'the tool failed'}")
    output = result.structured_content if result.structured_content is not None else text
    if isinstance(output, dict) and set(output) == {"result"}:
        output = output["result"]
    return completed(output, text)
