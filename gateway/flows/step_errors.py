"""How a flow step's call fails, and the one case where it waits instead."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable


class StepFailed(Exception):
    """The attempt failed; ``final`` when another attempt cannot help."""

    def __init__(self, reason: str, *, final: bool = False) -> None:
        super().__init__(reason)
        self.final = final


class NeedsApproval(Exception):
    """The policy holds every call to the step's target for a human's
    approval (``approval: true``): nothing was sent; the run asks the desk
    (`gateway.flows.reviews.called`)."""

    def __init__(self, target: str, reasons: list[str]) -> None:
        super().__init__(f"{target} needs a human's approval for every call ({'; '.join(reasons)})")


class NeedsConsent(Exception):
    """The run's user has not connected their account at the tool's server."""

    def __init__(self, needed: ConnectionRequired) -> None:
        super().__init__(str(needed))
        self.needed = needed


@contextlib.contextmanager
def users_own(target: str) -> Iterator[None]:
    """A call that goes with the run's user's own credential (a connected
    account, an identity provider's token), which the core refused to send
    without: nothing was sent. Not connected yet, the run waits for its user
    (`gateway.flows.consents`); any other lack fails the step for good."""
    try:
        yield
    except ConnectionRequired as needed:
        raise NeedsConsent(needed) from None
    except UserCredentialUnavailable as missing:
        raise StepFailed(f"{target}: {missing.reason}", final=True) from None
