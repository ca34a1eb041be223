"""A2A client smoke test using the a2a-sdk (0.3.x) pinned by strands-agents.

Usage: a2a_client.py URL TOKEN TEXT [--stream] [--card-path PATH]
Resolves URL/PATH (default /.well-known/agent-card.json), sends TEXT (message/send, or
message/stream with --stream)
with ``Authorization: Bearer TOKEN`` on every request, prints {"state": ..., "text": ...}.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.helpers import create_text_message_object
from a2a.types import Message, Part, Task


def _texts(parts: list[Part]) -> list[str]:
    return [p.root.text for p in parts if getattr(p.root, "kind", None) == "text" and p.root.text]


def summarize(final: Task | Message | None) -> dict[str, str | None]:
    if final is None:
        return {"state": None, "text": None}
    if isinstance(final, Message):
        return {"state": "message", "text": "".join(_texts(final.parts))}
    texts = [t for a in final.artifacts or [] for t in _texts(a.parts)]
    if not texts and final.status.message:
        texts = _texts(final.status.message.parts)
    return {"state": final.status.state.value, "text": "".join(texts)}


async def run(
    url: str, token: str, text: str, stream: bool, card_path: str | None
) -> dict[str, str | None]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        client = await ClientFactory.connect(
            url, ClientConfig(httpx_client=http, streaming=stream), relative_card_path=card_path
        )
        final: Task | Message | None = None
        async for event in client.send_message(create_text_message_object(content=text)):
            final = event if isinstance(event, Message) else event[0]  # (Task, update) tuples
        await client.close()
    return summarize(final)


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
