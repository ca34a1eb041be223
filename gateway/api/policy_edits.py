"""Editing the policy through the API (admin): check a document, save it,
read back the versions saved (`gateway.delegation.policy_versions`).

A document is checked exactly as a policy file is -- YAML or JSON, unknown
keys and wrong types refused with their line, then the deployment's own
check (rate limits across processes) -- and is at most 256 KiB and 32 levels
deep. `POST /policies/check` stores nothing: it answers the problems, or what
the document would change against the policy in force here. `PUT /policies`
saves it over the version named by ``base_digest`` (409 when another was
saved meanwhile), puts it in force on this replica at once (the others within
`policy_reload_seconds`) and audits `policy.changed` with both digests.

With a policy file set, the file is the source of truth: a save is refused
(409) and names it.
"""

from __future__ import annotations

import asyncio
import difflib
from typing import Any

import yaml
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.api.state import audited, state_of
from gateway.delegation import policy_versions
from gateway.delegation.policy_versions import PolicyReloader, PolicyVersion, StalePolicy
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem
from policies.policy_file import MAX_POLICY_DEPTH, PolicyError, PolicySource, document_digest
from policies.rules import Policy

router = APIRouter(prefix="/policies", tags=["policies"])
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_ERRORS = 100  # a document wrong everywhere is said in its first hundred problems
DIGEST_PATTERN = r"^[0-9a-f]{64}$"
MAX_ID = 2**31 - 1  # an INTEGER column on PostgreSQL


class PolicyText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Bounded in bytes by the validator, not by a `maxLength` in characters:
    # a string just over it (a character JSON-escaped is up to 12 bytes)
    # would be a body over the request limit, refused 413 before this is read.
    document: str = Field(
        description="the policy, YAML or JSON, as it is to be kept (comments too): "
        f"at most {MAX_DOCUMENT_BYTES} bytes (UTF-8), nested at most {MAX_POLICY_DEPTH} levels"
    )

    @field_validator("document")
    @classmethod
    def _bounded(cls, value: str) -> str:
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise ValueError("not text: it holds a lone surrogate") from None
        if size > MAX_DOCUMENT_BYTES:
            raise ValueError(f"larger than {MAX_DOCUMENT_BYTES} bytes (UTF-8)")
        return value


class PolicyEdit(PolicyText):
    base_digest: str = Field(
        pattern=DIGEST_PATTERN,
        description="the `digest` of the policy the edit started from (`GET /policies`)",
    )


def _errors(exc: PolicyError) -> list[dict[str, Any]]:
    return [{"line": line, "message": message} for line, message in exc.problems[:MAX_ERRORS]]


async def checked_policy(source: PolicySource, document: str) -> Policy:
    """``document`` as the policy it would be, checked exactly as a save is;
    422 naming each problem with its line when it is not valid."""
    try:
        return await asyncio.to_thread(source.check, document)
    except PolicyError as exc:
        raise Problem(
            422,
            "invalid-policy",
            "The policy is not valid",
            str(exc).splitlines()[0],
            errors=_errors(exc),
        ) from None


def _canonical(policy: Policy) -> list[str]:
    dumped = policy.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(dumped, sort_keys=True).splitlines()


def _changes(source: PolicySource, text: str, policy: Policy) -> dict[str, Any]:
    """What ``text`` changes against the policy in force: its text line by
    line (``diff``), and the policy as parsed (``effect``: empty when only
    comments or layout differ)."""
    running = source.document
    name = f"in force ({running.source}, sha256:{running.digest[:12]})"
    diff = difflib.unified_diff(
        running.text.splitlines(), text.splitlines(), name, "edited", lineterm=""
    )
    effect = difflib.unified_diff(
        _canonical(source.current), _canonical(policy), name, "edited", lineterm=""
    )
    return {"base_digest": running.digest, "diff": list(diff), "effect": list(effect)}


@router.post("/check", summary="Check a policy document; what it would change (nothing saved)")
async def check_policy(
    request: Request, body: PolicyText, _admin: AdminPrincipal
) -> dict[str, Any]:
    source = state_of(request).delegations.policy
    try:
        policy = await asyncio.to_thread(source.check, body.document)
    except PolicyError as exc:
        return {"valid": False, "errors": _errors(exc)}
    changes = await asyncio.to_thread(_changes, source, body.document, policy)
    return {"valid": True, "digest": document_digest(body.document)} | changes


@router.put("", summary="Save the policy and put it in force")
async def put_policy(
    request: Request, body: PolicyEdit, principal: AdminPrincipal
) -> dict[str, Any]:
    state = state_of(request)
    source = state.delegations.policy
    if source.path is not None:
        raise Problem(
            409,
            "policy-from-file",
            "The policy is read from a file",
            f"the policy in force is the file {source.path}: edit it there",
        )
    policy = await checked_policy(source, body.document)
    try:
        saved = await policy_versions.save(
            state.engine, source, body.document, policy, body.base_digest, principal
        )
    except StalePolicy as exc:
        # Catch up now rather than at the next reload: what this replica then
        # shows (and diffs against) is the version that refused the save.
        await PolicyReloader(state.engine, source).reload()
        raise Problem(
            409,
            "policy-changed",
            "The policy changed meanwhile",
            f"the policy in force is sha256:{exc.in_force}, not the base_digest given: "
            "read it again (GET /policies) and edit that",
        ) from None
    said = f"version {saved.version}: sha256:{body.base_digest} -> sha256:{saved.digest}"
    await audited(request, principal, "policy.changed", "policy", detail=said)
    return {"source": saved.source, "version": saved.version, "digest": saved.digest}


def _version(found: PolicyVersion, in_force: int) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": found.id,
        "digest": found.digest,
        "author": {"subject": found.author_subject, "issuer": found.author_issuer},
        "created_at": found.created_at.isoformat(),
        "in_force": found.id == in_force,
    }
    if found.document is not None:
        shown["document"] = found.document
    return shown


@router.get("/versions", summary="The policy versions saved through the API, newest first")
async def list_versions(
    request: Request,
    _admin: AdminPrincipal,
    limit: int = Query(default=50, ge=1, le=200),
    before: int | None = Query(
        default=None, ge=1, le=MAX_ID, description="only versions older than this id"
    ),
) -> dict[str, Any]:
    state = state_of(request)
    in_force = state.delegations.policy.stored_version
    found = await policy_versions.versions(state.engine, limit, before)
    return {
        "items": [_version(v, in_force) for v in found],
        "next_before": found[-1].id if len(found) == limit else None,
    }


@router.get("/versions/{version_id}", summary="One saved policy version, with its document")
async def get_version(
    request: Request, _admin: AdminPrincipal, version_id: int = Path(ge=1, le=MAX_ID)
) -> dict[str, Any]:
    state = state_of(request)
    found = await policy_versions.version(state.engine, version_id)
    if found is None:
        raise Problem(404, "not-found", "No such policy version", f"no version {version_id}")
    return _version(found, state.delegations.policy.stored_version)
