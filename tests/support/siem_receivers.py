"""Receivers of the audit export, over real HTTP: a webhook that checks the
Standard Webhooks signature with its own code, and an OTLP/HTTP logs
receiver that decodes the protobuf with OpenTelemetry's own message classes.
Each keeps every record it took, duplicates included, in arrival order."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from starlette.types import Receive, Scope, Send

from tests.support.inspecting import buffered

SECRET = "whsec_" + base64.b64encode(b"a webhook key of thirty-two bytes").decode()


@dataclass
class Taken:
    """What a receiver took: each record's id and fields, in arrival order."""

    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    bad_signatures: int = 0
    refusing: int | None = None  # a status to answer instead of taking (400, 503, ...)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> set[int]:
        with self.lock:
            return {i for i, _ in self.records}

    def in_order(self) -> list[int]:
        with self.lock:
            return [i for i, _ in self.records]


async def _answer(send: Send, status: int, body: bytes, kind: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]}
    )
    await send({"type": "http.response.body", "body": body})


def webhook_app(taken: Taken) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body, _ = await buffered(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode()
        expected = base64.b64encode(
            hmac.new(
                base64.b64decode(SECRET.removeprefix("whsec_")), signed + body, hashlib.sha256
            ).digest()
        ).decode()
        if headers.get("webhook-signature") != f"v1,{expected}":
            with taken.lock:
                taken.bad_signatures += 1
            await _answer(send, 401, b"bad signature", b"text/plain")
            return
        if taken.refusing is not None:
            await _answer(send, taken.refusing, b"not now", b"text/plain")
            return
        records = json.loads(body)["records"]
        with taken.lock:
            taken.records.extend((r["id"], r) for r in records)
        await _answer(send, 204, b"", b"text/plain")

    return app


def otlp_app(taken: Taken) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body, _ = await buffered(receive)
        if scope["path"] != "/v1/logs":
            await _answer(send, 404, b"", b"text/plain")
            return
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.ParseFromString(body)
        found: list[tuple[int, dict[str, Any]]] = []
        for resource in request.resource_logs:
            for scope_logs in resource.scope_logs:
                for record in scope_logs.log_records:
                    attributes = {a.key: _plain(a.value) for a in record.attributes}
                    attributes["trace_id"] = record.trace_id.hex()
                    attributes["severity"] = record.severity_text
                    found.append((attributes["switchboard.audit.id"], attributes))
        with taken.lock:
            taken.records.extend(found)
        reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        await _answer(send, 200, reply, b"application/x-protobuf")

    return app


def _plain(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None
