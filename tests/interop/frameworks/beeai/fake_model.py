"""Deterministic fake BeeAI chat model: answers ``beeai says: <last user text>`` (no LLM, no network).

A ``ChatModel`` subclass implementing ``_create`` / ``_create_stream``. BeeAI's RequirementAgent offers the
model a ``final_answer`` tool and requires a tool call, so when that tool is offered the model calls it with
``{"response": ...}``; otherwise it answers in plain text. The RequirementAgent wraps the user's text in its
task template ("Your task: ...") unless the agent is built with ``templates={"task": ...}`` = "{{prompt}}"
(server.py does that); the model also strips that prefix, so either way it echoes the user's own words.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator

from beeai_framework.backend import (
    AssistantMessage,
    ChatModel,
    ChatModelOutput,
    MessageToolCallContent,
    UserMessage,
)
from beeai_framework.backend.types import ChatModelInput, ChatModelUsage
from beeai_framework.context import RunContext

PREFIX = "beeai says: "
TASK_MARK = "Your task: "


def _last_user_text(model_input: ChatModelInput) -> str:
    for message in reversed(model_input.messages):
        if isinstance(message, UserMessage) and message.text:
            text = message.text
            return text.rsplit(TASK_MARK, 1)[-1] if TASK_MARK in text else text
    return ""


class EchoChatModel(ChatModel):
    """Echoes the latest user message with a fixed prefix."""

    @property
    def model_id(self) -> str:
        return "echo"

    @property
    def provider_id(self) -> str:  # ProviderName is a Literal; "beeai" is one of its values
        return "beeai"

    def _answer(self, model_input: ChatModelInput) -> ChatModelOutput:
        text = PREFIX + _last_user_text(model_input)
        final_answer = next((t for t in model_input.tools or [] if t.name == "final_answer"), None)
        if final_answer is not None:
            call = MessageToolCallContent(
                id=f"call_{uuid.uuid4().hex[:8]}",
                tool_name="final_answer",
                args=json.dumps({"response": text}),
            )
            message = AssistantMessage([call])
            finish = "tool_calls"
        else:
            message = AssistantMessage(text)
            finish = "stop"
        return ChatModelOutput(
            output=[message],
            finish_reason=finish,
            usage=ChatModelUsage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        )

    async def _create(self, input: ChatModelInput, run: RunContext) -> ChatModelOutput:
        return self._answer(input)

    async def _create_stream(
        self, input: ChatModelInput, run: RunContext
    ) -> AsyncGenerator[ChatModelOutput]:
        yield self._answer(input)

    async def clone(self) -> EchoChatModel:
        return EchoChatModel()
