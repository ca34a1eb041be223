"""Deterministic fake Strands model: replies ``strands says: <last user text>`` (no LLM, no network).

If the user text contains ``[slow]`` the model sleeps SLOW_SECONDS first (to exercise tasks/cancel).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any, TypeVar

from pydantic import BaseModel
from strands.models import Model
from strands.types.content import Messages
from strands.types.streaming import StreamEvent

T = TypeVar("T", bound=BaseModel)
SLOW_SECONDS = 15.0


def _last_user_text(messages: Messages) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            texts = [b["text"] for b in msg.get("content", []) if "text" in b]
            if texts:
                return " ".join(texts)
    return ""


class EchoModel(Model):
    """Fake model emitting the Bedrock-style ConverseStream event dicts Strands' event loop expects."""

    def __init__(self, prefix: str = "strands says: ") -> None:
        self.config: dict[str, Any] = {"model_id": "echo", "prefix": prefix}

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return self.config

    async def stream(
        self,
        messages: Messages,
        tool_specs: Any = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterable[StreamEvent]:
        user_text = _last_user_text(messages)
        if "[slow]" in user_text:
            await asyncio.sleep(SLOW_SECONDS)
        text = self.config["prefix"] + user_text
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": text}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {
            "metadata": {
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 0},
            }
        }

    async def structured_output(
        self,
        output_model: type[T],
        prompt: Messages,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        raise NotImplementedError("EchoModel has no structured output")
        yield {}  # pragma: no cover
