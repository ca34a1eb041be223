"""What every part of a flow document is made of: strict models, JMESPath
expressions, the id patterns, the tagged unions' discriminator
(`gateway.flows.definition`, `gateway.flows.trigger_definition`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
EVENT_NAME = r"^[A-Za-z0-9_-]{1,64}$"

Expression = Annotated[str, Field(min_length=1, max_length=4000, description="JMESPath")]


class Strict(BaseModel):
    """Unknown keys are refused: a misspelt key must not pass as if absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def one_of(*kinds: str) -> Callable[[Any], str | None]:
    """A tagged union's discriminator: the one of ``kinds`` a value has as a
    key (None when it has none, or several: the union's own error says so)."""

    def kind(value: Any) -> str | None:
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(value, dict):
            found = [k for k in kinds if k in value]
            return found[0] if len(found) == 1 else None
        return None

    return kind
