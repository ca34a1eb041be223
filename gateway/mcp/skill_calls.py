"""`tools/call` of an agent's skill at `/mcp` (`gateway.mcp.front`): the
agent's answer as the tool's result, a call held for approval as the held
answer (`gateway.mcp.approvals`), and the agent's own failure as a tool
error the model can read."""

from __future__ import annotations

import mcp_types as types
from a2a.utils.errors import A2AError

from gateway.agents.outages import DependencyUnavailableError
from gateway.delegation.pipeline import ApprovalRequired, Caller, DelegationDenied
from gateway.mcp.agent_tools import AgentSkillTools, SkillCallRefused, SkillTool
from gateway.mcp.approvals import McpApprovals
from gateway.mcp.errors import mcp_error
from gateway.mcp.input_relay import ProgressRelay


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
    ask: bool = False,
) -> types.CallToolResult | types.InputRequiredResult:
    try:
        return await agent_tools.call(
            skill,
            params.arguments,
            caller=caller,
            trace_id=trace_id,
            progress=progress,
            approved=approved,
        )
    except ApprovalRequired as pending:
        if approvals is None:
            raise mcp_error(pending, params.name) from None
        return await approvals.hold(
            pending,
            params.name,
            params.arguments,
            kind="skill",
            output_schema=False,
            ask=ask,
        )
    except DelegationDenied as exc:
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
