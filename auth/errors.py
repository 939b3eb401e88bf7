"""Authentication and authorization errors, each with a stable ``code`` slug and no HTTP in it.

The tree, with the status the API layer renders for each branch::

    AuthError
    ├── AuthenticationError     401  no token, or one that cannot be trusted
    ├── AuthorizationError      403  a trusted caller who may not do this
    ├── NotVisibleError         404  the object exists but the caller must not learn that it does
    └── KeySetUnavailableError  503  the identity provider's keys cannot be fetched
    AuthConfigError                  a setting or seed value cannot be used (raised at boot)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

AuthenticationCode = Literal[
    "token-missing",
    "token-malformed",
    "token-expired",
    "token-not-yet-valid",
    "token-wrong-issuer",
    "token-wrong-audience",
    "token-unknown-key",
    "token-bad-signature",
    "token-algorithm-refused",
]

AuthorizationCode = Literal[
    "scope-missing",
    "role-missing",
    "unit-mismatch",
    "clearance-too-low",
    "rank-too-low",
    "separation-of-duties",
]


class AuthError(Exception):
    """Base of every error raised while deciding who the caller is and what they may do."""

    code: str = "auth-error"
    title: str = "Authentication or authorization failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AuthenticationError(AuthError):
    """The request carries no usable access token; the caller should obtain a new one."""

    title = "Authentication required"

    def __init__(self, code: AuthenticationCode, detail: str) -> None:
        if code not in get_args(AuthenticationCode):
            raise ValueError(f"unknown authentication error code {code!r}")
        super().__init__(detail)
        self.code = code


class AuthorizationError(AuthError):
    """The caller is known but lacks a scope, role, unit, clearance or rank, or is conflicted.

    ``scopes`` lists the scopes that were required when ``code`` is ``scope-missing`` so that the
    API layer can name them in the ``WWW-Authenticate`` header.
    """

    title = "Not allowed"

    def __init__(self, code: AuthorizationCode, detail: str, *, scopes: Iterable[str] = ()) -> None:
        if code not in get_args(AuthorizationCode):
            raise ValueError(f"unknown authorization error code {code!r}")
        super().__init__(detail)
        self.code = code
        self.scopes = tuple(scopes)


class NotVisibleError(AuthError):
    """The caller may not know the object exists (e.g. a case classified above their clearance).

    ``detail`` is deliberately the same as for a missing object; ``reason`` is for the audit log only
    and must never be sent to the caller.
    """

    code = "not-found"
    title = "Not found"

    def __init__(self, reason: str, *, detail: str = "No such object, or not visible to you") -> None:
        super().__init__(detail)
        self.reason = reason


class KeySetUnavailableError(AuthError):
    """The signing keys of the identity provider could not be fetched, so no token can be checked."""

    code = "jwks-unavailable"
    title = "Token keys unavailable"


class AuthConfigError(ValueError):
    """A setting, key file or seed entry has a value the auth package cannot use."""
