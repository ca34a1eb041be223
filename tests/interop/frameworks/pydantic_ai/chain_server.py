"""The middle of the cross-vendor chain (tests/interop/test_chain.py): a
pydantic-ai agent served over A2A (fasta2a) whose deterministic model calls
its tool `add`, which runs the MCP tool `add` of the server ``TARGET_ID``
through the gateway (its A2A face, ``/a2a/{TARGET_ID}``), with a token
exchanged from the one this task came with (`onward.send`).

Usage: chain_server.py PORT SEEN_FILE (and SWITCHBOARD_URL, AGENT_ID,
SECRET_FILE, TARGET_ID in the environment).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # seen.py, onward.py

import uvicorn
from fasta2a.broker import InMemoryBroker
from fasta2a.pydantic_ai import agent_to_a2a
from fasta2a.pydantic_ai._bridge import AgentWorker, worker_lifespan
from fasta2a.storage import InMemoryStorage
from onward import send
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from seen import BY_MESSAGE, RECEIVED, SeenMiddleware


def _model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Asked a sum: call `add` with the two numbers; given its result, say it."""
    last = messages[-1]
    returned = [p for p in getattr(last, "parts", []) if isinstance(p, ToolReturnPart)]
    if returned:
        return ModelResponse(parts=[TextPart(f"pydantic-ai computed: {returned[0].content}")])
    asked = " ".join(
        str(p.content)
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart)
    )
    a, b = (int(n) for n in re.findall(r"-?\d+", asked)[:2])
    return ModelResponse(parts=[ToolCallPart("add", {"a": a, "b": b})])


@dataclass
class ChainWorker(AgentWorker[Any, None]):
    """fasta2a runs tasks in a worker, away from the request that asked: the
    task's message id says which request that was (`seen.BY_MESSAGE`)."""

    async def run_task(self, params: Any) -> None:
        task = await self.storage.load_task(params["id"])
        asked = (task or {}).get("history", [])[-1:] or [{}]
        received = BY_MESSAGE.get(asked[0].get("message_id") or asked[0].get("messageId") or "")
        token = RECEIVED.set(received or {})
        try:
            await super().run_task(params)
        finally:
            RECEIVED.reset(token)


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    agent = Agent(FunctionModel(_model), name="pricing")

    @agent.tool_plain
    async def add(a: int, b: int) -> str:
        """Add two numbers with the calculator MCP server, through the gateway."""
        data = {"tool": "add", "arguments": {"a": a, "b": b}}
        return await send(os.environ["TARGET_ID"], [{"data": data}])

    skill = {
        "id": "price",
        "name": "Price",
        "description": "Adds up a price.",
        "tags": ["test"],
        "input_modes": ["text/plain"],
        "output_modes": ["text/plain"],
    }
    storage, broker = InMemoryStorage(), InMemoryBroker()
    worker = ChainWorker(agent=agent, broker=broker, storage=storage)
    app = agent_to_a2a(
        agent,
        name="pricing",
        url=f"http://127.0.0.1:{port}",
        skills=[skill],
        storage=storage,
        broker=broker,
        lifespan=partial(worker_lifespan, worker=worker, agent=agent),
    )
    uvicorn.run(SeenMiddleware(app, seen_file), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
