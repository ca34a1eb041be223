"""Agent card signatures (A2A 1.0 §8.4).

A signature is a JWS with a detached payload: the RFC 8785 canonical form of
the card without its `signatures` member. Where the keys come from decides
what a signature is worth, so the order is strict:

* keys the operator pinned for this agent -- if there are any, they are the
  only keys, and an unsigned card is refused (stripping the signature must not
  downgrade a card to "unsigned");
* otherwise a `jku` in the protected header, only on the card's own origin
  (same scheme, host and port as the card URL) and fetched under the SSRF rules;
* otherwise nothing can vouch for the signature and it is invalid.

Two canonical payloads are tried: the card exactly as published, and the form
the official SDK signs (its protobuf JSON with empty values dropped), so cards
signed by `a2a.utils.signing` verify too.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import rfc8785
from a2a.types import AgentCard
from google.protobuf.json_format import MessageToDict

from policies.jws import JWSInvalid, b64url_decode, b64url_encode, check_algorithm, verify_compact
from registry.fetch import FetchError, SafeFetcher

MAX_SIGNATURES = 8


class SignatureStatus(enum.StrEnum):
    VERIFIED = "verified"
    UNSIGNED = "unsigned"
    INVALID = "invalid"


@dataclass(frozen=True)
class SignatureCheck:
    status: SignatureStatus
    detail: str
    kid: str | None = None


async def check_card_signatures(
    original: Mapping[str, Any],
    card: AgentCard,
    *,
    pinned_keys: Mapping[str, Any] | None,
    card_url: str | None,
    fetcher: SafeFetcher,
) -> SignatureCheck:
    signatures = original.get("signatures")
    pinned = _keys_by_kid(pinned_keys) if pinned_keys else None
    if not signatures:
        if pinned:
            return SignatureCheck(
                SignatureStatus.INVALID, "keys are pinned for this agent but the card is unsigned"
            )
        return SignatureCheck(SignatureStatus.UNSIGNED, "the card carries no signature")
    if not isinstance(signatures, list) or len(signatures) > MAX_SIGNATURES:
        return SignatureCheck(
            SignatureStatus.INVALID, f"signatures must be a list of at most {MAX_SIGNATURES}"
        )

    payloads = _canonical_payloads(original, card)
    problems: list[str] = []
    for index, entry in enumerate(signatures):
        try:
            kid = await _verify_one(entry, payloads, pinned, card_url, fetcher)
        except SignatureProblem as exc:
            problems.append(f"signatures[{index}]: {exc}")
            continue
        return SignatureCheck(SignatureStatus.VERIFIED, f"verified with key {kid}", kid=kid)
    return SignatureCheck(SignatureStatus.INVALID, "; ".join(problems))


class SignatureProblem(Exception):
    pass


async def _verify_one(
    entry: Any,
    payloads: list[str],
    pinned: dict[str, Mapping[str, Any]] | None,
    card_url: str | None,
    fetcher: SafeFetcher,
) -> str:
    if not isinstance(entry, dict):
        raise SignatureProblem("not an object")
    protected, signature = entry.get("protected"), entry.get("signature")
    if not isinstance(protected, str) or not isinstance(signature, str):
        raise SignatureProblem("protected and signature must be strings")
    try:
        header = json.loads(b64url_decode(protected, "protected header"))
        if not isinstance(header, dict):
            raise SignatureProblem("protected header is not a JSON object")
        check_algorithm(header)
    except (JWSInvalid, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureProblem(str(exc)) from None
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise SignatureProblem("protected header has no kid")
    key = await _find_key(kid, header.get("jku"), pinned, card_url, fetcher)
    for payload in payloads:
        try:
            verify_compact(f"{protected}.{payload}.{signature}", key)
        except JWSInvalid:
            continue
        return kid
    raise SignatureProblem(f"signature by {kid} does not match the card")


async def _find_key(
    kid: str,
    jku: Any,
    pinned: dict[str, Mapping[str, Any]] | None,
    card_url: str | None,
    fetcher: SafeFetcher,
) -> Mapping[str, Any]:
    if pinned is not None:
        key = pinned.get(kid)
        if key is None:
            raise SignatureProblem(f"key {kid} is not among the keys pinned for this agent")
        return key
    if not isinstance(jku, str):
        raise SignatureProblem("no pinned keys and no jku: nothing vouches for this signature")
    if card_url is None or not _same_origin(jku, card_url):
        raise SignatureProblem("jku is not on the card's own origin")
    try:
        document = (await fetcher.get(jku)).json()
    except FetchError as exc:
        raise SignatureProblem(f"jku could not be fetched: {exc}") from None
    key = _keys_by_kid(document).get(kid)
    if key is None:
        raise SignatureProblem(f"key {kid} is not published at the jku")
    return key


def _canonical_payloads(original: Mapping[str, Any], card: AgentCard) -> list[str]:
    unsigned = {k: v for k, v in original.items() if k != "signatures"}
    sdk_form = MessageToDict(card)
    sdk_form.pop("signatures", None)
    payloads: list[str] = []
    for document in (unsigned, drop_empty(sdk_form)):
        try:
            encoded = b64url_encode(rfc8785.dumps(document))
        except (rfc8785.CanonicalizationError, ValueError, TypeError):
            continue
        if encoded not in payloads:
            payloads.append(encoded)
    return payloads


def drop_empty(value: Any) -> Any:
    """Mirror `a2a.utils.signing`: empty strings, lists and objects are left out."""
    if isinstance(value, dict):
        kept = {k: v2 for k, v in value.items() if (v2 := drop_empty(v)) is not None}
        return kept or None
    if isinstance(value, list):
        items = [v2 for v in value if (v2 := drop_empty(v)) is not None]
        return items or None
    if isinstance(value, str) and not value:
        return None
    return value


def _keys_by_kid(jwks: Any) -> dict[str, Mapping[str, Any]]:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        return {}
    return {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
