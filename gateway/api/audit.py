"""`GET /audit` (admin): the decision log, filtered and paged, or exported as
JSON Lines (`?format=jsonl` or `Accept: application/jsonl`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ConfigDict

from gateway.api.state import state_of
from gateway.delegation.audit_reads import AuditPage, AuditQuery
from gateway.http.auth import AdminPrincipal

router = APIRouter(tags=["audit"])
JSONL = "application/jsonl"


class AuditRequest(AuditQuery):
    """The filters, and the answer's format. A parameter that is none of
    them is refused (422): a misspelt filter (``trace_id`` for ``trace``)
    would otherwise be dropped, and the whole log answered as if filtered."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["json", "jsonl"] | None = None


@router.get(
    "/audit",
    summary="Decisions, newest first (or oldest first after `after_id`)",
    response_model=AuditPage,
    responses={
        200: {
            "content": {
                JSONL: {
                    "schema": {"type": "string"},
                    "description": "One audit record (as in `items`) a line",
                }
            }
        }
    },
)
async def audit(
    request: Request,
    _: AdminPrincipal,
    asked: Annotated[AuditRequest, Query()],
) -> AuditPage | StreamingResponse:
    log = state_of(request).audit
    format, query = asked.format, asked  # the filters: an AuditQuery with its format
    wants_lines = format == "jsonl" or (
        format is None and JSONL in request.headers.get("accept", "")
    )
    if not wants_lines:
        return await page(request, query)

    # The first record is read before the response starts: a bad cursor or a
    # value the database refuses is still a problem document, not a stream
    # cut short after its 200.
    records = log.export(query)
    first = await anext(records, None)

    async def lines() -> AsyncIterator[bytes]:
        if first is None:
            return
        yield first.model_dump_json().encode() + b"\n"
        async for record in records:
            yield record.model_dump_json().encode() + b"\n"

    return StreamingResponse(
        lines(),
        media_type=JSONL,
        headers={"Content-Disposition": 'attachment; filename="switchboard-audit.jsonl"'},
    )


async def page(request: Request, query: AuditQuery) -> AuditPage:
    """One page of the log (what the console's pages show; their callers are
    admins, checked by the console)."""
    return await state_of(request).audit.query(query)
