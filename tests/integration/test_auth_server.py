"""The embedded authorization server end to end: real HTTP requests, a migrated database, signed tokens."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws
from sqlalchemy.orm import Session, sessionmaker

from auth.cli import rotate_keys_command, seed_demo_command, token_command
from auth.errors import AuthenticationError, AuthError, AuthorizationError, NotVisibleError
from auth.flask import AuthExtension, current_principal, require_scope
from auth.keys import KeyStore
from auth.models import AuthBase, AuthClient, AuthCode, AuthUser
from auth.seed import DEMO_SEED, load_seed
from auth.server import init_auth_server
from auth.settings import AuthSettings
from auth.tokens import TokenValidator

PUBLIC_URL = "http://localhost"
CALLBACK = "http://127.0.0.1:8765/callback"
DEMO_PASSWORD = "opsflow-demo"
INTEGRATION_SECRET = "integration-demo-secret"

LANE_ROLES = {
    "applicant",
    "gatekeeper",
    "authorising_officer",
    "central_record_keeper",
    "operational_team",
    "duty_inspector",
    "senior_investigating_officer",
    "deputy_sio",
    "office_manager",
    "receiver",
    "action_allocator",
    "investigator",
    "family_liaison_coordinator",
    "family_liaison_officer",
    "review_officer",
    "gold",
    "silver",
    "force_incident_manager",
    "negotiator_coordinator",
    "negotiator",
    "intelligence_cell",
    "officer_in_case",
    "digital_media_investigator",
    "triage_gatekeeper",
    "examiner",
    "peer_reviewer",
    "disclosure_officer",
    "referrer",
    "early_help_triage",
    "data_team",
    "keyworker",
    "team_around_family",
    "claims_officer",
    "internal_auditor",
    "custody_officer",
    "review_inspector",
    "superintendent",
    "detention_officer",
    "supervisor",
    "process_designer",
    "operator",
    "auditor",
}


class Clock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment


@dataclass
class Embedded:
    app: Flask
    client: FlaskClient
    sessions: sessionmaker[Session]
    keystore: KeyStore
    validator: TokenValidator
    clock: Clock


@pytest.fixture
def embedded(database_urls: dict[str, str], backend: str, tmp_path: Path) -> Iterator[Embedded]:
    """A minimal app with the embedded server and one protected route, on a schema built by Alembic."""
    engine = sa.create_engine(database_urls[backend], poolclass=sa.pool.NullPool)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions.begin() as session:
        for table in reversed(AuthBase.metadata.sorted_tables):
            session.execute(table.delete())
        load_seed(session, DEMO_SEED)
    clock = Clock()
    settings = AuthSettings(public_url=PUBLIC_URL)
    keystore = KeyStore(
        tmp_path / "keys", token_lifetime=settings.token_lifetime, key_size=2048, now=clock.now
    )
    validator = TokenValidator.from_settings(settings, keystore=keystore, now=clock.now)
    app = Flask(__name__)
    AuthExtension(validator, settings).init_app(app)
    init_auth_server(app, sessions=sessions, keystore=keystore, settings=settings, now=clock.now)

    @app.get("/api/v1/me")
    @require_scope("tasks:read")
    def me() -> dict[str, Any]:
        caller = current_principal()
        return {"subject": caller.subject, "roles": sorted(caller.roles), "rank": caller.rank}

    @app.errorhandler(AuthError)
    def refused(error: AuthError) -> tuple[dict[str, str], int]:
        status = {AuthenticationError: 401, AuthorizationError: 403, NotVisibleError: 404}.get(
            type(error), 503
        )
        return {"code": error.code}, status

    yield Embedded(app, app.test_client(), sessions, keystore, validator, clock)
    engine.dispose()


def basic(client_id: str, secret: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(challenge: str | None, *, scope: str = "tasks:read approvals:decide", **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "opsflow-cli",
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": "st-123",
        **({"code_challenge": challenge, "code_challenge_method": "S256"} if challenge else {}),
        **extra,
    }
    return "/oauth2/authorize?" + urlencode(params)


def form_fields(page: str) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page)
    }


def sign_in(client: FlaskClient, challenge: str, username: str, password: str) -> Any:
    page = client.get(authorize_url(challenge))
    assert page.status_code == 200
    fields = form_fields(page.get_data(as_text=True))
    return client.post("/oauth2/authorize", data={**fields, "username": username, "password": password})


def exchange(client: FlaskClient, code: str, verifier: str) -> Any:
    return client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": "opsflow-cli",
            "code_verifier": verifier,
        },
    )


def code_from(response: Any) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


def client_credentials(client: FlaskClient, scope: str | None = None) -> Any:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return client.post("/oauth2/token", data=data, headers=basic("integration-system", INTEGRATION_SECRET))


def test_discovery_and_jwks_are_published(embedded: Embedded) -> None:
    metadata = embedded.client.get("/.well-known/openid-configuration").json
    assert metadata is not None
    assert metadata["issuer"] == PUBLIC_URL
    assert metadata["token_endpoint"] == f"{PUBLIC_URL}/oauth2/token"
    assert metadata["authorization_endpoint"] == f"{PUBLIC_URL}/oauth2/authorize"
    assert metadata["jwks_uri"] == f"{PUBLIC_URL}/oauth2/jwks"
    assert metadata["grant_types_supported"] == ["authorization_code", "client_credentials"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "approvals:decide" in metadata["scopes_supported"]
    jwks = embedded.client.get("/oauth2/jwks").json
    assert jwks is not None
    assert [key["kid"] for key in jwks["keys"]] == [embedded.keystore.current_key().kid]
    assert all("d" not in key for key in jwks["keys"])


def test_client_credentials_token_validates_and_carries_the_clients_attributes(embedded: Embedded) -> None:
    response = client_credentials(embedded.client, "messages:send instances:read admin")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body is not None
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "messages:send instances:read"
    assert response.headers["Cache-Control"] == "no-store"
    header = jws.extract_compact(body["access_token"].encode()).headers()
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    principal = embedded.validator.validate(body["access_token"])
    assert principal.subject == "client:integration-system"
    assert principal.client_id == "integration-system"
    assert principal.scopes == {"messages:send", "instances:read"}
    assert principal.units == {"MIT-North", "Custody-Central"}
    assert principal.clearance == "OFFICIAL-SENSITIVE"
    assert principal.rank is None


def test_client_credentials_without_scope_get_all_the_clients_scopes(embedded: Embedded) -> None:
    body = client_credentials(embedded.client).json
    assert body is not None
    assert set(body["scope"].split()) == {"messages:send", "instances:read", "instances:write"}


def test_client_credentials_token_is_refused_where_its_scope_is_missing(embedded: Embedded) -> None:
    body = client_credentials(embedded.client, "messages:send").json
    assert body is not None
    response = embedded.client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert response.status_code == 403
    assert response.json == {"code": "scope-missing"}


def test_a_wrong_client_secret_is_refused(embedded: Embedded) -> None:
    response = embedded.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=basic("integration-system", "guess"),
    )
    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"] == "invalid_client"


def test_a_public_client_cannot_use_client_credentials(embedded: Embedded) -> None:
    response = embedded.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "opsflow-cli"}
    )
    assert response.status_code in {400, 401}
    assert response.json is not None
    assert response.json["error"] in {"invalid_client", "unauthorized_client"}


def test_authorization_code_with_pkce_through_the_login_form(embedded: Embedded) -> None:
    verifier, challenge = pkce_pair()
    page = embedded.client.get(authorize_url(challenge))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "opsflow command line" in text
    assert "<script" not in text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    fields = form_fields(text)
    assert fields["code_challenge"] == challenge
    assert fields["redirect_uri"] == CALLBACK
    assert len(fields["nonce"]) >= 32

    signed_in = embedded.client.post(
        "/oauth2/authorize", data={**fields, "username": "supt.okafor", "password": DEMO_PASSWORD}
    )
    code = code_from(signed_in)
    response = exchange(embedded.client, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body is not None
    assert body["scope"] == "tasks:read approvals:decide"
    assert "refresh_token" not in body

    principal = embedded.validator.validate(body["access_token"])
    assert principal.subject == "supt.okafor"
    assert principal.name == "Supt Ngozi Okafor"
    assert principal.roles == {"authorising_officer"}
    assert principal.rank == "superintendent"
    assert principal.clearance == "SECRET"
    assert principal.client_id == "opsflow-cli"
    me = embedded.client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json == {"subject": "supt.okafor", "roles": ["authorising_officer"], "rank": "superintendent"}

    replay = exchange(embedded.client, code, verifier)
    assert replay.status_code == 400
    assert replay.json is not None
    assert replay.json["error"] == "invalid_grant"
    with embedded.sessions() as session:
        assert session.scalars(sa.select(AuthCode)).all() == []


def test_request_parameters_are_escaped_on_the_login_page(embedded: Embedded) -> None:
    _verifier, challenge = pkce_pair()
    hostile = '"><script>alert(1)</script>'
    page = embedded.client.get(authorize_url(challenge, state=hostile))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<script>" not in text
    assert form_fields(text)["state"] == hostile


def test_a_user_gets_no_scope_beyond_their_own(embedded: Embedded) -> None:
    verifier, challenge = pkce_pair()
    page = embedded.client.get(authorize_url(challenge, scope="tasks:read admin"))
    fields = form_fields(page.get_data(as_text=True))
    signed_in = embedded.client.post(
        "/oauth2/authorize", data={**fields, "username": "dc.jones", "password": DEMO_PASSWORD}
    )
    body = exchange(embedded.client, code_from(signed_in), verifier).json
    assert body is not None
    assert body["scope"] == "tasks:read"
    assert embedded.validator.validate(body["access_token"]).scopes == {"tasks:read"}


@pytest.mark.parametrize(
    ("username", "password"),
    [("supt.okafor", "opsflow-dem0"), ("nobody.here", DEMO_PASSWORD), ("supt.okafor", "")],
)
def test_a_wrong_password_or_unknown_user_is_refused(
    embedded: Embedded, username: str, password: str
) -> None:
    _verifier, challenge = pkce_pair()
    response = sign_in(embedded.client, challenge, username, password)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Wrong username or password." in response.get_data(as_text=True)
    with embedded.sessions() as session:
        assert session.scalars(sa.select(AuthCode)).all() == []


def test_an_inactive_user_cannot_sign_in(embedded: Embedded) -> None:
    with embedded.sessions.begin() as session:
        user = session.scalars(sa.select(AuthUser).where(AuthUser.username == "dc.ali")).one()
        user.active = False
    _verifier, challenge = pkce_pair()
    response = sign_in(embedded.client, challenge, "dc.ali", DEMO_PASSWORD)
    assert "Wrong username or password." in response.get_data(as_text=True)


def test_a_pkce_verifier_mismatch_is_refused(embedded: Embedded) -> None:
    _verifier, challenge = pkce_pair()
    other_verifier, _other = pkce_pair()
    code = code_from(sign_in(embedded.client, challenge, "dc.jones", DEMO_PASSWORD))
    response = exchange(embedded.client, code, other_verifier)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_grant"
    assert "access_token" not in response.json


def test_a_missing_verifier_is_refused(embedded: Embedded) -> None:
    _verifier, challenge = pkce_pair()
    code = code_from(sign_in(embedded.client, challenge, "dc.jones", DEMO_PASSWORD))
    response = embedded.client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": "opsflow-cli",
        },
    )
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        pytest.param(authorize_url(None), "invalid_request", id="no-challenge"),
        pytest.param(
            authorize_url(None, code_challenge="x" * 43, code_challenge_method="plain"),
            "invalid_request",
            id="plain-method",
        ),
    ],
)
def test_authorization_requests_without_s256_pkce_are_sent_back_with_an_error(
    embedded: Embedded, url: str, error: str
) -> None:
    response = embedded.client.get(url)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == [error]
    assert query["state"] == ["st-123"]


def test_an_unregistered_redirect_uri_is_never_redirected_to(embedded: Embedded) -> None:
    _verifier, challenge = pkce_pair()
    response = embedded.client.get(authorize_url(challenge, redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Sign-in problem" in response.get_data(as_text=True)


def test_the_login_form_needs_its_nonce(embedded: Embedded) -> None:
    _verifier, challenge = pkce_pair()
    page = embedded.client.get(authorize_url(challenge))
    fields = form_fields(page.get_data(as_text=True))
    fields["nonce"] = secrets.token_urlsafe(32)
    response = embedded.client.post(
        "/oauth2/authorize", data={**fields, "username": "dc.jones", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "expired" in response.get_data(as_text=True)


def test_cancel_sends_access_denied_back_to_the_client(embedded: Embedded) -> None:
    _verifier, challenge = pkce_pair()
    fields = form_fields(embedded.client.get(authorize_url(challenge)).get_data(as_text=True))
    response = embedded.client.post("/oauth2/authorize", data={**fields, "action": "cancel"})
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert "code" not in query


def test_an_expired_code_is_refused(embedded: Embedded) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(sign_in(embedded.client, challenge, "dc.jones", DEMO_PASSWORD))
    embedded.clock.moment += timedelta(minutes=6)
    response = exchange(embedded.client, code, verifier)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_grant"


def test_key_rotation_keeps_tokens_signed_by_the_old_key_valid(embedded: Embedded) -> None:
    old_body = client_credentials(embedded.client, "instances:read").json
    assert old_body is not None
    old_kid = jws.extract_compact(old_body["access_token"].encode()).headers()["kid"]

    embedded.clock.moment += timedelta(minutes=5)
    rotated = embedded.keystore.rotate()
    new_body = client_credentials(embedded.client, "instances:read").json
    assert new_body is not None
    assert jws.extract_compact(new_body["access_token"].encode()).headers()["kid"] == rotated.kid != old_kid

    published = embedded.client.get("/oauth2/jwks").json
    assert published is not None
    assert {key["kid"] for key in published["keys"]} == {old_kid, rotated.kid}
    for body in (old_body, new_body):
        assert embedded.validator.validate(body["access_token"]).subject == "client:integration-system"


def test_the_rotate_keys_command_publishes_a_new_key_next_to_the_old(embedded: Embedded) -> None:
    old_kid = embedded.keystore.current_key().kid
    result = embedded.app.test_cli_runner().invoke(rotate_keys_command, [])
    assert result.exit_code == 0, result.output
    new_kid = embedded.keystore.current_key().kid
    assert new_kid != old_kid
    assert new_kid in result.output
    published = embedded.client.get("/oauth2/jwks").json
    assert published is not None
    assert {key["kid"] for key in published["keys"]} == {old_kid, new_kid}


def test_the_token_command_prints_a_token_for_a_user(embedded: Embedded) -> None:
    runner = embedded.app.test_cli_runner()
    result = runner.invoke(token_command, ["--user", "ops.admin", "--scope", "admin audit:read"])
    assert result.exit_code == 0, result.output
    principal = embedded.validator.validate(result.output.strip())
    assert principal.subject == "ops.admin"
    assert principal.scopes == {"admin", "audit:read"}
    assert principal.roles == {"operator"}

    refused = runner.invoke(token_command, ["--user", "dc.jones", "--scope", "admin"])
    assert refused.exit_code == 1
    assert "may not have the scope(s) admin" in refused.output
    unknown = runner.invoke(token_command, ["--user", "ghost"])
    assert unknown.exit_code == 1
    assert "no active user 'ghost'" in unknown.output


def test_seed_demo_is_idempotent_and_covers_every_lane_role(embedded: Embedded) -> None:
    runner = embedded.app.test_cli_runner()
    result = runner.invoke(seed_demo_command, [])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "users: 0 created, 0 updated; clients: 0 created, 0 updated"
    with embedded.sessions() as session:
        users = session.scalars(sa.select(AuthUser)).all()
        clients = {client.client_id: client for client in session.scalars(sa.select(AuthClient))}
    roles = {role for user in users for role in user.roles}
    assert roles == LANE_ROLES
    assert clients["opsflow-cli"].secret_hash is None
    assert clients["opsflow-cli"].redirect_uris == [CALLBACK]
    assert clients["integration-system"].grant_types == ["client_credentials"]
    assert set(clients["integration-system"].scopes) == {"messages:send", "instances:read", "instances:write"}
    operator = next(user for user in users if "operator" in user.roles)
    assert "admin" in operator.scopes
    assert all("admin" not in user.scopes for user in users if user is not operator)


def test_seed_updates_changed_entries_and_hashes_plain_passwords(embedded: Embedded, tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    user = {
        "username": "dc.jones",
        "name": "DC Asha Jones-Patel",
        "password": "a-new-password",
        "roles": ["investigator"],
        "units": ["MIT-North"],
        "rank": "DC",
        "clearance": "official_sensitive",
        "scopes": ["tasks:read"],
    }
    seed.write_text(json.dumps({"users": [user], "clients": []}))
    with embedded.sessions.begin() as session:
        first = load_seed(session, seed)
    with embedded.sessions.begin() as session:
        second = load_seed(session, seed)
        row = session.scalars(sa.select(AuthUser).where(AuthUser.username == "dc.jones")).one()
        assert row.rank == "constable"
        assert row.clearance == "OFFICIAL-SENSITIVE"
        assert row.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert (first.users_created, first.users_updated) == (0, 1)
    assert (second.users_created, second.users_updated) == (0, 0)
    _verifier, challenge = pkce_pair()
    assert sign_in(embedded.client, challenge, "dc.jones", "a-new-password").status_code == 302
