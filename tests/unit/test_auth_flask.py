"""Flask glue: RFC 6750 challenges, and the principal outside a protected view."""

from __future__ import annotations

import pytest
from flask import Flask

from auth.errors import AuthenticationError, AuthorizationError
from auth.flask import current_principal, www_authenticate_header


def test_a_request_without_a_token_gets_a_bare_challenge() -> None:
    error = AuthenticationError("token-missing", "this request needs an Authorization: Bearer header")
    assert www_authenticate_header(error) == 'Bearer realm="opsflow"'


def test_a_bad_token_gets_invalid_token() -> None:
    error = AuthenticationError("token-expired", 'the access token has expired "\\ \u00e9')
    assert www_authenticate_header(error) == (
        'Bearer realm="opsflow", error="invalid_token", error_description="the access token has expired  "'
    )


def test_a_missing_scope_gets_insufficient_scope_with_the_scopes() -> None:
    error = AuthorizationError(
        "scope-missing", "needs approvals:decide", scopes=["approvals:decide", "tasks:read"]
    )
    assert www_authenticate_header(error) == (
        'Bearer realm="opsflow", error="insufficient_scope", error_description="needs approvals:decide", '
        'scope="approvals:decide tasks:read"'
    )


def test_other_refusals_get_the_plain_challenge() -> None:
    assert www_authenticate_header(AuthorizationError("unit-mismatch", "x")) == 'Bearer realm="opsflow"'


def test_current_principal_outside_a_protected_view_is_an_authentication_error() -> None:
    with Flask(__name__).test_request_context("/"), pytest.raises(AuthenticationError) as caught:
        current_principal()
    assert caught.value.code == "token-missing"


def test_error_codes_are_checked_when_raised() -> None:
    with pytest.raises(ValueError, match="unknown"):
        AuthenticationError("token-lost", "x")  # type: ignore[arg-type]
