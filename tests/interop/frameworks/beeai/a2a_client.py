"""BeeAI Framework A2A client smoke test (``A2AAgent``, a2a-sdk 0.3.x underneath).

Usage: a2a_client.py URL TOKEN TEXT [--stream] [--card-path PATH]
Resolves URL/PATH (default /.well-known/agent-card.json), sends TEXT with ``Authorization: Bearer TOKEN``
on the A2A calls (message/send, or message/stream with --stream), prints {"state": ..., "text": ...}.

Quirk: A2AAgent fetches the card with a bare ``httpx.AsyncClient()`` (no headers: anonymous), and only the
A2A calls carry the configured headers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import warnings

os.environ.setdefault("BEEAI_LOG_LEVEL", "WARNING")
warnings.filterwarnings("ignore")

from beeai_framework.adapters.a2a.agents.agent import (  # noqa: E402
    A2AAgent,
    A2AAgentParameters,
    HttpxAsyncClientParameters,
)
from beeai_framework.memory import UnconstrainedMemory  # noqa: E402


async def run(
    url: str, token: str, text: str, stream: bool, card_path: str | None
) -> dict[str, str | None]:
    params = A2AAgentParameters(
        httpx_async_client=HttpxAsyncClientParameters(
            headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
    )
    kwargs = {"agent_card_path": card_path} if card_path else {}
    agent = A2AAgent(url=url, memory=UnconstrainedMemory(), parameters=params, **kwargs)
    out = await agent.run(text, streaming=stream)
    event = out.event
    task = event[0] if isinstance(event, tuple) else None
    state = task.status.state.value if task is not None else "message"
    return {"state": state, "text": out.last_message.text}


if __name__ == "__main__":
    argv = sys.argv[1:]
    card_path = None
    if "--card-path" in argv:
        at = argv.index("--card-path")
        card_path = argv[at + 1]
        del argv[at : at + 2]
    stream = "--stream" in argv
    args = [a for a in argv if a != "--stream"]
    print(json.dumps(asyncio.run(run(args[0], args[1], args[2], stream, card_path))))
