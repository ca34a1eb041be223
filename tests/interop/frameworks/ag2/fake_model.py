"""Deterministic fake AG2 model: replies ``ag2 says: <last user text>`` (no LLM, no network).

AG2 1.x models are a ``ModelConfig`` (what ``Agent(config=...)`` takes) whose
``create()`` returns an ``LLMClient`` (called with the conversation's events).
Both are Protocols in ``ag2.config``; these subclass them explicitly.
The answer is published as one ``ModelMessageChunk`` before the final
``ModelResponse``, as a streaming provider client would (the A2A executor turns
chunks into artifact updates). If the user text contains ``[slow]`` the model
sleeps SLOW_SECONDS first (to exercise CancelTask).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Self

from ag2.config import LLMClient, ModelConfig, ModelProvider
from ag2.context import ConversationContext
from ag2.events import BaseEvent, ModelMessage, ModelMessageChunk, ModelRequest, ModelResponse
from ag2.events.input_events import TextInput

SLOW_SECONDS = 15.0


def _last_user_text(messages: Sequence[BaseEvent]) -> str:
    for event in reversed(messages):
        if isinstance(event, ModelRequest):
            texts = [p.content for p in event.parts if isinstance(p, TextInput)]
            if texts:
                return " ".join(texts)
    return ""


class EchoClient(LLMClient):
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def __call__(
        self, messages: Sequence[BaseEvent], context: ConversationContext, **kwargs: Any
    ) -> ModelResponse:
        user_text = _last_user_text(messages)
        if "[slow]" in user_text:
            await asyncio.sleep(SLOW_SECONDS)
        text = self.prefix + user_text
        # One chunk: the executor appends each chunk as a separate *part* of the
        # artifact, so two chunks would read back as "ag2 says: " + "<text>".
        await context.send(ModelMessageChunk(text))
        message = ModelMessage(text)
        await context.send(message)
        return ModelResponse(message, model="echo", finish_reason="stop")


class EchoConfig(ModelConfig):
    def __init__(self, prefix: str = "ag2 says: ") -> None:
        self.prefix = prefix

    @property
    def provider(self) -> ModelProvider:
        return ModelProvider.OPENAI  # no "fake" provider exists; never contacted

    @property
    def model(self) -> str:
        return "echo"

    def copy(self) -> Self:
        return self

    def create(self) -> EchoClient:
        return EchoClient(self.prefix)
