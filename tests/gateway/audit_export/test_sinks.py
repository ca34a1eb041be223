"""The audit export's sinks, one piece each: the webhook's signature against
the Standard Webhooks specification's published test vector; the OTLP
request's log records; an answer's status read as taken, retried or refused
(an `httpx.MockTransport` stands in for the receiver)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from gateway.audit_export.sinks import (
    DeliveryFailed,
    WebhookSink,
    logs_request,
    signature,
    webhook_key,
)
from gateway.delegation.audit_reads import AuditRecord
from gateway.settings.audit_export import AuditExportOptions

RECORD = AuditRecord(
    id=7,
    at=datetime(2026, 11, 26, tzinfo=UTC),
    trace_id="0af7651916cd43dd8448eb211c80319c",
    event="a2a",
    subject="alice",
    subject_issuer="https://idp.example",
    client_id=None,
    actors=["agent-a"],
    target="crm",
    action="find",
    scopes_requested=None,
    scopes_granted=["crm:read"],
    decision="deny",
    reasons=["policy"],
    outcome="refused",
    detail=None,
    latency_ms=1.5,
    token_id=None,
)


def test_the_signature_is_the_standard_webhooks_vectors() -> None:
    key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signed = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}')
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_an_otlp_request_carries_each_record() -> None:
    request = logs_request([RECORD])
    [resource] = request.resource_logs
    [scope] = resource.scope_logs
    [log] = scope.log_records
    assert scope.scope.name == "switchboard.audit"
    assert log.trace_id.hex() == RECORD.trace_id and log.severity_text == "WARN"
    attributes = {a.key: a.value for a in log.attributes}
    assert attributes["switchboard.audit.id"].int_value == 7
    assert attributes["switchboard.audit.subject"].string_value == "alice"
    assert [v.string_value for v in attributes["switchboard.audit.actors"].array_value.values] == [
        "agent-a"
    ]
    assert "switchboard.audit.client_id" not in attributes  # None: left out


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (500, False),
        (503, False),
        (429, False),
        (408, False),
        (401, False),
        (403, False),
        (404, False),
        (302, False),
        (400, True),
        (413, True),
        (422, True),
    ],
)
async def test_an_answer_is_taken_retried_or_refused(status: int, permanent: bool) -> None:
    sink = WebhookSink("http://siem.example/hook", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 5)
    sink._http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(status)))
    with pytest.raises(DeliveryFailed) as failed:
        await sink.deliver("w:7-7", [RECORD])
    assert failed.value.permanent is permanent
    sink._http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204)))
    await sink.deliver("w:7-7", [RECORD])
    await sink.aclose()


@pytest.mark.parametrize("secret", [None, "short", "whsec_not base64!", "whsec_c2hvcnQ=", "x" * 31])
def test_a_webhook_needs_a_strong_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError):
        AuditExportOptions(
            audit_export_webhook_url="https://siem.example/hook",
            audit_export_webhook_secret=secret,
        )
    AuditExportOptions(
        audit_export_webhook_url="https://siem.example/hook",
        audit_export_webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": "secret\n"}, {"x-api-key": " secret"}, {"bad name": "v"}, {"x": "a\r\nb: c"}],
)
def test_otlp_headers_are_checked_and_never_shown(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as refused:
        AuditExportOptions(audit_export_otlp_headers=headers)
    assert all("secret" not in error["msg"] for error in refused.value.errors())
    kept = AuditExportOptions(audit_export_otlp_headers={"x-api-key": "s3cr3t"})
    assert "s3cr3t" not in repr(kept)


async def test_a_transport_error_says_its_type_only() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError("Illegal header value b's3cr3t\\n'")

    sink = WebhookSink("http://siem.example/hook", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 5)
    sink._http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    with pytest.raises(DeliveryFailed) as failed:
        await sink.deliver("w:7-7", [RECORD])
    assert "s3cr3t" not in str(failed.value) and not failed.value.permanent
    await sink.aclose()
