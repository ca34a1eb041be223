"""A2A server for a pydantic-ai agent, for the gateway's interop tests.

Usage: server.py PORT SEEN_FILE

Serves `fasta2a.pydantic_ai.agent_to_a2a(agent)` (pydantic-ai 2 removed
`Agent.to_a2a()`; the bridge now lives in `fasta2a[pydantic-ai]`) with uvicorn on
127.0.0.1:PORT. The agent runs a deterministic FunctionModel (no LLM) that answers
"pydantic-ai says: <last user text>", streamed in two chunks when the run streams.
Every HTTP request is appended to SEEN_FILE as one JSON line:
{"method", "path", "authorization", "body"}.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fasta2a.pydantic_ai import agent_to_a2a
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from seen import SeenMiddleware


def _last_user_text(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart):
                    content = part.content
                    return (
                        content
                        if isinstance(content, str)
                        else " ".join(c for c in content if isinstance(c, str))
                    )
    return ""


def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f"pydantic-ai says: {_last_user_text(messages)}")])


async def _stream_answer(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    yield "pydantic-ai says: "
    yield _last_user_text(messages)


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    agent = Agent(FunctionModel(_answer, stream_function=_stream_answer), name="pydantic-ai-echo")
    app = agent_to_a2a(
        agent,
        name="pydantic-ai-echo",
        url=f"http://127.0.0.1:{port}",
        description="Deterministic pydantic-ai echo agent (FunctionModel).",
        # The default card has no skills, which A2A 1.0 requires (§4.4.1): the
        # gateway refuses such a card, so the agent names what it does.
        skills=[
            {
                "id": "echo",
                "name": "Echo",
                "description": "Answers with what it was told.",
                "tags": ["test"],
                "input_modes": ["text/plain"],
                "output_modes": ["text/plain"],
            }
        ],
    )
    uvicorn.run(SeenMiddleware(app, seen_file), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
