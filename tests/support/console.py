"""Logging in to the console over plain HTTP (httpx), as a browser would; calls
held for approval, made with the official a2a-sdk client."""

from __future__ import annotations

import re

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.types import GetTaskRequest, Role, SendMessageRequest, Task, TaskState
from google.protobuf.json_format import MessageToDict

from registry.tls import client_tls
from tests.support.gateway import Gateway

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, html[:2000]
    return found.group(1)


def browser(gateway: Gateway) -> httpx.Client:
    """A browser's client of the console: redirects shown, not followed."""
    return httpx.Client(
        base_url=gateway.url, timeout=30, follow_redirects=False, verify=client_tls()
    )


def dev_login(client: httpx.Client, subject: str, scopes: str = "") -> str:
    """Log ``client`` in with the dev login; the session's CSRF token."""
    form = client.get("/ui/login")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/ui/login/dev",
        data={"csrf": csrf_of(form.text), "subject": subject, "scopes": scopes},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui"
    return csrf_of(client.get("/ui").text)


def user_token(gateway: Gateway, user: str) -> str:
    return gateway.token(user, "crm:read")


async def held_call(gateway: Gateway, token: str, text: str) -> tuple[Task, str]:
    """The token's user asks the worker (held for approval): the task and its approval id."""
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=client_tls()
    ) as http:
        client = await ClientFactory(
            ClientConfig(httpx_client=http, streaming=False)
        ).create_from_url(f"{gateway.url}/a2a/worker")
        request = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
        events = [event async for event in client.send_message(request)]
    task = events[0].task
    assert task.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
    return task, str(MessageToDict(task.status.message.metadata)["approval"])


async def task_state(gateway: Gateway, token: str, task_id: str) -> int:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=client_tls()
    ) as http:
        client = await ClientFactory(
            ClientConfig(httpx_client=http, streaming=False)
        ).create_from_url(f"{gateway.url}/a2a/worker")
        return int((await client.get_task(GetTaskRequest(id=task_id))).status.state)
