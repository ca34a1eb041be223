"""`tools/call` of an agent's skill at `/mcp` (`gateway.mcp.front`): the
agent's answer as the tool's result, its question put to the caller's user
as an elicitation where the client takes them (`gateway.mcp.agent_questions`),
a call held for approval as the held answer (`gateway.mcp.approvals`), and
the agent's own failure as a tool error the model can read."""

from __future__ import annotations

import mcp_types as types
from a2a.utils.errors import A2AError
from mcp.server import ServerRequestContext

from gateway.agents.outages import DependencyUnavailableError
from gateway.delegation.pipeline import ApprovalRequired, Caller, DelegationDenied
from gateway.mcp import agent_questions
from gateway.mcp.agent_tools import AgentSkillTools, SkillCallRefused, SkillTool
from gateway.mcp.approvals import McpApprovals
from gateway.mcp.errors import mcp_error
from gateway.mcp.input_relay import ProgressRelay, can_be_asked
from policies.tokens import TokenInvalid


async def call_skill(
    agent_tools: AgentSkillTools,
    approvals: McpApprovals | None,
    skill: SkillTool,
    params: types.CallToolRequestParams,
    caller: Caller,
    trace_id: str,
    progress: ProgressRelay,
    approved: bool,
    *,
    ctx: ServerRequestContext,
) -> types.CallToolResult | types.InputRequiredResult:
    sent = params.arguments
    answering = agent_questions.continued(params)
    if answering is not None:
        asked, said = answering
        if said is None:  # our question declined: nothing sent, the task waits
            return agent_questions.still_waiting(params.name, asked)
        sent = asked.reply(said)
    try:
        result = await agent_tools.call(
            skill, sent, caller=caller, trace_id=trace_id, progress=progress, approved=approved
        )
        for _ in range(agent_questions.MAX_ROUNDS):
            question = agent_questions.waiting_question(result)
            said = await agent_questions.ask_now(question, skill.agent_id, ctx)
            if question is None or said is None:
                break
            sent = question.reply(said)
            result = await agent_tools.call(
                skill, sent, caller=caller, trace_id=trace_id, progress=progress, approved=approved
            )
        return agent_questions.ask_later(result, skill.agent_id, ctx)
    except ApprovalRequired as pending:
        if approvals is None:
            raise mcp_error(pending, params.name) from None
        # What was held is what was being sent (an answer, perhaps), not the first call.
        return await approvals.hold(
            pending,
            params.name,
            sent,
            kind="skill",
            output_schema=False,
            ask=can_be_asked(ctx),
        )
    except (DelegationDenied, TokenInvalid) as exc:
        raise mcp_error(exc, params.name) from None
    except DependencyUnavailableError:
        raise  # not the tool's failure: `OutageBoundary` answers it
    except (SkillCallRefused, A2AError) as exc:
        # A tool execution error, reported in the result (MCP, tools:
        # "Tool Execution Errors"), so the model can see it and retry.
        text = f"{params.name}: {exc}"
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=True
        )
