"""Logs: one JSON object per line when configured (time, level, logger,
message, trace id), plain text by default, and the security events on the
`switchboard.security` logger -- never a token."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers

from adapters.trace_context import begin
from gateway.delegation.audit_records import AuditEvent
from gateway.demo.ports import PortReservation
from gateway.observability.logs import (
    REDACTED,
    SecretQueries,
    TraceIds,
    log_config,
    log_decision,
    redact_query,
)
from registry.tls import client_tls
from tests.support.waiting import wait_for


@contextlib.contextmanager
def _serving(tmp_path: Path, *options: str) -> Iterator[str]:
    """`switchboard serve --dev` in a process of its own, its stderr (the log)
    in ``tmp_path / "stderr.log"``; its URL, once it answers (or the test
    fails saying why: it exited, or did not answer within a minute)."""
    reserved = PortReservation()  # held until the gateway has its port
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    command = [sys.executable, "-m", "gateway", "serve", "--dev", "--data-dir", str(tmp_path)]
    log = tmp_path / "stderr.log"
    with (
        log.open("w") as err,
        subprocess.Popen(
            [*command, "--port", str(reserved.port), *options], stdout=err, stderr=err, env=env
        ) as server,
    ):
        try:
            url = f"http://127.0.0.1:{reserved.port}"

            def answers() -> bool:
                assert server.poll() is None, f"the gateway exited:\n{log.read_text()}"
                try:
                    got = httpx.get(url + "/healthz", timeout=1, verify=client_tls())
                except httpx.HTTPError:
                    return False
                return got.status_code == 200

            wait_for(answers, seconds=60, every=0.1, what=f"the gateway at {url}")
            yield url
        finally:
            reserved.release()
            server.terminate()
            server.wait(timeout=20)


def test_a_json_gateway_writes_one_object_per_line_and_logs_auth_failures(
    tmp_path: Path,
) -> None:
    log = tmp_path / "stderr.log"
    with _serving(tmp_path, "--log-format", "json") as url:
        forged = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl"
        refused = httpx.get(
            url + "/agents", headers={"Authorization": f"Bearer {forged}"}, verify=client_tls()
        )
        assert refused.status_code == 401
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    # Every line is JSON, the dev-mode banner too; times are ISO 8601 UTC;
    # uvicorn's coloured copy of its messages is not there (issue 32).
    records = [json.loads(line) for line in lines]
    assert records
    assert "DEV MODE" in records[0]["message"] and "/ui" in records[0]["message"]
    assert any(r["logger"].startswith("uvicorn") for r in records), records
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), record
        assert "color_message" not in record, record
    assert "\x1b" not in log.read_text()
    security = [r for r in records if r["logger"] == "switchboard.security"]
    assert any("authentication failed on /agents" in r["message"] for r in security), records
    assert forged not in log.read_text()
    assert "eyJ" not in log.read_text()


def test_text_is_the_default_format() -> None:
    config = log_config("text", "info")
    assert config["formatters"]["main"] == {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"
    }
    assert config["loggers"]["uvicorn.access"]["handlers"] == ["main"]


def test_a_log_line_carries_the_trace_of_its_request() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)

    def in_a_request() -> None:
        begin(Headers({"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}))
        assert TraceIds().filter(record)

    contextvars.copy_context().run(in_a_request)  # the trace stays in that context
    assert record.__dict__["trace_id"] == trace_id


def test_with_tracing_on_a_log_line_carries_its_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from adapters import spans

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    provider = TracerProvider()
    spans.enable(provider.get_tracer("test"))
    seen: dict[str, str] = {}

    def in_a_request() -> None:
        begin(Headers({"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}))
        with spans.span("switchboard.decide") as span:
            assert span is not None
            seen["span_id"] = format(span.get_span_context().span_id, "016x")
            assert format(span.get_span_context().trace_id, "032x") == trace_id
            assert TraceIds().filter(record)

    try:
        contextvars.copy_context().run(in_a_request)
    finally:
        spans.disable()
        provider.shutdown()
    assert record.__dict__["trace_id"] == trace_id
    assert record.__dict__["span_id"] == seen["span_id"]


def test_every_denial_is_a_security_log_line(caplog: pytest.LogCaptureFixture) -> None:
    denied = AuditEvent(
        event="token_exchange",
        trace_id="t",
        subject="alice",
        subject_issuer="https://issuer",
        decision="deny",
        outcome="denied",
        client_id="sales",
        target="inventory",
        reasons=("scope inventory:write is beyond the subject token",),
    )
    allowed = AuditEvent(
        event="a2a.SendMessage",
        trace_id="t",
        subject="alice",
        subject_issuer="https://issuer",
        decision="allow",
        outcome="ok",
    )
    with caplog.at_level(logging.WARNING, logger="switchboard.security"):
        log_decision(denied)
        log_decision(allowed)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "denied: token_exchange to inventory for alice (sales): "
        "scope inventory:write is beyond the subject token"
    )


def test_the_http_client_s_request_lines_are_off_unless_debugging() -> None:
    assert log_config("json", "info")["loggers"]["httpx"]["level"] == "WARNING"
    assert log_config("text", "warning")["loggers"]["httpcore"]["level"] == "WARNING"
    assert log_config("json", "debug")["loggers"]["httpx"]["level"] == "DEBUG"


def test_secret_query_parameters_are_redacted_in_every_line(tmp_path: Path) -> None:
    """Issue 57: the access log recorded an OAuth callback's authorization
    code and state, and at --log-level debug on SQLite aiosqlite printed the
    SQL parameters -- the stored tokens, the unsealed signing key of a dev
    gateway. Not any more."""
    code, state = "SplxlOBeZQQYbYS6WxSbIA", "af0ifjsldkj-state"
    with _serving(tmp_path, "--log-level", "debug") as url:
        httpx.get(
            f"{url}/ui/connections/c1/callback?code={code}&state={state}&iss=x", verify=client_tls()
        )
        httpx.get(f"{url}/healthz?access_token=at-{code}&fine=1", verify=client_tls())
    text = (tmp_path / "stderr.log").read_text()
    assert "/ui/connections/c1/callback?code=REDACTED&state=REDACTED&iss=x" in text, text
    assert "/healthz?access_token=REDACTED&fine=1" in text, text
    assert code not in text and state not in text
    assert " aiosqlite: " not in text and " sqlalchemy.engine" not in text


def test_redact_query_keeps_everything_but_secret_values() -> None:
    line = "GET /cb?Code=1&iss=https%3A%2F%2Fidp&refresh%5Ftoken=2&flag&state= HTTP/1.1"
    assert redact_query(line) == (
        f"GET /cb?Code={REDACTED}&iss=https%3A%2F%2Fidp&refresh%5Ftoken={REDACTED}"
        f"&flag&state={REDACTED} HTTP/1.1"
    )
    assert redact_query("nothing to see? no") == "nothing to see? no"


def test_the_access_log_record_is_redacted_before_it_is_formatted() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/ui/connections/c1/callback?code=abc&state=xyz", "1.1", 303),
        None,
    )
    assert SecretQueries().filter(record)
    assert record.getMessage() == (
        f'127.0.0.1:5000 - "GET /ui/connections/c1/callback?code={REDACTED}&state={REDACTED} '
        'HTTP/1.1" 303'
    )


def test_loggers_that_echo_sql_parameters_stay_at_warning_when_debugging() -> None:
    for level in ("debug", "trace", "info"):
        loggers = log_config("text", level)["loggers"]
        for name in ("sqlalchemy.engine", "aiosqlite", "asyncpg"):
            assert loggers[name]["level"] == "WARNING", (level, name)
    assert log_config("json", "info")["handlers"]["main"]["filters"] == ["trace", "secrets"]
