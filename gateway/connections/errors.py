"""What connected accounts raise; each door says it in its own protocol."""

from __future__ import annotations


class ConnectionRequired(Exception):
    """The user has not connected their account at this upstream (or the
    connection stopped working: revoked there, refresh refused). Nothing was
    sent: no other credential stands in for theirs. ``connect_url`` is the
    gateway page where they give their consent."""

    def __init__(self, upstream: str, connect_url: str, reason: str) -> None:
        super().__init__(f"{upstream}: {reason}; connect your account at {connect_url}")
        self.upstream = upstream
        self.connect_url = connect_url
        self.reason = reason


class ConnectFailed(Exception):
    """Connecting an account could not go on (discovery, registration, the
    authorization server's answer). The message says why, for the user who
    tried; it never carries a token or a secret. ``refused``: the
    authorization server refused the grant itself (RFC 6749 §5.2
    ``invalid_grant``: a refresh token revoked or already used), as opposed
    to not answering, or refusing the client or a parameter."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused  # the grant itself is refused (invalid_grant)
