"""Registering a server that acts with users' own credentials.

`user_oauth` sends every user to the server's authorization server to log
in; `idp_token_exchange` sends their identity provider's tokens to the token
endpoint it names. Only an admin vouches for either. And an exchange goes
only to the identity provider that issued the tokens: an issuer the gateway
trusts for its users, its token endpoint on that issuer's own origin, over
https outside --dev.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.federation.federated_tools import RegistrationRefused
from policies.scopes import ADMIN_SCOPE
from registry.mcp_models import CredentialSpec, IdpTokenExchange


@dataclass(frozen=True)
class UsersOwnChecks:
    # The identity providers whose users' tokens the gateway accepts.
    trusted_issuers: tuple[str, ...] = ()
    allow_http: bool = False  # --dev: token endpoints on plain http


def check_users_own(spec: CredentialSpec, admin: bool, checks: UsersOwnChecks) -> None:
    if spec.type in ("user_oauth", "idp_token_exchange") and not admin:
        raise RegistrationRefused(
            f"a server that acts with users' own credentials ({spec.type}) is registered "
            f"by an admin ({ADMIN_SCOPE})"
        )
    if isinstance(spec, IdpTokenExchange):
        check_exchange(spec, checks)


def check_exchange(spec: IdpTokenExchange, checks: UsersOwnChecks) -> None:
    """Users' tokens go only to the identity provider that issued them: the
    issuer is one the gateway trusts for its users, and the token endpoint is
    on that issuer's own origin, over https (outside --dev)."""
    if spec.issuer not in checks.trusted_issuers:
        raise RegistrationRefused(
            f"{spec.issuer} is not one of the gateway's trusted issuers: only their users' "
            "tokens can be exchanged"
        )
    issuer, endpoint = urlsplit(spec.issuer), urlsplit(spec.token_url)
    if (endpoint.scheme, endpoint.netloc.lower()) != (issuer.scheme, issuer.netloc.lower()):
        raise RegistrationRefused(
            "token_url must be on the issuer's own origin: users' tokens go to the identity "
            "provider that issued them, nowhere else"
        )
    if endpoint.scheme != "https" and not checks.allow_http:
        raise RegistrationRefused("token_url must be https")
    if spec.authorization_server_token_url is not None:
        # The ID-JAG and the gateway's secret there go to the upstream's own
        # authorization server: on the origin of the issuer named, over https.
        named = urlsplit(spec.authorization_server or "")
        server = urlsplit(spec.authorization_server_token_url)
        if (server.scheme, server.netloc.lower()) != (named.scheme, named.netloc.lower()):
            raise RegistrationRefused(
                "authorization_server_token_url must be on the authorization_server's origin"
            )
        if server.scheme != "https" and not checks.allow_http:
            raise RegistrationRefused("authorization_server_token_url must be https")
