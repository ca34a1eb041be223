"""policies.exchange: the RFC 8693 request form and its protocol error codes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from policies.exchange import (
    ACCESS_TOKEN_TYPE,
    JWT_BEARER_ASSERTION,
    JWT_TOKEN_TYPE,
    MAX_FORM_BYTES,
    TOKEN_EXCHANGE_GRANT,
    ExchangeRequest,
    OAuthError,
    parse_exchange,
    parse_form,
)

DROP = object()  # params(x=DROP) removes the parameter


def params(**changes: Any) -> dict[str, str]:
    base: dict[str, str] = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": "eyJ.subject.token",
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "resource": "https://inventory.example/a2a",
    }
    for name, value in changes.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def expect(exc: pytest.ExceptionInfo[OAuthError], error: str, status: int = 400) -> None:
    """The RFC 6749 §5.2 error code and HTTP status the token endpoint will send."""
    assert (exc.value.error, exc.value.status) == (error, status)
    assert exc.value.description == str(exc.value)


# --------------------------------------------------------------------------- parse_form


def test_form_is_parsed_and_decoded() -> None:
    body = urlencode({"grant_type": TOKEN_EXCHANGE_GRANT, "scope": "a b", "x": "é&="}).encode()
    assert parse_form(body) == {"grant_type": TOKEN_EXCHANGE_GRANT, "scope": "a b", "x": "é&="}


def test_empty_body_is_an_empty_form() -> None:
    # ... which parse_exchange then refuses for want of grant_type.
    assert parse_form(b"") == {}
    with pytest.raises(OAuthError) as exc:
        parse_exchange(parse_form(b""))
    expect(exc, "invalid_request")


def test_blank_values_are_kept() -> None:
    assert parse_form(b"a=&b=1") == {"a": "", "b": "1"}


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=a&grant_type=a",
        b"scope=a&scope=b",
        # RFC 8707 would allow several resources; a delegated token names one target.
        b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb",
        b"a=&a=",
        b"a=1&b=2&a=3",
    ],
)
def test_repeated_parameter_is_invalid_request(body: bytes) -> None:
    with pytest.raises(OAuthError, match="more than once") as exc:
        parse_form(body)
    expect(exc, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=é".encode(),
        b"a=\xff",
        b"\x80",
    ],
)
def test_non_ascii_body_is_invalid_request(body: bytes) -> None:
    with pytest.raises(OAuthError, match="x-www-form-urlencoded") as exc:
        parse_form(body)
    expect(exc, "invalid_request")


@pytest.mark.parametrize("body", [b"a", b"a=1&b", b"a=1&&b=2", b"a=1&", b"&", b"{}"])
def test_malformed_form_is_invalid_request(body: bytes) -> None:
    with pytest.raises(OAuthError, match="x-www-form-urlencoded") as exc:
        parse_form(body)
    expect(exc, "invalid_request")


def test_too_large_body_is_invalid_request() -> None:
    body = b"a=" + b"x" * (MAX_FORM_BYTES - 2)
    assert len(parse_form(body)["a"]) == MAX_FORM_BYTES - 2  # exactly at the limit
    with pytest.raises(OAuthError, match="too large") as exc:
        parse_form(body + b"x")
    expect(exc, "invalid_request")


# --------------------------------------------------------------------------- parse_exchange: accepted


def test_minimal_exchange_is_parsed() -> None:
    assert parse_exchange(params()) == ExchangeRequest(
        subject_token="eyJ.subject.token",
        subject_token_type=ACCESS_TOKEN_TYPE,
        actor_token=None,
        actor_token_type=None,
        resource="https://inventory.example/a2a",
        audience=None,
        scope=None,
        client_id=None,
        client_secret=None,
        client_assertion=None,
    )


def test_full_exchange_is_parsed() -> None:
    request = parse_exchange(
        params(
            subject_token_type=JWT_TOKEN_TYPE,
            actor_token="eyJ.actor.token",
            actor_token_type=JWT_TOKEN_TYPE,
            resource=DROP,
            audience="inventory",
            scope="inventory:read  orders:read",
            client_id="sales-agent",
            client_assertion_type=JWT_BEARER_ASSERTION,
            client_assertion="eyJ.client.assertion",
        )
    )
    assert request.actor_token == "eyJ.actor.token"
    assert request.actor_token_type == JWT_TOKEN_TYPE
    assert request.resource is None
    assert request.audience == "inventory"
    assert request.scope == frozenset({"inventory:read", "orders:read"})
    assert request.client_id == "sales-agent"
    assert request.client_assertion == "eyJ.client.assertion"


def test_client_secret_is_passed_on() -> None:
    request = parse_exchange(params(client_id="sales-agent", client_secret="sbs_x"))
    assert (request.client_id, request.client_secret) == ("sales-agent", "sbs_x")


def test_blank_optional_parameters_count_as_absent() -> None:
    request = parse_exchange(params(client_id="", client_secret="", audience=""))
    assert request.client_id is request.client_secret is request.audience is None


def test_empty_scope_asks_for_no_scopes() -> None:
    # Present-but-empty is not the same as absent (None: "whatever policy grants").
    assert parse_exchange(params(scope="")).scope == frozenset()


def test_exchange_from_a_parsed_form() -> None:
    body = urlencode(params(scope="a:b")).encode()
    assert parse_exchange(parse_form(body)).scope == frozenset({"a:b"})


# --------------------------------------------------------------------------- parse_exchange: refused

REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    "no-grant-type": ({"grant_type": DROP}, "invalid_request", "grant_type is required"),
    "blank-grant-type": ({"grant_type": ""}, "invalid_request", "grant_type is required"),
    "authorization-code": (
        {"grant_type": "authorization_code"},
        "unsupported_grant_type",
        "only",
    ),
    "client-credentials": (
        {"grant_type": "client_credentials"},
        "unsupported_grant_type",
        "only",
    ),
    "jwt-bearer-grant": (
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"},
        "unsupported_grant_type",
        "only",
    ),
    "grant-type-case": (
        {"grant_type": TOKEN_EXCHANGE_GRANT.upper()},
        "unsupported_grant_type",
        "only",
    ),
    "no-subject-token": ({"subject_token": DROP}, "invalid_request", "subject_token"),
    "blank-subject-token": ({"subject_token": ""}, "invalid_request", "subject_token"),
    "no-subject-token-type": ({"subject_token_type": DROP}, "invalid_request", "subject_token"),
    "id-token-subject": (
        {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
        "invalid_request",
        "not supported",
    ),
    "refresh-token-subject": (
        {"subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        "invalid_request",
        "not supported",
    ),
    "saml-subject": (
        {"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
        "invalid_request",
        "not supported",
    ),
    "actor-token-without-type": (
        {"actor_token": "eyJ.actor.token"},
        "invalid_request",
        "go together",
    ),
    "actor-type-without-token": (
        {"actor_token_type": JWT_TOKEN_TYPE},
        "invalid_request",
        "go together",
    ),
    "actor-type-with-blank-token": (
        {"actor_token": "", "actor_token_type": JWT_TOKEN_TYPE},
        "invalid_request",
        "go together",
    ),
    # The actor proves itself with an assertion signed by its own key, not a bearer token.
    "actor-access-token": (
        {"actor_token": "eyJ.actor.token", "actor_token_type": ACCESS_TOKEN_TYPE},
        "invalid_request",
        "actor_token_type must be",
    ),
    "no-target": ({"resource": DROP}, "invalid_target", "resource or audience"),
    "blank-targets": ({"resource": "", "audience": ""}, "invalid_target", "resource or audience"),
    "scope-with-quote": ({"scope": 'orders:read "x"'}, "invalid_scope", "invalid scope"),
    "scope-with-backslash": ({"scope": "a\\b"}, "invalid_scope", "invalid scope"),
    "scope-non-ascii": ({"scope": "commandes:lire é"}, "invalid_scope", "invalid scope"),
    "scope-control-char": ({"scope": "a\x7fb"}, "invalid_scope", "invalid scope"),
    "assertion-without-type": (
        {"client_assertion": "eyJ.client.assertion"},
        "invalid_request",
        "go together",
    ),
    "assertion-type-without-assertion": (
        {"client_assertion_type": JWT_BEARER_ASSERTION},
        "invalid_request",
        "go together",
    ),
    "assertion-type-with-blank-assertion": (
        {"client_assertion_type": JWT_BEARER_ASSERTION, "client_assertion": ""},
        "invalid_request",
        "go together",
    ),
    "saml-assertion-type": (
        {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            "client_assertion": "PHNhbWw+",
        },
        "invalid_client",
        "client_assertion_type must be",
    ),
    "blank-assertion-type": (
        {"client_assertion_type": "", "client_assertion": "eyJ.client.assertion"},
        "invalid_client",
        "client_assertion_type must be",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refused_exchange(name: str) -> None:
    changes, error, message = REFUSALS[name]
    with pytest.raises(OAuthError, match=message) as exc:
        parse_exchange(params(**changes))
    expect(exc, error)


def test_grant_type_is_checked_before_anything_else() -> None:
    # An unsupported grant with nothing else must say so, not complain about
    # a missing subject token that grant never needed.
    with pytest.raises(OAuthError) as exc:
        parse_exchange({"grant_type": "password"})
    expect(exc, "unsupported_grant_type")
