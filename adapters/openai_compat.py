"""An OpenAI-compatible chat-completions endpoint as an agent.

Any server speaking `POST {base}/chat/completions` (OpenAI, vLLM, Ollama,
LiteLLM, ...): a turn becomes one chat request -- the registration's system
prompt (plus the skill's instructions), then the user's text, with a data
part appended as JSON -- and ``choices[0].message.content`` becomes the
reply. Streamed, the answer is server-sent events, each ``data: {chunk}``
carrying ``choices[0].delta.content``, ended by ``data: [DONE]``.

The API key is the gateway's (`Credentials`), sent as ``Authorization:
Bearer``; tool calls and other choices are not used. The answer's ``usage``
(tokens), when the server reports it -- with the completion, or streamed in a
chunk of its own -- comes back with the reply (`adapters.usage`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.base import Adapter, Credentials, Delta, Reply, Turn, http_failure
from adapters.core_check import require_core
from adapters.errors import UpstreamFailed, UpstreamInvalid
from adapters.usage import Usage, from_openai

MAX_EVENT_LINE = 1024 * 1024


@dataclass(frozen=True)
class ChatConfig:
    base_url: str
    model: str
    system_prompt: str = ""
    # Per skill id: instructions added to the system prompt for that skill.
    skill_instructions: Mapping[str, str] = field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    # Streamed, ask for a last chunk with the usage (OpenAI's
    # stream_options.include_usage; vLLM, Ollama, LiteLLM know it too).
    stream_usage: bool = True

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


class OpenAICompatAdapter(Adapter):
    def __init__(self, http: httpx.AsyncClient, config: ChatConfig, name: str) -> None:
        self._http = http
        self._config = config
        self._name = name

    def body(self, turn: Turn, *, stream: bool) -> dict[str, Any]:
        config = self._config
        system = "\n\n".join(
            p for p in (config.system_prompt, config.skill_instructions.get(turn.skill or "")) if p
        )
        user = turn.text
        if turn.data is not None:
            user = "\n\n".join(p for p in (user, json.dumps(turn.data)) if p)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        body: dict[str, Any] = {"model": config.model, "messages": messages, "stream": stream}
        if config.temperature is not None:
            body["temperature"] = config.temperature
        if config.max_tokens is not None:
            body["max_tokens"] = config.max_tokens
        if stream and config.stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def _request(self, turn: Turn, credentials: Credentials, *, stream: bool) -> httpx.Request:
        headers = {
            **credentials.headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        content = json.dumps(self.body(turn, stream=stream)).encode()
        return self._http.build_request("POST", self._config.url, content=content, headers=headers)

    async def call(self, turn: Turn, credentials: Credentials, *, timeout_seconds: float) -> Reply:
        require_core("the OpenAI-compatible adapter's call")
        request = self._request(turn, credentials, stream=False)
        request.extensions["timeout"] = httpx.Timeout(timeout_seconds).as_dict()
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise http_failure(exc, self._name, timeout_seconds) from None
        if response.status_code >= 400:
            raise self._failure(response, response.content, credentials)
        try:
            completion = response.json()
        except ValueError:
            raise UpstreamInvalid(f"{self._name} did not answer JSON") from None
        return Reply(
            text=self._content(completion, "message"), usage=from_openai(completion.get("usage"))
        )

    async def stream(
        self, turn: Turn, credentials: Credentials, *, timeout_seconds: float
    ) -> AsyncIterator[Delta | Reply]:
        require_core("the OpenAI-compatible adapter's stream")
        request = self._request(turn, credentials, stream=True)
        request.extensions["timeout"] = httpx.Timeout(timeout_seconds).as_dict()
        pieces: list[str] = []
        usage: list[Usage] = []  # the last chunk that reports it
        try:
            response = await self._http.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    body = await response.aread()
                    raise self._failure(response, body, credentials)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # Some servers ignore "stream": the whole answer at once.
                    completion = json.loads(await response.aread())
                    yield Reply(
                        text=self._content(completion, "message"),
                        usage=from_openai(completion.get("usage")),
                    )
                    return
                async for line in response.aiter_lines():
                    piece = self._event(line, credentials, usage)
                    if piece is None:
                        continue
                    if piece is _DONE:
                        yield Reply(text="".join(pieces), usage=usage[-1] if usage else None)
                        return
                    if piece:
                        pieces.append(piece)
                        yield Delta(piece)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise http_failure(exc, self._name, timeout_seconds) from None
        except ValueError:
            raise UpstreamInvalid(f"{self._name} did not answer JSON") from None
        raise UpstreamInvalid(f"{self._name} ended its stream without [DONE]")

    def _event(self, line: str, credentials: Credentials, usage: list[Usage]) -> str | None:
        """The text a server-sent event line carries ('' for none), `_DONE`, or
        None for lines that are not data (comments, event names, blanks)."""
        if len(line) > MAX_EVENT_LINE:
            raise UpstreamInvalid(f"{self._name} sent an event line over {MAX_EVENT_LINE} bytes")
        if not line.startswith("data:"):
            return None
        payload = line[5:].strip()
        if payload == "[DONE]":
            return _DONE
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise UpstreamInvalid(f"{self._name} sent an event that is not JSON") from None
        if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
            raise UpstreamFailed(
                credentials.scrub(f"{self._name} failed mid-stream: {_message(chunk)}")
            )
        reported = from_openai(chunk.get("usage")) if isinstance(chunk, dict) else None
        if reported is not None:
            usage.append(reported)
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list):
            raise UpstreamInvalid(f"{self._name} sent a chunk without choices")
        if not choices:  # a usage-only chunk
            return ""
        delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        return content if isinstance(content, str) else ""

    def _content(self, completion: Any, key: str) -> str:
        try:
            choice = completion["choices"][0]
            message = choice[key]
        except (KeyError, IndexError, TypeError):
            raise UpstreamInvalid(
                f"{self._name} answered without choices[0].{key} (not a chat completion)"
            ) from None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            return content
        if isinstance(message, dict) and message.get("tool_calls"):
            raise UpstreamInvalid(f"{self._name} answered with tool calls, which are not run")
        if isinstance(message, dict) and isinstance(message.get("refusal"), str):
            return str(message["refusal"])
        raise UpstreamInvalid(f"{self._name} answered without content")

    def _failure(
        self, response: httpx.Response, body: bytes, credentials: Credentials
    ) -> UpstreamFailed:
        status = response.status_code
        try:
            detail = _message(json.loads(body))
        except ValueError:
            detail = ""
        text = f"{self._name} answered HTTP {status}" + (f": {detail}" if detail else "")
        return UpstreamFailed(
            credentials.scrub(text), status, response.headers.get("WWW-Authenticate")
        )


_DONE = "\x00[DONE]"


def _message(document: Any) -> str:
    """The ``error.message`` of an OpenAI error object, shortened."""
    error = document.get("error") if isinstance(document, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:300] if message else ""
