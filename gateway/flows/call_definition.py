"""What a flow's call step calls (an agent's skill, a tool, another flow),
and who answers when the agent asks (`gateway.flows.definition`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gateway.flows.document_basics import Expression, Strict


class CallTarget(Strict):
    """What a call step calls: exactly one of ``agent`` (with ``skill`` when
    the agent has several), ``tool``, or ``flow`` (a flow is an agent: it is
    called as ``agent``, and must be a flow)."""

    agent: str | None = Field(None, description="agent id: an A2A agent, gateway-run agent or flow")
    skill: str | None = Field(None, description="the agent's skill")
    tool: str | None = Field(None, description="a federated MCP tool, as /mcp names it")
    flow: str | None = Field(None, description="another flow's id (called as its agent)")

    @model_validator(mode="before")
    @classmethod
    def _flow_is_an_agent(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("flow") is not None:
            if data.get("agent") not in (None, data["flow"]) or data.get("tool") is not None:
                raise ValueError("name exactly one of agent, tool or flow")
            return {**data, "agent": data["flow"]}
        return data

    @model_validator(mode="after")
    def _one_target(self) -> CallTarget:
        if (self.agent is None) == (self.tool is None):
            raise ValueError("name exactly one of agent or tool")
        if self.tool is not None and self.skill is not None:
            raise ValueError("skill goes with agent, not with tool")
        return self

    @property
    def target(self) -> str:
        return self.agent if self.agent is not None else str(self.tool)


class Questions(Strict):
    """Who answers when the step's agent asks (`gateway.flows.answerers`)."""

    answer: Expression | None = Field(
        None,
        description="tried first: an answer from input, steps and question "
        "({question, data, agent, state, round}); a string is sent as text, an object as "
        "data; null or empty: the question goes to `to`",
    )
    to: Literal["user", "reviewer", "fail"] = Field(
        "user",
        description="the run's user; a reviewer on the approvals desk (approve with the "
        "answer, reject to end the run); or fail the step",
    )
