"""What an upstream tool asks or logs mid-call reaches its own caller, and only
that caller (`adapters.mcp_relay`, `gateway.mcp.relay`).

End to end: the official `mcp` client in both revisions against a real
gateway in front of a real SDK server that keeps 2025-11-25 sessions, over
HTTP on 127.0.0.1. Its tools are written the 2025-11-25 way -- `ctx.elicit`,
`create_message`, `ctx.info` during the call -- which only works when a
2025-11-25 caller's call reaches the server at 2025-11-25 (the gateway's
lane), and one the 2026-07-28 way (`InputRequiredResult`), which a
2025-11-25 caller still gets bridged.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import MCPError
from mcp.server.mcpserver import Context
from pydantic import BaseModel
from starlette.responses import JSONResponse

from registry.tls import client_tls
from tests.e2e.test_mcp_front import ask_name
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, buffered
from tests.support.mcp_clients import NameAnswerer, mcp_client
from tests.support.mcp_servers import Hang, ToolBox, upstream_server
from tests.support.servers import ServerThread

# Sampling and logging are deprecated as of 2026-07-28 (SEP-2577); these tools
# are the 2025-11-25 servers that still use them.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


class Name(BaseModel):
    name: str


async def ask_legacy(ctx: Context) -> str:
    """Asks its caller mid-call, the 2025-11-25 way."""
    try:
        answer = await ctx.elicit(message="Your name?", schema=Name)
    except Exception as exc:
        return f"cannot ask: {exc}"
    if answer.action == "accept":
        return f"Hello, {answer.data.name}!"
    return f"no answer: {answer.action}"


async def sample(prompt: str, ctx: Context) -> str:
    """Asks the caller's model mid-call."""
    try:
        result = await ctx.request_context.session.create_message(
            messages=[
                types.SamplingMessage(
                    role="user", content=types.TextContent(type="text", text=prompt)
                )
            ],
            max_tokens=20,
            related_request_id=ctx.request_id,
        )
    except Exception as exc:
        return f"cannot sample: {exc}"
    content = result.content
    return f"model said: {content.text if isinstance(content, types.TextContent) else '?'}"


# A test's calls of `chatty` that must be in flight together: by tag, the
# barrier they meet at between their first and second lines.
TOGETHER: dict[str, threading.Barrier] = {}


async def chatty(tag: str, ctx: Context) -> str:
    """Logs three lines, at three levels, tagged with its argument."""
    await ctx.debug(f"{tag} debug")
    meet = TOGETHER.get(tag)
    if meet is not None:
        await asyncio.to_thread(meet.wait, 10)  # the other caller's call is in flight too
    await ctx.info(f"{tag} info")
    await ctx.warning(f"{tag} warning")
    return tag


async def capabilities(ctx: Context) -> str:
    """The client capabilities this request arrived with."""
    declared = ctx.request_context.session.client_capabilities
    if declared is None:
        return "null"
    return json.dumps(declared.model_dump(by_alias=True, mode="json", exclude_none=True))


async def stray(ctx: Context) -> str:
    """Asks without naming the call it belongs to (the standalone stream)."""
    try:
        with anyio.fail_after(3):
            await ctx.request_context.session.elicit_form(
                "Stray question?", Name.model_json_schema()
            )
    except TimeoutError:
        return "unanswered"
    except Exception as exc:
        return f"refused: {exc}"
    return "answered"


LEFT_BEHIND: set[Any] = set()  # keeps the questions `ask_and_leave` leaves running
QUESTION_ARRIVED = threading.Event()  # set by the test's caller when it is asked


async def ask_and_leave(ctx: Context) -> str:
    """Asks on the call's stream, then answers the call without waiting for
    the reply: the question outlives the call (a buggy or hostile server)."""
    session = ctx.request_context.session
    question = asyncio.get_running_loop().create_task(
        session.elicit_form("Still there?", Name.model_json_schema(), ctx.request_id)
    )
    LEFT_BEHIND.add(question)
    question.add_done_callback(LEFT_BEHIND.discard)
    # The question reached the caller before the result.
    await asyncio.to_thread(QUESTION_ARRIVED.wait, 10)
    return "left"


@dataclass
class Relay:
    gateway: Gateway
    upstream: ServerThread
    hang: Hang
    recorder: Recorder

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    async def token(self, sub: str) -> str:
        return await anyio.to_thread.run_sync(self.gateway.token, sub, "")


@pytest.fixture
def relay(tmp_path: Path, database_url: str | None) -> Iterator[Relay]:
    box = ToolBox()
    hang = Hang()
    for tool in (ask_legacy, sample, chatty, capabilities, stray, ask_name, ask_and_leave):
        box.server.add_tool(tool, description=tool.__doc__ or tool.__name__)
    box.server.add_tool(hang.hang, name="hang", description="Waits until cancelled.")
    upstream, recorder, _ = upstream_server(box, stateless=False)
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        with gateway.client() as admin:
            response = admin.post(
                "/mcp-servers", json={"name": "Beta", "url": upstream.url + "/mcp"}
            )
            assert response.status_code == 201, response.text
        yield Relay(gateway, upstream, hang, recorder)
    finally:
        gateway.stop()
        upstream.stop()


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_a_legacy_tool_asks_its_legacy_caller(relay: Relay) -> None:
    answer = NameAnswerer()

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", elicitation_callback=answer) as client:
        result = await client.call_tool("beta__ask_legacy", {})
    assert text_of(result) == "Hello, Ada!"
    assert answer.asked == ["Your name?"]


async def test_a_caller_that_cannot_elicit_is_not_asked(relay: Relay) -> None:
    async with mcp_client(relay.url, await relay.token("alice"), "legacy") as client:
        result = await client.call_tool("beta__ask_legacy", {})
    # The server hears what the caller's own client would have said.
    assert text_of(result) == "cannot ask: Elicitation not supported"


async def test_a_legacy_tool_samples_the_callers_model(relay: Relay) -> None:
    prompts: list[str] = []

    async def model(context: Any, params: types.CreateMessageRequestParams) -> Any:
        content = params.messages[0].content
        prompts.append(content.text if isinstance(content, types.TextContent) else "?")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="forty-two"),
            model="test-model",
        )

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", sampling_callback=model) as client:
        result = await client.call_tool("beta__sample", {"prompt": "the answer?"})
    assert text_of(result) == "model said: forty-two"
    assert prompts == ["the answer?"]


async def test_each_caller_hears_only_its_own_call(relay: Relay) -> None:
    """Two users' calls in flight at once on the one shared upstream session:
    each gets its own log lines and its own question, never the other's."""
    heard: dict[str, list[str]] = {"alice": [], "bob": []}
    asked: dict[str, int] = {"alice": 0, "bob": 0}

    # Minted first: minting runs the migrations, one thread at a time.
    tokens = {user: await relay.token(user) for user in heard}

    async def run(user: str) -> tuple[str, str]:
        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            heard[user].append(str(params.data))

        async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked[user] += 1
            return types.ElicitResult(action="accept", content={"name": user})

        async with mcp_client(
            relay.url,
            tokens[user],
            "legacy",
            logging_callback=on_log,
            elicitation_callback=answer,
        ) as client:
            logged = await client.call_tool("beta__chatty", {"tag": user})
            greeted = await client.call_tool("beta__ask_legacy", {})
        return text_of(logged), text_of(greeted)

    results: dict[str, tuple[str, str]] = {}

    async def one(user: str) -> None:
        results[user] = await run(user)

    TOGETHER.update(dict.fromkeys(heard, threading.Barrier(len(heard))))
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(one, "alice")
            group.start_soon(one, "bob")
    finally:
        TOGETHER.clear()
    assert results == {"alice": ("alice", "Hello, alice!"), "bob": ("bob", "Hello, bob!")}
    # No setLevel: a 2025-11-25 server chooses, so every level arrives.
    assert heard["alice"] == ["alice debug", "alice info", "alice warning"]
    assert heard["bob"] == ["bob debug", "bob info", "bob warning"]
    assert asked == {"alice": 1, "bob": 1}


async def test_a_legacy_session_level_filters_relayed_lines(relay: Relay) -> None:
    heard: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        heard.append(str(params.data))

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", logging_callback=on_log) as client:
        await client.session.set_logging_level("warning")
        await client.call_tool("beta__chatty", {"tag": "t"})
    assert heard == ["t warning"]


async def test_a_modern_caller_gets_log_lines_only_when_it_opts_in(relay: Relay) -> None:
    heard: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        heard.append(str(params.data))

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "2026-07-28", logging_callback=on_log) as client:
        await client.call_tool("beta__chatty", {"tag": "quiet"})
    assert heard == []  # MCP 2026-07-28: no logLevel in _meta, no log lines
    async with mcp_client(
        relay.url, token, "2026-07-28", logging_callback=on_log, log_level="info"
    ) as client:
        await client.call_tool("beta__chatty", {"tag": "loud"})
    assert heard == ["loud info", "loud warning"]


async def test_a_modern_callers_capabilities_reach_the_upstream(relay: Relay) -> None:
    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "2026-07-28") as client:
        bare = json.loads(text_of(await client.call_tool("beta__capabilities", {})))
    async with mcp_client(relay.url, token, "2026-07-28", elicitation_callback=answer) as client:
        eliciting = json.loads(text_of(await client.call_tool("beta__capabilities", {})))
    # Not the gateway's own client's (which registers every callback): the caller's.
    assert bare == {}
    assert set(eliciting) == {"elicitation"}


async def test_a_question_from_no_call_is_never_put_to_a_user(relay: Relay) -> None:
    answer = NameAnswerer()

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", elicitation_callback=answer) as client:
        result = await client.call_tool("beta__stray", {})
    assert answer.asked == []
    # Refused by the gateway, or never delivered (the server's standalone
    # stream may not be open yet): never answered.
    assert text_of(result) == "unanswered" or text_of(result).startswith(
        "refused: elicitation is only relayed on the stream of the call"
    )


async def test_a_question_on_the_standalone_stream_is_refused_with_its_reason(
    relay: Relay,
) -> None:
    """Once the lane's standalone (GET) stream is open, a question sent on it
    is refused by the gateway, saying where it came from and why nobody is
    asked (it names no request: MCP puts no related request id on the wire)."""
    answer = NameAnswerer()
    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", elicitation_callback=answer) as client:
        results = []
        for _ in range(3):  # the first call opens the lane; its GET stream follows
            results.append(text_of(await client.call_tool("beta__stray", {})))
            if results[-1] != "unanswered":
                break
    assert answer.asked == []
    refused = results[-1]
    assert refused.startswith("refused: elicitation is only relayed on the stream of the call")
    assert "on the server's standalone (GET) stream" in refused
    assert "there is no user to ask" in refused


async def test_a_modern_style_tool_still_reaches_a_legacy_caller(relay: Relay) -> None:
    """A 2026-07-28 `InputRequiredResult` has no 2025-11-25 form: the lane's
    call fails upstream, the gateway sends it again at 2026-07-28 and asks the
    caller on its stream."""

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", elicitation_callback=answer) as client:
        result = await client.call_tool("beta__ask_name", {})
    assert text_of(result) == "Hello, Grace!"


async def test_a_legacy_callers_cancellation_reaches_the_upstream(relay: Relay) -> None:
    async with mcp_client(relay.url, await relay.token("alice"), "legacy") as client:
        with anyio.move_on_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(client.call_tool, "beta__hang", {})
                await anyio.to_thread.run_sync(relay.hang.started.wait, 10)
                group.cancel_scope.cancel()
    assert await anyio.to_thread.run_sync(relay.hang.cancelled.wait, 10)


async def test_a_token_exchange_server_gets_no_shared_legacy_session(relay: Relay) -> None:
    """Each call to it carries its user's own token: a 2025-11-25 session the
    gateway opened once is not one to send every user's calls over, so a
    2025-11-25 caller's call goes over the stateless 2026-07-28 session, where
    a mid-call question has no channel."""

    def register() -> None:
        with relay.gateway.client() as admin:  # mints with asyncio.run: not on this loop
            response = admin.post(
                "/mcp-servers",
                json={
                    "name": "Gamma",
                    "url": relay.upstream.url + "/mcp",
                    "resource": "https://gamma.example/mcp",  # Beta has the URL's
                    "credential": {"type": "token_exchange"},
                },
            )
            assert response.status_code == 201, response.text

    await anyio.to_thread.run_sync(register)

    answer = NameAnswerer()

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", elicitation_callback=answer) as client:
        result = await client.call_tool("gamma__ask_legacy", {})
    assert answer.asked == []
    assert text_of(result).startswith("cannot ask:")


async def test_a_session_the_server_ended_is_replaced(relay: Relay) -> None:
    """The server forgets the lane's session (restart, expiry): the call that
    meets the 404 was not run, so it is sent over the 2026-07-28 session, and
    the next call gets a fresh 2025-11-25 session."""
    answer = NameAnswerer()

    token = await relay.token("alice")
    async with mcp_client(relay.url, token, "legacy", elicitation_callback=answer) as client:
        assert text_of(await client.call_tool("beta__ask_legacy", {})) == "Hello, Ada!"
        sessions = {s.headers.get("mcp-session-id", "") for s in relay.recorder.calls()} - {""}
        assert len(sessions) == 1  # the lane's (the primary is 2026-07-28: none)
        async with httpx.AsyncClient(verify=client_tls()) as http:
            ended = await http.delete(
                relay.upstream.url + "/mcp",
                headers={"mcp-session-id": sessions.pop(), "mcp-protocol-version": "2025-11-25"},
            )
            assert ended.status_code == 200
        added = await client.call_tool("beta__add", {"a": 1, "b": 2})
        assert added.structured_content == {"result": 3}
        assert text_of(await client.call_tool("beta__ask_legacy", {})) == "Hello, Ada!"
    assert answer.asked == ["Your name?", "Your name?"]


async def test_a_question_is_withdrawn_when_its_call_ends(relay: Relay) -> None:
    """A question still open when its call has ended (the server answered the
    call without waiting for it) is withdrawn from the caller: nobody is left
    asked about a call that is over, and no task waits on them for ever."""
    asked = anyio.Event()
    withdrawn = anyio.Event()

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.set()
        QUESTION_ARRIVED.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            withdrawn.set()
            raise
        return types.ElicitResult(action="decline")

    token = await relay.token("alice")
    QUESTION_ARRIVED.clear()
    async with mcp_client(relay.url, token, "legacy", elicitation_callback=answer) as client:
        result = await client.call_tool("beta__ask_and_leave", {})
        assert text_of(result) == "left"
        assert asked.is_set()
        with anyio.move_on_after(5):
            await withdrawn.wait()
        assert withdrawn.is_set()


async def test_a_call_that_ran_is_not_sent_again_when_its_session_is_lost(
    tmp_path: Path, database_url: str | None
) -> None:
    """The lane's session is lost *while a call runs on it*: the server
    answers the reply to the tool's question with 404 (say, a replica that
    does not know the session). That 404 says nothing about the call itself,
    which the server ran: it must not be sent again over the 2026-07-28
    session (a tool that is not idempotent would run twice)."""
    runs: list[str] = []
    forget = threading.Event()

    async def book(ctx: Context) -> str:
        """Books once, then asks for a confirmation."""
        runs.append("booked")
        forget.set()  # from now on the server no longer knows the session
        try:
            answer = await ctx.elicit(message="Confirm?", schema=Name)
        except Exception as exc:
            return f"cannot ask: {exc}"
        return f"confirmed: {answer.action}"

    box = ToolBox()
    box.server.add_tool(book, description=book.__doc__ or "")

    def build(_url: str) -> Any:
        mcp_app = box.server.streamable_http_app(stateless_http=False)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            headers = dict(scope.get("headers") or [])
            if forget.is_set() and scope.get("method") == "POST" and b"mcp-session-id" in headers:
                body, replay = await buffered(receive)
                if "method" not in json.loads(body):  # the reply to the server's question
                    await JSONResponse({"error": "no such session"}, 404)(scope, receive, send)
                    return
                receive = replay
            await mcp_app(scope, receive, send)

        return app

    upstream = ServerThread(build).start()
    gateway = start_gateway(tmp_path / "data", database_url)
    try:

        def register() -> None:
            with gateway.client() as admin:  # mints with asyncio.run: not on this loop
                response = admin.post(
                    "/mcp-servers", json={"name": "Delta", "url": upstream.url + "/mcp"}
                )
                assert response.status_code == 201, response.text

        await anyio.to_thread.run_sync(register)

        async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            return types.ElicitResult(action="accept", content={"name": "yes"})

        token = await anyio.to_thread.run_sync(gateway.token, "alice", "")
        url = gateway.url + "/mcp"
        async with mcp_client(url, token, "legacy", elicitation_callback=answer) as client:
            with anyio.fail_after(60), pytest.raises(MCPError) as failed:
                await client.call_tool("delta__book", {})
        assert runs == ["booked"]  # not sent again over the 2026-07-28 session
        assert "delta" in failed.value.error.message
    finally:
        gateway.stop()
        upstream.stop()
