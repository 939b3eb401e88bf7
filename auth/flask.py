"""Flask integration of the resource server: the extension, ``require_scope`` and ``current_principal``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Flask, current_app, g, request

from auth.errors import AuthenticationError, AuthError, AuthorizationError
from auth.principal import Principal
from auth.settings import AuthSettings
from auth.tokens import TokenValidator

EXTENSION_KEY = "opsflow_auth"
REALM = "opsflow"

P = ParamSpec("P")
R = TypeVar("R")


class AuthExtension:
    """Holds the validator and settings for an app; ``init_app`` files it under ``app.extensions``."""

    def __init__(self, validator: TokenValidator, settings: AuthSettings) -> None:
        self.validator = validator
        self.settings = settings

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self

    def authenticate(self) -> Principal:
        """The principal of the current request, validating its bearer token once per request."""
        known = g.get("opsflow_principal")
        if isinstance(known, Principal):
            return known
        principal = self.validator.validate(bearer_token())
        g.opsflow_principal = principal
        return principal


def bearer_token() -> str:
    """The bearer token from the ``Authorization`` header, the only place one is accepted.

    Tokens in the query string or form body are refused: they end up in logs and browser history.
    """
    header = request.headers.get("Authorization", "")
    if not header:
        if "access_token" in request.args or (request.form and "access_token" in request.form):
            raise AuthenticationError(
                "token-missing", "send the access token in the Authorization header, not in the URL or body"
            )
        raise AuthenticationError("token-missing", "this request needs an Authorization: Bearer header")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationError("token-malformed", "the Authorization header must be 'Bearer <token>'")
    return token


def require_scope(*scopes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a view so it runs only for a valid bearer token carrying every scope in ``scopes``.

    Raises ``AuthenticationError`` (401) or ``AuthorizationError("scope-missing")`` (403) before the
    view runs; the view then reads the caller with ``current_principal()``.
    """
    required = tuple(scopes)

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            principal = _extension().authenticate()
            missing = [scope for scope in required if not principal.has_scope(scope)]
            if missing:
                raise AuthorizationError(
                    "scope-missing",
                    f"this needs the scope {' '.join(required)}; your token lacks {' '.join(missing)}",
                    scopes=required,
                )
            return view(*args, **kwargs)

        return wrapper

    return decorate


def current_principal() -> Principal:
    """The caller of the current request; valid inside a view decorated with ``require_scope``."""
    principal = g.get("opsflow_principal")
    if principal is None:
        raise AuthenticationError("token-missing", "no authenticated caller for this request")
    if not isinstance(principal, Principal):
        raise TypeError("flask.g.opsflow_principal is not a Principal")
    return principal


def www_authenticate_header(error: AuthError) -> str:
    """The RFC 6750 ``WWW-Authenticate`` value for a 401, or a 403 for a missing scope.

    A request without any token gets the bare challenge (RFC 6750 section 3.1: no error code when no
    authentication was attempted).
    """
    parts = [f'realm="{REALM}"']
    if isinstance(error, AuthenticationError) and error.code != "token-missing":
        parts += ['error="invalid_token"', f'error_description="{_quoted(error.detail)}"']
    elif isinstance(error, AuthorizationError) and error.code == "scope-missing":
        parts += ['error="insufficient_scope"', f'error_description="{_quoted(error.detail)}"']
        parts.append(f'scope="{" ".join(error.scopes)}"')
    return "Bearer " + ", ".join(parts)


def _extension() -> AuthExtension:
    extension = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(extension, AuthExtension):
        raise RuntimeError("AuthExtension.init_app(app) was not called")
    return extension


def _quoted(text: str) -> str:
    """RFC 6750 error_description: printable ASCII without the double quote and backslash."""
    return "".join(char for char in text if " " <= char <= "~" and char not in '"\\')
