"""A login under way, kept in the browser's own cookie, sealed.

Every anonymous visit to the console lands on the login page; keeping its
state in the database wrote a row per visit, which anyone could make at
request rate. The state -- the login form's CSRF token, and the OAuth
`state` and PKCE `code_verifier` the issuer's callback must match, with the
console page to return to -- is small, so the browser carries it: encrypted
and authenticated (Fernet: AES-128-CBC + HMAC-SHA256, with its own timestamp
checked against ``LOGIN_SECONDS``), under a key derived (HKDF) from
`SWITCHBOARD_SECRET_KEY` for this purpose alone, so every replica opens what
another sealed and nothing else sealed with that secret opens here. The
browser cannot read its verifier, nor change its state or return path.

A `--dev` gateway without a secret derives the key from its resource id: a
dev gateway lets anyone log in as anyone anyway (the dev login form).

A code is single-use at the issuer (RFC 6749 §4.1.2), and a successful
callback clears the cookie, so a callback cannot log in twice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LOGIN_SECONDS = 600  # time to get through the issuer's login page
_INFO = b"switchboard console login state v1"


@dataclass(frozen=True)
class Login:
    csrf: str
    state: str | None
    code_verifier: str | None
    return_to: str | None


class LoginSeal:
    def __init__(self, secret: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret.encode("utf-8")
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, login: Login) -> str:
        return self._fernet.encrypt(json.dumps(asdict(login)).encode()).decode("ascii")

    def open(self, cookie: str | None, now: float | None = None) -> Login | None:
        """The login, or None: no cookie, tampered with, another key's, or expired."""
        if not cookie:
            return None
        try:
            raw = (
                self._fernet.decrypt(cookie.encode("ascii"), ttl=LOGIN_SECONDS)
                if now is None
                else self._fernet.decrypt_at_time(
                    cookie.encode("ascii"), ttl=LOGIN_SECONDS, current_time=int(now)
                )
            )
            fields = json.loads(raw)
            return Login(**fields)
        except (InvalidToken, UnicodeError, ValueError, TypeError):
            return None
