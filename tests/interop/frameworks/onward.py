"""What a chain agent (tests/interop/test_chain.py) does to call onward
through the gateway, in any framework's environment: an A2A 1.0
`SendMessage` to ``{SWITCHBOARD_URL}/a2a/{target}``, authenticated by the
project's `TokenExchangeAuth` (the token this request came with, exchanged
with the agent's own credentials), carrying the caller's trace context; the
answer's text.

Configured by the environment: SWITCHBOARD_URL, AGENT_ID, SECRET_FILE (the
agent's client secret, read when first needed: it is issued after the agent
is registered).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

try:
    import httpx
except ImportError:  # pydantic-ai 2 and mcp 2 environments ship httpx2 only
    import httpx2

    httpx2.alias_httpx()
    import httpx

from seen import RECEIVED, Received

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository
from gateway.client.token_exchange import TokenExchangeAuth

ENDED = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_REJECTED", "TASK_STATE_CANCELED"}


def _auth(received: Received) -> TokenExchangeAuth:
    return TokenExchangeAuth(
        os.environ["SWITCHBOARD_URL"],
        os.environ["AGENT_ID"],
        Path(os.environ["SECRET_FILE"]).read_text().strip(),
        subject_token=lambda: received.get("bearer"),
        traceparent=lambda: received.get("traceparent"),
    )


def _text(result: dict[str, Any]) -> str:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for key, inner in value.items():
                if key != "history":
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(result.get("artifacts") or result.get("message") or result.get("task") or result)
    return " ".join(found)


async def send(target: str, parts: list[dict[str, Any]], received: Received | None = None) -> str:
    """Send ``parts`` to ``target`` through the gateway; the answer's text."""
    received = received if received is not None else RECEIVED.get()
    url = f"{os.environ['SWITCHBOARD_URL']}/a2a/{target}"
    message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": parts}
    headers = {"A2A-Version": "1.0"}
    async with httpx.AsyncClient(auth=_auth(received), timeout=60, trust_env=False) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        answer = (await http.post(url, json=body, headers=headers)).json()
        if "error" in answer:
            raise RuntimeError(f"{target} refused: {answer['error']}")
        result = answer["result"]
        task = result.get("task")
        for _ in range(300):
            if task is None or task["status"]["state"] in ENDED:
                break
            await asyncio.sleep(0.1)
            get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task["id"]}}
            task = (await http.post(url, json=get, headers=headers)).json()["result"]
        return _text(task if task is not None else result)
