"""A REST webhook as an agent: one HTTP request per turn, shaped by a mapping.

The request's body, query and extra headers come from the registration's
templates, its answer is read back with selectors (`adapters.mapping`); no
code from the registration ever runs. Without a request template the body is
``{"text": ..., "data": ..., "skill": ...}``; without response selectors a
JSON answer is the reply's data (a JSON string its text) and a text answer
its text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from adapters.base import Adapter, Credentials, Reply, Turn, http_failure
from adapters.core_check import require_core
from adapters.errors import InputInvalid, UpstreamFailed, UpstreamInvalid
from adapters.mapping import (
    MappingFailed,
    WebhookMapping,
    render,
    select,
    selector_source,
)

DEFAULT_BODY = {"text": "{{text}}", "data": "{{data?}}", "skill": "{{skill?}}"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    method: str
    mapping: WebhookMapping


# What most HTTP servers accept in a request line and in one header field
# (RFC 9110 §4.1 and §5.4 set no number; 8 kB is the common limit).
MAX_URL_LENGTH = 8192
MAX_HEADER_LENGTH = 8192


def _check_header(name: str, value: str) -> None:
    """A value the mapping puts into a header must be one: visible US-ASCII,
    spaces and tabs (RFC 9110 §5.5). Refused rather than encoded: the webhook
    would read an encoding it never agreed to as the value itself."""
    if len(value) > MAX_HEADER_LENGTH:
        raise InputInvalid(f"header {name}: {len(value)} characters (at most {MAX_HEADER_LENGTH})")
    if any(not (" " <= c <= "~" or c == "\t") for c in value):
        raise InputInvalid(
            f"header {name}: the value holds characters a header cannot carry "
            "(only visible ASCII, spaces and tabs; RFC 9110 §5.5)"
        )


class RestWebhookAdapter(Adapter):
    def __init__(self, http: httpx.AsyncClient, config: WebhookConfig, name: str) -> None:
        self._http = http
        self._config = config
        self._name = name

    def _request(self, turn: Turn, credentials: Credentials) -> httpx.Request:
        mapping = self._config.mapping
        values = {
            "text": turn.text,
            "data": turn.data,
            "skill": turn.skill,
            "task_id": turn.task_id,
            "context_id": turn.context_id,
        }
        try:
            query = {k: _as_text(render(v, values)) for k, v in mapping.query.items()}
            headers = {k: _as_text(render(v, values)) for k, v in mapping.headers.items()}
            body = None
            if self._config.method not in ("GET", "DELETE"):
                template = mapping.body if mapping.body is not None else DEFAULT_BODY
                body = json.dumps(render(template, values)).encode()
        except MappingFailed as exc:
            raise InputInvalid(str(exc)) from None
        for name, value in headers.items():
            _check_header(name, value)
        url = self._config.url
        if query:
            # RFC 3986 §3.4 with form encoding: every value percent-encoded
            # (UTF-8), so any text the caller sent is one query value.
            parts = urlsplit(url)
            joined = "&".join(q for q in (parts.query, urlencode(query)) if q)
            url = urlunsplit(parts._replace(query=joined))
        if len(url) > MAX_URL_LENGTH:
            raise InputInvalid(
                f"the mapping's query makes a URL of {len(url)} characters "
                f"(at most {MAX_URL_LENGTH}): send long text in the body"
            )
        headers.update(credentials.headers)  # after the template's: they cannot be overridden
        headers["Accept"] = "application/json, text/plain;q=0.9"
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self._http.build_request(self._config.method, url, content=body, headers=headers)

    def check(self, turn: Turn) -> None:
        self._request(turn, Credentials())

    async def call(self, turn: Turn, credentials: Credentials, *, timeout_seconds: float) -> Reply:
        require_core("the REST webhook adapter's call")
        request = self._request(turn, credentials)
        request.extensions["timeout"] = httpx.Timeout(timeout_seconds).as_dict()
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise http_failure(exc, self._name, timeout_seconds) from None
        if response.status_code >= 400:
            raise UpstreamFailed(
                f"{self._name} answered HTTP {response.status_code}",
                response.status_code,
                response.headers.get("WWW-Authenticate"),
            )
        return self._reply(response)

    def _reply(self, response: httpx.Response) -> Reply:
        mapping = self._config.mapping
        content_type = response.headers.get("content-type", "")
        try:
            document: Any = response.json() if response.content else None
            is_json = True
        except ValueError:
            document, is_json = response.text, False
        if mapping.text is None and mapping.data is None:
            if not is_json and not content_type.startswith("text/"):
                raise UpstreamInvalid(f"{self._name} answered neither JSON nor text")
            if isinstance(document, str):
                return Reply(text=document)
            return Reply(data=document)
        if not is_json:
            raise UpstreamInvalid(f"{self._name} did not answer JSON, which the mapping reads")
        try:
            text = None
            if mapping.text is not None:
                text = _as_text(select(document, mapping.text, selector_source(mapping.text)))
            data = None
            if mapping.data is not None:
                data = select(document, mapping.data, selector_source(mapping.data))
        except MappingFailed as exc:
            raise UpstreamInvalid(f"{self._name}: {exc}") from None
        return Reply(text=text, data=data)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
