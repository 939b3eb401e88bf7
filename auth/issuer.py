"""Minting of RFC 9068 JWT access tokens for the embedded authorization server and the ``token`` command."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt

from auth.keys import SIGNING_ALGORITHM, KeyStore
from auth.models import AuthClient, AuthUser
from auth.settings import AuthSettings
from auth.timing import Now, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """What a token says about its subject: a signed-in user, or a system using client credentials."""

    subject: str
    name: str
    roles: tuple[str, ...]
    units: tuple[str, ...]
    rank: str | None
    clearance: str

    @classmethod
    def of_user(cls, user: AuthUser) -> Identity:
        return cls(user.username, user.name, tuple(user.roles), tuple(user.units), user.rank, user.clearance)

    @classmethod
    def of_client(cls, client: AuthClient) -> Identity:
        """Client subjects are prefixed so that no system can share a ``sub`` with a person (RFC 9068 s.5)."""
        return cls(
            f"client:{client.client_id}",
            client.name,
            tuple(client.roles),
            tuple(client.units),
            None,
            client.clearance,
        )


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    claims: dict[str, Any]


def issue_token(
    keystore: KeyStore,
    settings: AuthSettings,
    identity: Identity,
    *,
    client_id: str,
    scopes: Iterable[str],
    grant: str,
    now: Now = utcnow,
) -> IssuedToken:
    """Sign an ``at+jwt`` access token for ``identity``, valid for ``settings.token_lifetime`` seconds.

    The caller decides which scopes are allowed; this function only writes them down, and logs the
    issue with ``grant`` (how the token was obtained) for the audit of who held which token.
    """
    issued_at = int(now().timestamp())
    scope = " ".join(dict.fromkeys(scopes))
    claims: dict[str, Any] = {
        "iss": settings.expected_issuer,
        "aud": settings.audience,
        "sub": identity.subject,
        "client_id": client_id,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + settings.token_lifetime,
        "jti": uuid.uuid4().hex,
        "scope": scope,
        "name": identity.name,
        "roles": list(identity.roles),
        "units": list(identity.units),
        "clearance": identity.clearance,
    }
    if identity.rank is not None:
        claims["rank"] = identity.rank
    signing = keystore.current_key()
    header = {"alg": SIGNING_ALGORITHM, "typ": "at+jwt", "kid": signing.kid}
    token = jwt.encode(header, claims, signing.private, algorithms=[SIGNING_ALGORITHM])
    log.info(
        "auth.token_issued grant=%s sub=%s client=%s jti=%s kid=%s scope=%r",
        grant,
        identity.subject,
        client_id,
        claims["jti"],
        signing.kid,
        scope,
    )
    return IssuedToken(access_token=token, expires_in=settings.token_lifetime, scope=scope, claims=claims)
