"""What every part of a flow document is made of: strict models, JMESPath
expressions, and the id patterns (`gateway.flows.definition`,
`gateway.flows.trigger_definition`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
EVENT_NAME = r"^[A-Za-z0-9_-]{1,64}$"

Expression = Annotated[str, Field(min_length=1, max_length=4000, description="JMESPath")]


class Strict(BaseModel):
    """Unknown keys are refused: a misspelt key must not pass as if absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
