"""Deterministic fake CrewAI LLM: answers ``crewai says: <user text>`` (no LLM, no network).

A ``crewai.llms.base_llm.BaseLLM`` subclass. CrewAI hands the model a ReAct-style prompt whose user message
holds ``Current Task: <task description>`` (the A2A executor makes the task description the user's text)
followed by the expected-output criteria; the model extracts that text and answers in CrewAI's
``Final Answer:`` format, which the agent executor parses.
"""

from __future__ import annotations

import re
from typing import Any

from crewai.llms.base_llm import BaseLLM

PREFIX = "crewai says: "
TASK = re.compile(r"Current Task:\s*(.*?)(?:\n\s*\n|\n\s*This is the expected|\Z)", re.S)


def user_text(messages: Any) -> str:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, str):
            continue
        found = TASK.search(content)
        return (found.group(1) if found else content).strip()
    return ""


class EchoLLM(BaseLLM):
    """Echoes the user's task text with a fixed prefix, as a CrewAI final answer."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("model", "echo")
        super().__init__(**kwargs)

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        return f"Thought: I echo the user.\nFinal Answer: {PREFIX}{user_text(messages)}"

    async def acall(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        return self.call(
            messages, tools, callbacks, available_functions, from_task, from_agent, response_model
        )

    def supports_function_calling(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 8192
