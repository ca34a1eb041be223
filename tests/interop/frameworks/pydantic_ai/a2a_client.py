"""Send one text message to an A2A agent with fasta2a's own A2AClient and print the outcome.

Usage: a2a_client.py URL TOKEN TEXT

Uses `fasta2a.client.A2AClient` (the client of the A2A library pydantic-ai's bridge
ships in) over an httpx client that carries `Authorization: Bearer TOKEN`. Sends
`message/send`, polls `tasks/get` until the task reaches a final state (30 s max),
and prints one JSON line: {"state": ..., "text": <answer text>}.
The text is taken from the task's artifacts, else from its last agent message.

fasta2a 2.x speaks A2A 1.0 shapes under the old method names: it expects
`{"result": {"task": ...}}` and validates an A2A 0.3 answer (`{"result": {"kind": "task", ...}}`)
to an empty result. So the raw answer is captured with an httpx response hook, and a 0.3-shaped
task is used as is (tasks/get answers parse fine either way). And `A2AClient.get_task` sends
`"id": null`, which a2a-sdk 1.x servers (the gateway) refuse with -32600, so polling posts the
same fasta2a `GetTaskRequest` with a real id.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import httpx2

# fasta2a.client does `import httpx`; pydantic-ai 2 / mcp 2 ship `httpx2` instead of `httpx`.
# Alias it (must run before fasta2a.client is imported) rather than installing legacy httpx.
httpx2.alias_httpx()

from fasta2a.client import A2AClient, get_task_response_ta  # noqa: E402
from fasta2a.schema import GetTaskRequest, GetTaskResponse, Message, Part, a2a_request_ta  # noqa: E402

FINAL_STATES = {"completed", "canceled", "failed", "rejected", "input-required", "auth-required"}


def _text_of(task: dict[str, Any]) -> str:
    parts: list[dict[str, Any]] = [
        p for a in task.get("artifacts") or [] for p in a.get("parts", [])
    ]
    if not parts:
        agent_messages = [m for m in task.get("history") or [] if m.get("role") == "agent"]
        parts = agent_messages[-1]["parts"] if agent_messages else []
    return "".join(p["text"] if "text" in p else json.dumps(p.get("data")) for p in parts)


async def _get_task(client: A2AClient, task_id: str) -> GetTaskResponse:
    """`A2AClient.get_task`, but with a non-null JSON-RPC id."""
    payload = GetTaskRequest(
        jsonrpc="2.0", id=str(uuid.uuid4()), method="tasks/get", params={"id": task_id}
    )
    response = await client.http_client.post(
        "/",
        content=a2a_request_ta.dump_json(payload, by_alias=True),
        headers={"Content-Type": "application/json"},
    )
    client._raise_for_status(response)  # pyright: ignore[reportPrivateUsage]
    return get_task_response_ta.validate_json(response.content)


async def run(url: str, token: str, text: str) -> dict[str, Any]:
    raw: list[Any] = []

    async def capture(response: httpx2.Response) -> None:
        await response.aread()
        raw.append(
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else None
        )

    hooks = {"response": [capture]}
    async with httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, event_hooks=hooks
    ) as http:
        client = A2AClient(url, http_client=http)
        message = Message(role="user", parts=[Part(text=text)], message_id=str(uuid.uuid4()))
        sent = await client.send_message(message)
        if "error" in sent:
            return {"state": "error", "text": json.dumps(sent["error"])}
        result: dict[str, Any] = dict(sent["result"])
        if (
            not result and raw and isinstance(raw[-1], dict)
        ):  # A2A 0.3 shape: result is the Task/Message
            v03: dict[str, Any] = raw[-1].get("result") or {}
            result = {"message": v03} if v03.get("kind") == "message" else {"task": v03}
        if "message" in result:  # the agent answered with a message, no task
            return {"state": "completed", "text": _text_of({"history": [result["message"]]})}
        task: dict[str, Any] = dict(result["task"])
        for _ in range(300):
            if task["status"]["state"] in FINAL_STATES:
                break
            await asyncio.sleep(0.1)
            got = await _get_task(client, task["id"])
            if "error" in got:
                return {"state": "error", "text": json.dumps(got["error"])}
            task = dict(got["result"])
        return {"state": task["status"]["state"], "text": _text_of(task)}


def main() -> None:
    url, token, text = sys.argv[1], sys.argv[2], sys.argv[3]
    print(json.dumps(asyncio.run(run(url, token, text))))


if __name__ == "__main__":
    main()
