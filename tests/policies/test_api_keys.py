"""API keys' format, hash and principal (`policies.api_keys`): pure."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from policies import api_keys
from policies.api_keys import (
    KEY_PATTERN,
    ApiKeyError,
    ApiKeyRefused,
    KeyRecord,
    checked_name,
    checked_scopes,
    hash_key,
    key_id_of,
    key_limits,
    key_matches,
    new_key,
    parse_budget,
    parse_duration,
    parse_rate,
    principal_of,
    scopes_within,
)
from policies.tokens import TokenInvalid

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
# What a secret scanner would look for (docs/security.md#api-keys).
SCANNER = re.compile(r"sk-sb-[a-z0-9]{12}_[A-Za-z0-9]{43}")


def record(made: api_keys.NewKey, **changes: Any) -> KeyRecord:
    values: dict[str, Any] = {
        "key_id": made.key_id,
        "name": "ci-bot",
        "secret_hash": hash_key(made.secret),
        "service": False,
        "owner_subject": "alice",
        "owner_issuer": "https://idp.example",
        "scopes": frozenset({"a:read", "b:write"}),
        "owner_scopes": frozenset({"a:read", "b:write"}),
        "expires_at": None,
        "revoked_at": None,
    }
    return KeyRecord(**{**values, **changes})


def test_a_new_key_has_the_scannable_shape_and_256_bits_of_secret() -> None:
    made = [new_key() for _ in range(200)]
    for key in made:
        assert SCANNER.fullmatch(key.secret) and KEY_PATTERN.match(key.secret)
        assert key.prefix == "sk-sb-" + key.key_id and key.secret.startswith(key.prefix + "_")
        assert key_id_of(key.secret) == key.key_id
    assert len({k.secret for k in made}) == len({k.key_id for k in made}) == 200
    assert 62**api_keys.SECRET_LENGTH >= 2**256


def test_only_the_hash_is_kept_and_it_is_sha256_of_the_whole_key() -> None:
    made = new_key()
    stored = hash_key(made.secret)
    assert stored == "sha256:" + hashlib.sha256(made.secret.encode()).hexdigest()
    assert made.secret.partition("_")[2] not in stored
    assert key_matches(made.secret, stored)
    assert not key_matches(new_key().secret, stored)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    made = new_key()
    wrong = made.secret[:-1] + ("A" if made.secret[-1] != "A" else "B")
    assert not key_matches(wrong, hash_key(made.secret))
    # The digests of equal length are compared, never the keys themselves.
    ((offered, stored),) = compared
    assert len(offered) == len(stored) and made.secret.encode() not in (offered, stored)


@pytest.mark.parametrize(
    "spelling",
    [
        lambda k: k.upper(),
        lambda k: k.replace("sk-sb-", "SK-SB-"),
        lambda k: k[:-1],
        lambda k: k + "x",
        lambda k: k[:10] + " " + k[10:],
        lambda k: k.replace("_", "-"),
        lambda k: k.replace("_", "\u005f\u200b"),
        lambda k: "sk-sb-" + "\uff41" * 12 + k[18:],  # fullwidth letters
    ],
)
def test_another_spelling_is_not_the_key(spelling: Any) -> None:
    made = new_key()
    with pytest.raises(TokenInvalid):
        principal_of(record(made), _checked(spelling(made.secret)), NOW)


def _checked(key: str) -> str:
    key_id_of(key)  # what ApiKeys.verify does first: a malformed key goes no further
    return key


def test_the_principal_is_the_owner_through_the_key() -> None:
    made = new_key()
    # A row edited to hold more than its owner had: the key still holds no more.
    grown = record(made, scopes=frozenset({"a:read", "b:write", "switchboard:admin"}))
    principal = principal_of(grown, made.secret, NOW)
    assert (principal.subject, principal.issuer) == ("alice", "https://idp.example")
    assert principal.scopes == {"a:read", "b:write"}
    assert principal.client_id == f"apikey:{made.key_id}"
    assert principal.usable_until == 0  # a key without expiry


def test_revoked_expired_and_wrong_keys_are_refused() -> None:
    made = new_key()
    with pytest.raises(TokenInvalid, match="revoked"):
        principal_of(record(made, revoked_at=NOW), made.secret, NOW)
    with pytest.raises(TokenInvalid, match="expired"):
        principal_of(record(made, expires_at=NOW), made.secret, NOW)
    ends = NOW + timedelta(hours=1)
    assert principal_of(record(made, expires_at=ends), made.secret, NOW).usable_until == (
        ends.timestamp()
    )
    with pytest.raises(TokenInvalid, match="unknown"):
        principal_of(record(made, secret_hash=hash_key(new_key().secret)), made.secret, NOW)


def test_settings_are_checked() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_rate("10/s") == "10/second" and parse_rate("600/minute") == "600/minute"
    assert parse_budget("20") == Decimal(20)
    for bad in ("0d", "30", "1y", "-1d", "1e3s", ""):
        with pytest.raises(ApiKeyError):
            parse_duration(bad)
    for bad in ("10", "0/s", "10/fortnight", "ten/s", "1/s; 2/m"):
        with pytest.raises(ApiKeyError):
            parse_rate(bad)
    for bad in ("-1", "NaN", "Infinity", "lots", "1000001"):
        with pytest.raises(ApiKeyError):
            parse_budget(bad)
    for bad in ("", "a b", "x" * 65, "-lead", "ünï"):
        with pytest.raises(ApiKeyError):
            checked_name(bad)
    for bad_scopes in ([], ['a"b'], [f"s{i}" for i in range(65)]):
        with pytest.raises(ApiKeyError):
            checked_scopes(bad_scopes)
    assert checked_scopes(["a:read b:write", "a:read"]) == {"a:read", "b:write"}


def test_a_key_holds_no_more_than_its_maker() -> None:
    scopes_within(frozenset({"a"}), frozenset({"a", "b"}))
    with pytest.raises(ApiKeyRefused, match="switchboard:admin"):
        scopes_within(frozenset({"a", "switchboard:admin"}), frozenset({"a"}))


def test_a_keys_rate_is_a_limit_of_its_own() -> None:
    assert key_limits("apikey:abc", None) == ()
    assert key_limits(None, "1/second") == ()
    (limit,) = key_limits("apikey:abc", "1/second")
    assert limit.key == ("api-key", "apikey:abc") and limit.rate == "1/second"


@pytest.mark.parametrize("value", ["1." + "3" * 40, "0.0000001", "-1", "NaN", "Infinity", "x"])
def test_a_budget_that_is_no_storable_amount_is_refused(value: str) -> None:
    """Stored as text of at most 40 characters: at most six decimal places."""
    with pytest.raises(api_keys.ApiKeyError):
        api_keys.parse_budget(value)


@pytest.mark.parametrize(("value", "amount"), [("20", "20"), ("0.000001", "0.000001"), (3, "3")])
def test_a_budget_within_bounds_is_taken(value: str | int, amount: str) -> None:
    assert api_keys.parse_budget(value) == Decimal(amount)
