"""A connection under way, kept in the browser's own cookie, sealed.

Between sending the browser to the upstream's authorization server and its
coming back, the gateway needs the `state` and PKCE verifier it made, where
the token is to be asked for, and whose connection it is. As with a console
login under way (`gateway.console.login_state`), the browser carries it,
encrypted and authenticated (Fernet, its own timestamp checked against
``CONNECT_SECONDS``) under a key derived for this purpose alone, so any
replica opens it and the browser can neither read the verifier nor change
whose connection it is. It is bound to the console session that started it
(`session`, a hash of that session's cookie): a callback in another session
-- another user's browser lured to the link -- is refused (RFC 9700 §4.7,
CSRF against the redirect URI).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass

from cryptography.fernet import Fernet, InvalidToken

from policies.keys import derive_key

CONNECT_SECONDS = 600  # time to get through the vendor's login and consent pages


@dataclass(frozen=True)
class Pending:
    state: str
    verifier: str
    upstream: str
    session: str
    subject: str
    issuer: str
    authorization_server: str
    token_endpoint: str
    revocation_endpoint: str | None
    resource: str
    scope: str | None
    client_id: str
    iss_required: bool


def session_binding(session_cookie: str) -> str:
    return hashlib.sha256(b"connect:" + session_cookie.encode()).hexdigest()


class PendingSeal:
    def __init__(self, secret: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, "connect-state")))

    def seal(self, pending: Pending) -> str:
        return self._fernet.encrypt(json.dumps(asdict(pending)).encode()).decode("ascii")

    def open(self, cookie: str | None) -> Pending | None:
        """The connection under way, or None: no cookie, tampered with, or expired."""
        if not cookie:
            return None
        try:
            raw = self._fernet.decrypt(cookie.encode("ascii"), ttl=CONNECT_SECONDS)
            return Pending(**json.loads(raw))
        except (InvalidToken, UnicodeError, ValueError, TypeError):
            return None
