"""A subscription to a task the gateway holds (here: waiting for an approval)
ends at `stream_max_seconds`, as a relayed stream does -- over A2A 1.0
(`SubscribeToTask`) and 0.3 (`tasks/resubscribe`). It used to stay open for
as long as the approval waited (found by the A2A fuzz suite, which hung CI)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from registry.tls import client_tls
from tests.support.fuzzing import Deployment, deployment
from tests.support.inspecting import send_message_body


@pytest.fixture(scope="module")
def held_task(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str]]:
    # The deployment's stream limit is 3 s.
    with deployment(tmp_path_factory.mktemp("held"), None) as live:
        with live.gateway.client(live.user_token) as user:
            answer = user.post(
                "/a2a/held",
                json=send_message_body("hold me", "m-held"),
                headers={"A2A-Version": "1.0"},
            ).json()
        task = answer["result"]["task"]
        assert task["status"]["state"] != "TASK_STATE_COMPLETED", task
        yield live, str(task["id"])


def _events(text: str) -> list[dict[str, object]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


@pytest.mark.parametrize(
    ("method", "version"), [("SubscribeToTask", "1.0"), ("tasks/resubscribe", "0.3")]
)
def test_a_subscription_to_a_held_task_ends_at_the_stream_limit(
    held_task: tuple[Deployment, str], method: str, version: str
) -> None:
    live, task_id = held_task
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"id": task_id}}
    headers = {"Authorization": f"Bearer {live.user_token}", "A2A-Version": version}
    # Read line by line, giving up well past the limit: a stream that does not
    # end fails here instead of hanging the suite.
    lines: list[str] = []
    ended = False
    give_up = time.monotonic() + 30
    with (
        httpx.Client(base_url=live.url, timeout=httpx.Timeout(60), verify=client_tls()) as client,
        client.stream("POST", "/a2a/held", json=body, headers=headers) as answer,
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            lines.append(line)
            if time.monotonic() > give_up:
                break
        else:
            ended = True
    assert ended, "the subscription was still open 30 s in (the limit is 3 s)"
    events = _events("\n".join(lines))
    assert events, lines
    first = events[0]["result"]
    assert isinstance(first, dict) and task_id in json.dumps(first)
    assert all("error" not in event for event in events)
