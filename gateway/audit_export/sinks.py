"""Where the audit export delivers: a signed webhook, and OpenTelemetry logs
over OTLP/HTTP. Each sink takes one batch of records (in their writer's
order) and either takes all of it or raises `DeliveryFailed` -- ``permanent``
when sending the same batch again cannot succeed (a 4xx other than 408 and
429, records the receiver rejected), so it goes to the dead letters at once
instead of being retried.

Every record carries its audit ``id``: a batch sent again after a lost answer
is the same records with the same ids (and, for the webhook, the same
``webhook-id``), so a receiver can drop what it already has.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from gateway.delegation.audit_reads import AuditRecord
from registry.tls import client_tls

# The request itself is wrong: sending it again cannot help (each record is
# then tried on its own). Anything else -- 401 and 403 (a credential being
# rotated), 404 (a path being fixed), 3xx, 408, 429, 5xx -- waits and retries.
_REFUSED_STATUS = frozenset({400, 413, 415, 422})


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Sink(Protocol):
    name: str

    async def deliver(self, batch_id: str, records: Sequence[AuditRecord]) -> None: ...

    async def aclose(self) -> None: ...


def record_json(record: AuditRecord) -> dict[str, Any]:
    """A record as exported: the fields `GET /audit` gives (docs/operations.md)."""
    return record.model_dump(mode="json")


class HttpSink:
    """What both sinks share: one client, and an answer's status read as
    taken (2xx), worth another try (5xx, 408, 429, no answer) or refused."""

    def __init__(self, name: str, url: str, timeout_seconds: float) -> None:
        self.name = name
        self.url = url
        self._http = httpx.AsyncClient(
            timeout=timeout_seconds, trust_env=False, verify=client_tls()
        )

    async def _post(self, content: bytes, headers: Mapping[str, str]) -> httpx.Response:
        try:
            answer = await self._http.post(self.url, content=content, headers=dict(headers))
        except httpx.HTTPError as exc:
            # The exception's type only: its text can quote a header's value
            # (a credential), and what is said here is stored and shown.
            raise DeliveryFailed(f"{type(exc).__name__} sending to {self.name}") from None
        if answer.is_success:
            return answer
        said = f"HTTP {answer.status_code} from {self.name}"
        raise DeliveryFailed(said, permanent=answer.status_code in _REFUSED_STATUS)

    async def aclose(self) -> None:
        await self._http.aclose()


class WebhookSink(HttpSink):
    """A JSON batch, signed as Standard Webhooks specifies
    (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp``
    and ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.
    The id is the batch's (its writer and first and last record), the same
    on every attempt."""

    def __init__(self, url: str, secret: str, timeout_seconds: float) -> None:
        super().__init__("webhook", url, timeout_seconds)
        self._secret = webhook_key(secret)

    async def deliver(self, batch_id: str, records: Sequence[AuditRecord]) -> None:
        body = json.dumps({"records": [record_json(r) for r in records]}).encode()
        timestamp = str(int(time.time()))
        await self._post(
            body,
            {
                "content-type": "application/json",
                "webhook-id": batch_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": signature(self._secret, batch_id, timestamp, body),
            },
        )


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret, ``whsec_<base64>`` (what
    its libraries generate and verify with)."""
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def signature(secret: bytes, batch_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{batch_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class OtlpLogSink(HttpSink):
    """OpenTelemetry logs, OTLP/HTTP with protobuf (the OTLP specification,
    "OTLP/HTTP"): one log record per audit record, its trace id the call's,
    its attributes the record's fields (``switchboard.audit.*``)."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout_seconds: float) -> None:
        super().__init__("otlp", url, timeout_seconds)
        self._headers = {**headers, "content-type": "application/x-protobuf"}

    async def deliver(self, batch_id: str, records: Sequence[AuditRecord]) -> None:
        answer = await self._post(logs_request(records).SerializeToString(), self._headers)
        if not answer.content:
            return
        reply = logs_service_pb2.ExportLogsServiceResponse()
        try:
            reply.ParseFromString(answer.content)
        except Exception:
            return
        rejected = reply.partial_success.rejected_log_records
        if rejected:
            said = reply.partial_success.error_message or "no reason given"
            raise DeliveryFailed(f"{rejected} records rejected: {said}", permanent=True)


def logs_request(records: Sequence[AuditRecord]) -> logs_service_pb2.ExportLogsServiceRequest:
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource_pb2.Resource(
                    attributes=[_attribute("service.name", "switchboard")]
                ),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=common_pb2.InstrumentationScope(name="switchboard.audit"),
                        log_records=[_log_record(r) for r in records],
                    )
                ],
            )
        ]
    )


def _log_record(record: AuditRecord) -> logs_pb2.LogRecord:
    nanos = int(record.at.timestamp() * 1_000_000_000)
    denied = record.decision != "allow"
    fields = record_json(record)
    summary = (
        f"{record.event} {record.decision} {record.subject} -> {record.target}: {record.outcome}"
    )
    return logs_pb2.LogRecord(
        time_unix_nano=nanos,
        observed_time_unix_nano=time.time_ns(),
        severity_number=logs_pb2.SEVERITY_NUMBER_WARN if denied else logs_pb2.SEVERITY_NUMBER_INFO,
        severity_text="WARN" if denied else "INFO",
        body=common_pb2.AnyValue(string_value=summary),
        attributes=[
            _attribute(f"switchboard.audit.{key}", value)
            for key, value in fields.items()
            if value is not None
        ],
        trace_id=bytes.fromhex(record.trace_id) if _is_hex(record.trace_id, 32) else b"",
    )


def _attribute(key: str, value: Any) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=_value(value))


def _value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(values=[_value(v) for v in value])
        )
    return common_pb2.AnyValue(string_value=str(value))


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)
