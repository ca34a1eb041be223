"""What connected accounts raise; each door says it in its own protocol."""

from __future__ import annotations


class UserCredentialUnavailable(Exception):
    """The call must carry the user's own credential at ``upstream`` and there
    is none to carry. Nothing was sent: no other credential stands in for
    theirs. ``outcome`` is the audit record's."""

    outcome = "user_credential_unavailable"

    def __init__(self, upstream: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"{upstream}: {reason}")
        self.upstream = upstream
        self.reason = reason


class ConnectionRequired(UserCredentialUnavailable):
    """The user has not connected their account at this upstream (or the
    connection stopped working: revoked there, refresh refused).
    ``connect_url`` is the gateway page where they give their consent."""

    outcome = "connection_required"

    def __init__(
        self, upstream: str, connect_url: str, reason: str, seen: tuple[str, int] | None = None
    ) -> None:
        super().__init__(
            upstream, reason, f"{upstream}: {reason}; connect your account at {connect_url}"
        )
        self.connect_url = connect_url
        # The connection the call found and could not use, (id, version), if
        # one is left: what a run waiting for the user compares theirs with
        # (`gateway.flows.consents`) -- one written since is worth a new try.
        self.seen = seen


class ScopeRequired(ConnectionRequired):
    """The upstream needs a scope the user's connection was not granted (its
    403 ``insufficient_scope``, RFC 6750 §3.1). The connection still works for
    what it was granted; ``connect_url`` asks the user again for exactly the
    scopes they had plus the ones missing (``scope``)."""

    outcome = "insufficient_scope"

    def __init__(
        self,
        upstream: str,
        connect_url: str,
        reason: str,
        scope: str,
        kept: str,
        seen: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(upstream, connect_url, reason, seen)
        self.scope = scope
        self.kept = kept  # the connection that lacked it, "id:version"


class OnBehalfUnavailable(UserCredentialUnavailable):
    """No token for the user could be had from their identity provider: the
    call carries none of theirs (a flow step, a deferred call, a hop through
    an agent), it is another provider's, or the provider refused the exchange."""

    outcome = "on_behalf_refused"


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
