"""Deterministic fake ADK model: replies ``adk says: <last user text>`` (no LLM, no network).

If the user text contains ``[slow]`` it sleeps SLOW_SECONDS first (to exercise tasks/cancel).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from google.adk.models import BaseLlm, LlmRequest, LlmResponse
from google.adk.models._capabilities import LlmCapabilities
from google.genai import types

SLOW_SECONDS = 15.0


class EchoLlm(BaseLlm):
    """BaseLlm subclass that echoes the latest user text with a fixed prefix."""

    model: str = "echo-llm"
    prefix: str = "adk says: "

    @property
    def capabilities(self) -> LlmCapabilities:
        return LlmCapabilities(output_schema_and_tools=False)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        user_text = ""
        for content in reversed(llm_request.contents or []):
            if content.role == "user":
                user_text = "".join(p.text for p in content.parts or [] if p.text and not p.thought)
                if user_text:
                    break
        if "[slow]" in user_text:
            await asyncio.sleep(SLOW_SECONDS)
        text = self.prefix + user_text
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)]),
            partial=False,
            turn_complete=True,
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=1, candidates_token_count=1, total_token_count=2
            ),
        )
