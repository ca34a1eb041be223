"""A2A client smoke test with Google ADK's RemoteA2aAgent, run by an InMemoryRunner (no LLM).

Usage: a2a_client.py URL TOKEN TEXT [--card-path PATH]
The card is read from URL + PATH (default /.well-known/agent-card.json); RemoteA2aAgent
is given an httpx.AsyncClient carrying ``Authorization: Bearer TOKEN`` (card fetch and
every A2A call), is the Runner's root agent (it needs no model), and the text of the
events it yields is printed as {"state": ..., "text": ...}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import warnings

os.environ.setdefault("OTEL_SDK_DISABLED", "true")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import httpx  # noqa: E402
from google.adk.agents.remote_a2a_agent import RemoteA2aAgent  # noqa: E402
from google.adk.runners import InMemoryRunner  # noqa: E402
from google.genai import types  # noqa: E402


async def run(url: str, token: str, text: str, card_path: str | None) -> dict[str, str | None]:
    card_url = url.rstrip("/") + (card_path or "/.well-known/agent-card.json")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        remote = RemoteA2aAgent(name="remote", agent_card=card_url, httpx_client=http)
        runner = InMemoryRunner(agent=remote, app_name="interop")
        session = await runner.session_service.create_session(app_name="interop", user_id="alice")
        message = types.Content(role="user", parts=[types.Part(text=text)])
        texts: list[str] = []
        state: str | None = None
        async for event in runner.run_async(
            user_id="alice", session_id=session.id, new_message=message
        ):
            if event.error_code or event.error_message:
                state = "error"
                texts.append(f"{event.error_code}: {event.error_message}")
            if event.content and event.content.parts and not event.partial:
                texts += [p.text for p in event.content.parts if p.text and not p.thought]
        await runner.close()
    # ADK turns the A2A reply into genai events (text only); no task state survives, so
    # "completed" here means: the run ended without an error event.
    return {"state": state or "completed", "text": "".join(texts)}


if __name__ == "__main__":
    argv = sys.argv[1:]
    card_path = None
    if "--card-path" in argv:
        at = argv.index("--card-path")
        card_path = argv[at + 1]
        del argv[at : at + 2]
    print(json.dumps(asyncio.run(run(argv[0], argv[1], argv[2], card_path))))
