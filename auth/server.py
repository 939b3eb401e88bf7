"""The embedded OAuth 2 authorization server: token, authorization (login form), discovery and JWKS endpoints.

Built on Authlib's Flask ``AuthorizationServer`` with two grants: client credentials for systems, and
authorization code with PKCE (S256 only, always required) for people. Access tokens are RS256 JWTs
(RFC 9068) minted by ``auth.issuer`` and checked by the same ``TokenValidator`` as in external mode.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template_string, request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from auth.errors import AuthConfigError
from auth.issuer import Identity, IssuedToken, issue_token
from auth.keys import SIGNING_ALGORITHM, KeyStore
from auth.models import AuthClient, AuthCode, AuthUser
from auth.principal import SCOPES
from auth.settings import AuthSettings
from auth.timing import Now, as_utc, utcnow

log = logging.getLogger(__name__)

EXTENSION_KEY = "opsflow_auth_server"
CODE_LIFETIME = timedelta(minutes=5)
NONCE_COOKIE = "opsflow_login_nonce"
CONFIDENTIAL_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

bp = Blueprint("opsflow_oauth2", __name__)


@dataclass(frozen=True)
class ClientView:
    """A client row detached from its session, answering Authlib's ``ClientMixin`` questions."""

    client_id: str
    name: str
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    identity: Identity

    @classmethod
    def of(cls, row: AuthClient) -> ClientView:
        return cls(
            row.client_id,
            row.name,
            row.secret_hash,
            tuple(row.redirect_uris),
            tuple(row.grant_types),
            tuple(row.scopes),
            Identity.of_client(row),
        )

    @property
    def public(self) -> bool:
        return self.secret_hash is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """Clients always name their redirect URI (OAuth 2.1); there is no default."""
        return

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may have, or all of its scopes when none were requested."""
        return " ".join(allowed_scopes(scope, self.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and check_password_hash(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint != "token":
            return True
        return method == "none" if self.public else method in CONFIDENTIAL_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass(frozen=True)
class UserView:
    """A signed-in user, detached from the session."""

    id: int
    identity: Identity
    scopes: tuple[str, ...]

    @classmethod
    def of(cls, row: AuthUser) -> UserView:
        return cls(row.id, Identity.of_user(row), tuple(row.scopes))

    def get_user_id(self) -> int:
        return self.id


@dataclass(frozen=True)
class CodeView:
    """An authorization code claimed for exchange, answering Authlib's ``AuthorizationCodeMixin``."""

    user_id: int
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


def allowed_scopes(requested: str | Iterable[str] | None, permitted: Iterable[str]) -> list[str]:
    """The requested scopes that are also permitted, in request order; all permitted ones if none asked."""
    allowed = list(dict.fromkeys(permitted))
    if not requested:
        return allowed
    wanted = requested.split() if isinstance(requested, str) else list(requested)
    return [scope for scope in dict.fromkeys(wanted) if scope in allowed]


class _RequireS256(CodeChallenge):  # type: ignore[misc]
    """PKCE on every authorization request, with the S256 method only (RFC 9700 s.2.1.1)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class _ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(CONFIDENTIAL_AUTH_METHODS)


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def save_authorization_code(self, code: str, oauth_request: Any) -> None:
        _state().save_code(code, oauth_request)

    def query_authorization_code(self, code: str, client: ClientView) -> CodeView | None:
        return _state().claim_code(code, client)

    def delete_authorization_code(self, authorization_code: CodeView) -> None:
        """Nothing to do: ``query_authorization_code`` already consumed the code (single use)."""

    def authenticate_user(self, authorization_code: CodeView) -> UserView | None:
        return _state().find_user_by_id(authorization_code.user_id)


class EmbeddedAuthServer:
    """The state behind the endpoints and the CLI: database, signing keys, settings and clock."""

    def __init__(
        self, *, sessions: sessionmaker[Session], keystore: KeyStore, settings: AuthSettings, now: Now
    ) -> None:
        self.sessions = sessions
        self.keystore = keystore
        self.settings = settings
        self.now = now
        self.authorization = AuthorizationServer()

    def query_client(self, client_id: str) -> ClientView | None:
        with self.sessions() as session:
            row = session.scalars(
                select(AuthClient).where(AuthClient.client_id == client_id, AuthClient.active.is_(True))
            ).one_or_none()
            return ClientView.of(row) if row else None

    def authenticate(self, username: str, password: str) -> UserView | None:
        """The active user with this username and password, or None (taking the same time either way)."""
        with self.sessions() as session:
            row = session.scalars(select(AuthUser).where(AuthUser.username == username)).one_or_none()
            if row is None:
                check_password_hash(_decoy_hash(), password)
                return None
            if not check_password_hash(row.password_hash, password) or not row.active:
                return None
            return UserView.of(row)

    def find_user_by_id(self, user_id: int) -> UserView | None:
        with self.sessions() as session:
            row = session.get(AuthUser, user_id)
            return UserView.of(row) if row is not None and row.active else None

    def save_code(self, code: str, oauth_request: Any) -> None:
        user: UserView = oauth_request.user
        client: ClientView = oauth_request.client
        data = oauth_request.payload.data
        now = self.now()
        scope = " ".join(allowed_scopes(oauth_request.scope, user.scopes))
        with self.sessions.begin() as session:
            session.execute(delete(AuthCode).where(AuthCode.expires_at < now))
            session.add(
                AuthCode(
                    code_hash=_digest(code),
                    client_id=client.client_id,
                    user_id=user.id,
                    redirect_uri=oauth_request.payload.redirect_uri,
                    scope=scope,
                    code_challenge=data["code_challenge"],
                    code_challenge_method=data["code_challenge_method"],
                    expires_at=now + CODE_LIFETIME,
                )
            )

    def claim_code(self, code: str, client: ClientView) -> CodeView | None:
        """Fetch and delete the code in one transaction, so it can be exchanged at most once."""
        statement = (
            delete(AuthCode)
            .where(AuthCode.code_hash == _digest(code), AuthCode.client_id == client.client_id)
            .returning(AuthCode)
        )
        with self.sessions.begin() as session:
            row = session.scalars(statement).one_or_none()
            if row is None or as_utc(row.expires_at) <= self.now():
                return None
            return CodeView(
                row.user_id, row.redirect_uri, row.scope, row.code_challenge, row.code_challenge_method
            )

    def generate_token(
        self,
        *,
        grant_type: str,
        client: ClientView,
        user: UserView | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        """Authlib's token generator: a signed JWT limited to what the client (and user) may have.

        The lifetime is always ``settings.token_lifetime`` and no refresh token is issued, whatever
        ``expires_in`` and ``include_refresh_token`` say.
        """
        permitted = client.scopes if user is None else allowed_scopes(user.scopes, client.scopes)
        identity = client.identity if user is None else user.identity
        issued = issue_token(
            self.keystore,
            self.settings,
            identity,
            client_id=client.client_id,
            scopes=allowed_scopes(scope, permitted),
            grant=grant_type,
            now=self.now,
        )
        return {
            "token_type": "Bearer",
            "access_token": issued.access_token,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }

    def issue_user_token(
        self, username: str, *, scopes: Iterable[str] = (), client_id: str = "opsflow-cli"
    ) -> IssuedToken:
        """Mint a token for an active user without a login (the ``token`` command); ``scopes`` must be a
        subset of the user's scopes, and all of them are granted when it is empty."""
        with self.sessions() as session:
            row = session.scalars(select(AuthUser).where(AuthUser.username == username)).one_or_none()
            if row is None or not row.active:
                raise AuthConfigError(f"there is no active user {username!r}")
            user = UserView.of(row)
        wanted = list(scopes)
        refused = sorted(set(wanted) - set(user.scopes))
        if refused:
            raise AuthConfigError(f"user {username!r} may not have the scope(s) {' '.join(refused)}")
        granted = allowed_scopes(wanted, user.scopes)
        return issue_token(
            self.keystore,
            self.settings,
            user.identity,
            client_id=client_id,
            scopes=granted,
            grant="cli",
            now=self.now,
        )

    def metadata(self) -> dict[str, Any]:
        base = self.settings.public_url
        return {
            "issuer": self.settings.expected_issuer,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "token_endpoint": f"{base}/oauth2/token",
            "jwks_uri": f"{base}/oauth2/jwks",
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": sorted(SCOPES),
            "token_endpoint_auth_methods_supported": [*CONFIDENTIAL_AUTH_METHODS, "none"],
            "access_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
        }


def init_auth_server(
    app: Flask,
    *,
    sessions: sessionmaker[Session],
    keystore: KeyStore,
    settings: AuthSettings,
    now: Now = utcnow,
) -> EmbeddedAuthServer:
    """Mount the embedded authorization server on ``app`` and file its state in ``app.extensions``."""
    if not settings.embedded:
        raise AuthConfigError("the embedded authorization server runs only when OPSFLOW_OIDC_ISSUER is unset")
    state = EmbeddedAuthServer(sessions=sessions, keystore=keystore, settings=settings, now=now)
    server = state.authorization
    server.init_app(app, query_client=state.query_client, save_token=_keep_nothing)
    server.register_token_generator("default", state.generate_token)
    server.scopes_supported = sorted(SCOPES)
    server.register_grant(_ClientCredentialsGrant)
    server.register_grant(_AuthorizationCodeGrant, [_RequireS256(required=True)])
    app.extensions[EXTENSION_KEY] = state
    app.register_blueprint(bp)
    return state


def _keep_nothing(token: dict[str, Any], oauth_request: Any) -> None:
    """Access tokens are self-contained JWTs; none is stored."""


def _state() -> EmbeddedAuthServer:
    state = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, EmbeddedAuthServer):
        raise RuntimeError("init_auth_server(app, ...) was not called")
    return state


@functools.cache
def _decoy_hash() -> str:
    """A hash of a random password, checked for unknown usernames so that a wrong username costs as
    much time as a wrong password and does not reveal which accounts exist."""
    return generate_password_hash(secrets.token_urlsafe(32))


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


@bp.post("/oauth2/token")
def token_endpoint() -> Response:
    response: Response = _state().authorization.create_token_response()
    return response


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery() -> Response:
    response = jsonify(_state().metadata())
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.get("/oauth2/jwks")
def jwks() -> Response:
    response = jsonify(_state().keystore.public_jwks())
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.route("/oauth2/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    """Show the sign-in form for a valid authorization request; on POST, sign in and redirect with a code."""
    state = _state()
    server = state.authorization
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        if error.redirect_uri:
            response: Response = server.handle_error_response(None, error)
            return response
        return _page(_ERROR_PAGE, status=400, message=error.description or error.error)
    if request.method == "GET":
        return _login_form(grant)
    sent_nonce = request.form.get("nonce", "")
    kept_nonce = request.cookies.get(NONCE_COOKIE, "")
    if not sent_nonce or not hmac.compare_digest(sent_nonce, kept_nonce):
        return _page(
            _ERROR_PAGE, status=400, message="This sign-in form has expired. Start again from the app."
        )
    if request.form.get("action") == "cancel":
        response = server.create_authorization_response(grant_user=None, grant=grant)
        return _forget_nonce(response)
    user = state.authenticate(request.form.get("username", ""), request.form.get("password", ""))
    if user is None:
        log.info(
            "auth.login_failed username=%r client=%s",
            request.form.get("username", ""),
            grant.client.client_id,
        )
        return _login_form(grant, message="Wrong username or password.")
    log.info("auth.login username=%s client=%s", user.identity.subject, grant.client.client_id)
    response = server.create_authorization_response(grant_user=user, grant=grant)
    return _forget_nonce(response)


_FORWARDED = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _login_form(grant: Any, *, message: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(32)
    data = grant.request.payload.data
    fields = {name: data.get(name) for name in _FORWARDED if data.get(name)}
    response = _page(
        _LOGIN_PAGE,
        status=200,
        message=message,
        client_name=grant.client.name,
        scopes=allowed_scopes(grant.request.payload.scope, grant.client.scopes),
        fields=fields,
        nonce=nonce,
    )
    response.set_cookie(
        NONCE_COOKIE,
        nonce,
        max_age=int(CODE_LIFETIME.total_seconds()) * 2,
        path="/oauth2/authorize",
        secure=_state().settings.public_url.startswith("https://"),
        httponly=True,
        samesite="Strict",
    )
    return response


def _forget_nonce(response: Response) -> Response:
    response.delete_cookie(NONCE_COOKIE, path="/oauth2/authorize")
    return response


def _page(template: str, *, status: int, **context: Any) -> Response:
    response = Response(render_template_string(template, **context), status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.cache_control.no_store = True
    return response


_STYLE = """<style>
body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b}
label{display:block;margin-top:1rem}input{width:100%;padding:.4rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1.2rem;padding:.5rem 1rem;font-size:1rem}.error{color:#a00000}
</style>"""

_LOGIN_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to opsflow</title>"""
    + _STYLE
    + """</head>
<body><main>
<h1>Sign in to opsflow</h1>
<p><strong>{{ client_name }}</strong> asks to act for you with: {{ scopes | join(", ") or "no scopes" }}.</p>
{% if message %}<p class="error" role="alert">{{ message }}</p>{% endif %}
<form method="post" action="/oauth2/authorize">
{% for name, value in fields.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<input type="hidden" name="nonce" value="{{ nonce }}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</form>
</main></body></html>
"""
)

_ERROR_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in problem</title>"""
    + _STYLE
    + """</head>
<body><main><h1>Sign-in problem</h1><p class="error">{{ message }}</p></main></body></html>
"""
)
