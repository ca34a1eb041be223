"""Deterministic fake Agno model: replies ``agno says: <last user text>`` (no LLM, no network).

Subclasses ``agno.models.base.Model`` (a dataclass) and implements its six
abstract methods; the "provider response" is the answer string itself. If the
user text contains ``[slow]`` the model sleeps SLOW_SECONDS first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from agno.models.base import Model
from agno.models.message import Message
from agno.models.response import ModelResponse

SLOW_SECONDS = 15.0


def _last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.get_content_string()
    return ""


@dataclass
class EchoModel(Model):
    id: str = "echo"
    name: str = "EchoModel"
    provider: str = "Fake"
    prefix: str = "agno says: "

    def _answer(self, messages: list[Message]) -> str:
        return self.prefix + _last_user_text(messages)

    def invoke(self, messages: list[Message], *args: Any, **kwargs: Any) -> ModelResponse:
        text = self._answer(messages)
        if "[slow]" in text:
            time.sleep(SLOW_SECONDS)
        return self._parse_provider_response(text)

    async def ainvoke(self, messages: list[Message], *args: Any, **kwargs: Any) -> ModelResponse:
        text = self._answer(messages)
        if "[slow]" in text:
            await asyncio.sleep(SLOW_SECONDS)
        return self._parse_provider_response(text)

    def invoke_stream(
        self, messages: list[Message], *args: Any, **kwargs: Any
    ) -> Iterator[ModelResponse]:
        yield self.invoke(messages)

    async def ainvoke_stream(
        self, messages: list[Message], *args: Any, **kwargs: Any
    ) -> AsyncIterator[ModelResponse]:
        yield await self.ainvoke(messages)

    def _parse_provider_response(self, response: Any, **kwargs: Any) -> ModelResponse:
        return ModelResponse(role="assistant", content=response)

    def _parse_provider_response_delta(self, response: Any) -> ModelResponse:
        return ModelResponse(role="assistant", content=response)
