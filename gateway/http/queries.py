"""Query parameters read as the OpenAPI document says they are, and no more
loosely (found by the REST fuzzer, `tests/fuzz/test_rest_api.py`).

* A date and time is ISO 8601, as the document's ``format: date-time`` says.
  Pydantic would also read a number -- ``?since=9432120`` -- as a Unix
  timestamp, so a caller who meant something else got an answer about April
  1970 instead of a 422 (`IsoDatetime`).
* A parameter is given once. FastAPI reads a repeated one as its last value
  and drops the others without a word, so ``?subject=a&subject=b`` answered
  for ``b`` alone (`single_valued_query`, on every REST API route: none of
  them takes a list in the query).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*")


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an ISO 8601 date and time (2026-11-27T09:30:00Z), not a number")
    return value


# A `datetime` that is never read from a number (a Unix timestamp).
IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]


async def single_valued_query(request: Request) -> None:
    """Refuse (422, the API's own "invalid-request" problem) a request that
    gives any query parameter more than once."""
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name in seen:
            raise RequestValidationError(
                [
                    {
                        "type": "repeated",
                        "loc": ("query", name),
                        "msg": f"query parameter {name!r} is given more than once",
                        "input": value,
                    }
                ]
            )
        seen.add(name)
