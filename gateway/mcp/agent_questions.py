"""An agent's question, put to the MCP caller's user as an elicitation.

A skill called as a tool at `/mcp` (an A2A agent's, or a flow's ``run``)
whose task stops at ``input-required`` answers the tool call with the
question and the ``taskId`` to continue with (`gateway.mcp.agent_tools`).
A client that takes elicitations in form mode gets more: the agent's
question is asked of its user there and then, and their answer goes to the
same task, as a message of the same user, decided and recorded like any
(MCP "Elicitation"; a flow's run that asks, `gateway.flows.questions`):

* a 2025-11-25 client: ``elicitation/create`` on the call's own stream, and
  the call goes on with the answer -- the agent may ask again, up to
  `MAX_ROUNDS` questions in one call;
* a 2026-07-28 client: an ``input_required`` result with the question
  (multi round-trip requests); its retry, with the answer and the request
  state (sealed to this caller by the SDK's `RequestStateBoundary`), sends
  the answer to the task.

Declined or cancelled, the call ends with the question and the ``taskId``,
as for a client that takes no elicitations: the task still waits, and can be
answered later by calling the tool again with ``taskId``. Whose task it is
is checked on every message (`handoffs.message_skill`): a state naming
another user's task would be refused there even if it were not sealed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext

from gateway.mcp.input_relay import can_be_asked, is_modern, put_to_caller, takes_form

ANSWER_KEY = "switchboard-answer"
ANSWER_STATE = "switchboard-answer:"
MAX_ROUNDS = 10  # as many as a flow's step lets its agent ask (`questions.MAX_QUESTIONS`)
MAX_ANSWER = 16000
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "title": "Your answer", "maxLength": MAX_ANSWER},
    },
    "required": ["answer"],
}


@dataclass(frozen=True)
class Asked:
    """A task that asks its user: which, and what (``round``: which question
    of a flow's run it is, so an answer is never taken for a later one)."""

    task_id: str
    context_id: str
    question: str
    round: int | None = None

    def reply(self, answer: str) -> dict[str, Any]:
        """The tool's arguments that send ``answer`` to the task."""
        sent: dict[str, Any] = {"message": answer, "taskId": self.task_id}
        sent["contextId"] = self.context_id
        if self.round is not None:
            sent[ROUND] = self.round
        return sent


# An answer's question (`gateway.flows.agent`: an A2A message's ``metadata.round``).
ROUND = "round"


def waiting_question(result: types.CallToolResult) -> Asked | None:
    """The question of a result whose task asks for input."""
    found: Mapping[str, Any] = result.structured_content or {}
    if found.get("state") != "TASK_STATE_INPUT_REQUIRED" or "approval" in found:
        return None  # an end, or a flow's checkpoint: its approver decides, not the user
    task, context = found.get("taskId"), found.get("contextId")
    if not isinstance(task, str) or not isinstance(context, str):
        return None
    question = found.get("question")
    said = question if isinstance(question, str) and question else "The agent needs more input."
    round_ = found.get("questionRound")
    number = int(round_) if isinstance(round_, str) and round_.isdigit() else None
    return Asked(task, context, said, number)


def takes_form_questions(ctx: ServerRequestContext) -> bool:
    """A client whose elicitation capability covers form mode."""
    capabilities = getattr(ctx.session, "client_capabilities", None)
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and takes_form(elicitation)


def question(text: str, agent: str) -> types.ElicitRequest:
    return types.ElicitRequest(
        params=types.ElicitRequestFormParams(
            message=f"{agent} asks: {text}"[:4000], requested_schema=ANSWER_SCHEMA
        )
    )


def answer_of(result: Any) -> str | None:
    """The user's words, if they accepted and said something."""
    if not isinstance(result, types.ElicitResult) or result.action != "accept":
        return None
    said = (result.content or {}).get("answer")
    if not isinstance(said, str) or not said.strip():
        return None
    return said[:MAX_ANSWER]


def ask_later(
    result: types.CallToolResult, agent: str, ctx: ServerRequestContext
) -> types.CallToolResult | types.InputRequiredResult:
    """For a 2026-07-28 client that takes elicitations, the result's question
    as an ``input_required`` result; any other gets the result itself."""
    asked = waiting_question(result)
    if asked is None or not is_modern(ctx) or not can_be_asked(ctx):
        return result
    state = ANSWER_STATE + json.dumps(
        {"taskId": asked.task_id, "contextId": asked.context_id, ROUND: asked.round}
    )
    return types.InputRequiredResult(
        input_requests={ANSWER_KEY: question(asked.question, agent)}, request_state=state
    )


async def ask_now(asked: Asked | None, agent: str, ctx: ServerRequestContext) -> str | None:
    """For a 2025-11-25 client that takes form elicitations: the user's answer
    to ``asked``, asked on the call's stream (None: no question, no such
    client, declined -- or the client refused to be asked)."""
    if asked is None or is_modern(ctx) or not takes_form_questions(ctx):
        return None
    try:
        return answer_of(await put_to_caller(ctx, question(asked.question, agent)))
    except MCPError:
        return None


def continued(params: types.CallToolRequestParams) -> tuple[Asked, str | None] | None:
    """The 2026-07-28 retry that answers our question: the task asked, and the
    user's answer (None: declined). None: not such a retry."""
    state = params.request_state
    if not isinstance(state, str) or not state.startswith(ANSWER_STATE):
        return None
    try:
        task = json.loads(state.removeprefix(ANSWER_STATE))
    except ValueError:
        return None
    if not isinstance(task, dict):
        return None
    task_id, context_id, round_ = task.get("taskId"), task.get("contextId"), task.get(ROUND)
    if not isinstance(task_id, str) or not isinstance(context_id, str):
        return None
    asked = Asked(task_id, context_id, "", round_ if isinstance(round_, int) else None)
    return asked, answer_of((params.input_responses or {}).get(ANSWER_KEY))


def still_waiting(name: str, asked: Asked) -> types.CallToolResult:
    """Our question declined: nothing sent; the task waits, to be answered later."""
    text = (
        f"{name}: not answered; task {asked.task_id} still waits for more input -- "
        "call again with its taskId to answer"
    )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={
            "taskId": asked.task_id,
            "contextId": asked.context_id,
            "state": "TASK_STATE_INPUT_REQUIRED",
        },
    )
