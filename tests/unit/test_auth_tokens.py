"""Access token validation: every way a token can be wrong maps to its own error code."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from auth_fixtures import (
    EMBEDDED_ISSUER,
    NOW,
    StaticKeys,
    access_claims,
    b64,
    b64_json,
    ec_key,
    embedded_settings,
    fixed_now,
    rsa_key,
    sign,
)
from flask import Flask

from auth.errors import AuthenticationError, AuthorizationError
from auth.flask import AuthExtension, current_principal, require_scope
from auth.settings import AuthSettings
from auth.tokens import TokenValidator, claim_at

SIGNING = rsa_key("signing-1")
OTHER = rsa_key("other-1")


def validator(settings: AuthSettings | None = None) -> TokenValidator:
    return TokenValidator(StaticKeys(SIGNING), settings or embedded_settings(), now=fixed_now)


def _tampered() -> str:
    header, _payload, signature = sign(access_claims(), SIGNING).split(".")
    forged = b64_json(access_claims(roles=["authorising_officer"], rank="chief_constable"))
    return f"{header}.{forged}.{signature}"


def _unsigned() -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": "signing-1"}
    return f"{b64_json(header)}.{b64_json(access_claims())}."


def _hs256_with_public_key() -> str:
    """The classic key-confusion forgery: HMAC keyed with the RSA public key, which anyone can fetch."""
    public_pem = SIGNING.as_pem(private=False)
    signing_input = (
        f"{b64_json({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'signing-1'})}.{b64_json(access_claims())}"
    )
    mac = hmac.new(public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


NEGATIVE_MATRIX: list[Any] = [
    pytest.param(
        lambda: sign(access_claims(exp=int(NOW.timestamp()) - 3600), SIGNING), "token-expired", id="expired"
    ),
    pytest.param(
        lambda: sign(access_claims(nbf=int(NOW.timestamp()) + 3600), SIGNING),
        "token-not-yet-valid",
        id="not-yet-valid",
    ),
    pytest.param(
        lambda: sign(access_claims(iat=int(NOW.timestamp()) + 3600), SIGNING),
        "token-not-yet-valid",
        id="iat-future",
    ),
    pytest.param(
        lambda: sign(access_claims(iss="https://idp.example.org"), SIGNING),
        "token-wrong-issuer",
        id="wrong-issuer",
    ),
    pytest.param(
        lambda: sign(access_claims(aud="payroll"), SIGNING), "token-wrong-audience", id="wrong-audience"
    ),
    pytest.param(lambda: sign(access_claims(aud=None), SIGNING), "token-wrong-audience", id="no-audience"),
    pytest.param(lambda: sign(access_claims(), OTHER), "token-unknown-key", id="unknown-key"),
    pytest.param(_tampered, "token-bad-signature", id="tampered-payload"),
    pytest.param(
        lambda: sign(access_claims(), rsa_key("impostor"), kid="signing-1"),
        "token-bad-signature",
        id="wrong-key-same-kid",
    ),
    pytest.param(_unsigned, "token-algorithm-refused", id="alg-none"),
    pytest.param(_hs256_with_public_key, "token-algorithm-refused", id="hs256-with-public-key"),
    pytest.param(
        lambda: sign(access_claims(), SIGNING, alg="RS512"), "token-algorithm-refused", id="alg-not-allowed"
    ),
    pytest.param(lambda: "not-a-jwt", "token-malformed", id="garbage"),
    pytest.param(lambda: "a.b.c", "token-malformed", id="bad-segments"),
    pytest.param(lambda: sign(access_claims(), SIGNING, typ="JWT"), "token-malformed", id="not-at+jwt"),
    pytest.param(lambda: sign(access_claims(sub=None), SIGNING), "token-malformed", id="no-sub"),
    pytest.param(lambda: sign(access_claims(exp=None), SIGNING), "token-malformed", id="no-exp"),
    pytest.param(lambda: sign(access_claims(jti=None), SIGNING), "token-malformed", id="no-jti"),
    pytest.param(
        lambda: sign(access_claims(), SIGNING, jku="https://evil.example/jwks"),
        "token-malformed",
        id="jku-header",
    ),
    pytest.param(lambda: "", "token-missing", id="empty"),
]


@pytest.mark.parametrize(("make_token", "code"), NEGATIVE_MATRIX)
def test_bad_tokens_are_refused_with_their_own_code(make_token: Any, code: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        validator().validate(make_token())
    assert caught.value.code == code
    assert caught.value.detail


def test_an_ec_key_never_verifies_an_rsa_algorithm() -> None:
    key = ec_key("ec-1")
    token = sign(access_claims(), rsa_key("ec-1"))  # RS256 under the kid of an EC key
    with pytest.raises(AuthenticationError) as caught:
        TokenValidator(StaticKeys(key), embedded_settings(), now=fixed_now).validate(token)
    assert caught.value.code == "token-algorithm-refused"


def test_es256_tokens_verify_when_allowed() -> None:
    key = ec_key("ec-2")
    principal = TokenValidator(StaticKeys(key), embedded_settings(), now=fixed_now).validate(
        sign(access_claims(), key, alg="ES256")
    )
    assert principal.subject == "dc.patel"


def test_expiry_has_a_small_leeway() -> None:
    token = sign(access_claims(exp=int(NOW.timestamp()) - 20), SIGNING)
    assert validator().validate(token).subject == "dc.patel"
    late = sign(access_claims(exp=int(NOW.timestamp()) - 31), SIGNING)
    with pytest.raises(AuthenticationError, match="expired"):
        validator().validate(late)


def test_a_valid_token_becomes_a_principal() -> None:
    principal = validator().validate(sign(access_claims(rank="Detective Chief Inspector"), SIGNING))
    assert principal.subject == "dc.patel"
    assert principal.name == "DC Asha Patel"
    assert principal.roles == {"applicant", "investigator"}
    assert principal.units == {"MIT-North"}
    assert principal.rank == "chief_inspector"
    assert principal.clearance == "SECRET"
    assert principal.scopes == {"tasks:read", "tasks:write"}
    assert principal.client_id == "opsflow-cli"


def test_unknown_rank_and_clearance_grant_less_not_more() -> None:
    principal = validator().validate(sign(access_claims(rank="admiral", clearance="COSMIC"), SIGNING))
    assert principal.rank is None
    assert principal.clearance == "OFFICIAL"


def test_keycloak_claims_map_through_dotted_paths() -> None:
    issuer = "https://sso.police.example/realms/police"
    settings = AuthSettings(
        issuer=issuer,
        claim_roles="realm_access.roles",
        claim_units="opsflow.units",
        claim_rank="opsflow.rank",
        claim_clearance="opsflow.clearance",
    )
    claims = {
        "iss": issuer,
        "aud": ["opsflow", "account"],
        "sub": "2f1c0e4a-5b7d-4e7e-9d0b-1d8f5e8d9c11",
        "azp": "opsflow-web",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "scope": "openid tasks:read approvals:decide",
        "preferred_username": "supt.okafor",
        "realm_access": {"roles": ["authorising_officer", "offline_access"]},
        "opsflow": {"units": ["MIT-North"], "rank": "Superintendent", "clearance": "secret"},
    }
    principal = TokenValidator(StaticKeys(SIGNING), settings, now=fixed_now).validate(
        sign(claims, SIGNING, typ="JWT")
    )
    assert principal.name == "supt.okafor"
    assert principal.roles == {"authorising_officer", "offline_access"}
    assert principal.units == {"MIT-North"}
    assert principal.rank == "superintendent"
    assert principal.clearance == "SECRET"
    assert principal.scopes == {"openid", "tasks:read", "approvals:decide"}
    assert principal.client_id == "opsflow-web"


def test_entra_claims_map_app_roles_scp_and_extension_attributes() -> None:
    issuer = "https://login.microsoftonline.com/0b6f3c1e-0000-4000-8000-000000000001/v2.0"
    settings = AuthSettings(
        issuer=issuer,
        audience="api://opsflow",
        claim_units="extn.opsflowUnit",
        claim_rank="extn.opsflowRank",
        claim_clearance="extn.opsflowClearance",
    )
    claims = {
        "iss": issuer,
        "aud": "api://opsflow",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "azp": "8f2e0c55-6d3f-4d0c-9f1e-5a7b9c1d2e3f",
        "iat": int(NOW.timestamp()),
        "nbf": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "name": "Ngozi Okafor",
        "scp": "tasks:read tasks:write",
        "roles": ["authorising_officer"],
        "extn.opsflowUnit": "MIT-North",
        "extn.opsflowRank": "superintendent",
        "extn.opsflowClearance": "OFFICIAL-SENSITIVE",
    }
    principal = TokenValidator(StaticKeys(SIGNING), settings, now=fixed_now).validate(
        sign(claims, SIGNING, typ="JWT")
    )
    assert principal.scopes == {"tasks:read", "tasks:write"}
    assert principal.roles == {"authorising_officer"}
    assert principal.units == {"MIT-North"}
    assert principal.rank == "superintendent"
    assert principal.clearance == "OFFICIAL-SENSITIVE"
    assert principal.client_id == "8f2e0c55-6d3f-4d0c-9f1e-5a7b9c1d2e3f"


def test_entra_app_only_tokens_take_scopes_from_application_roles() -> None:
    issuer = "https://login.microsoftonline.com/0b6f3c1e-0000-4000-8000-000000000001/v2.0"
    settings = AuthSettings(issuer=issuer, audience="5d1e7a2c-opsflow-api")
    claims = {
        "iss": issuer,
        "aud": "5d1e7a2c-opsflow-api",
        "sub": "b3c1d2e4-service-principal",
        "azp": "integration-app",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "roles": ["messages:send", "instances:read", "custody_officer"],
        "units": "Custody-Central, MIT-North",
    }
    principal = TokenValidator(StaticKeys(SIGNING), settings, now=fixed_now).validate(
        sign(claims, SIGNING, typ="JWT")
    )
    assert principal.scopes == {"messages:send", "instances:read"}
    assert principal.roles == {"messages:send", "instances:read", "custody_officer"}
    assert principal.units == {"Custody-Central", "MIT-North"}


def test_an_empty_scope_claim_grants_no_scope_even_with_scope_like_roles() -> None:
    token = sign(access_claims(scope="", roles=["admin"]), SIGNING)
    assert validator().validate(token).scopes == frozenset()


def test_claim_at_prefers_a_literal_dotted_name_then_walks_the_path() -> None:
    claims = {"a.b": "literal", "a": {"b": "nested"}, "x": {"y": {"z": 1}}}
    assert claim_at(claims, "a.b") == "literal"
    assert claim_at(claims, "x.y.z") == 1
    assert claim_at(claims, "x.q") is None


def _app() -> Flask:
    app = Flask(__name__)
    AuthExtension(validator(), embedded_settings()).init_app(app)

    @app.get("/tasks")
    @require_scope("tasks:read")
    def tasks() -> dict[str, str]:
        return {"subject": current_principal().subject}

    @app.post("/approvals")
    @require_scope("approvals:decide")
    def approvals() -> dict[str, str]:
        return {"subject": current_principal().subject}

    @app.errorhandler(AuthenticationError)
    @app.errorhandler(AuthorizationError)
    def problem(error: AuthenticationError | AuthorizationError) -> tuple[dict[str, str], int]:
        return {"code": error.code}, 401 if isinstance(error, AuthenticationError) else 403

    return app


def test_require_scope_admits_a_token_with_the_scope() -> None:
    client = _app().test_client()
    response = client.get("/tasks", headers={"Authorization": f"Bearer {sign(access_claims(), SIGNING)}"})
    assert response.status_code == 200
    assert response.json == {"subject": "dc.patel"}


def test_missing_scope_is_refused_with_scope_missing() -> None:
    client = _app().test_client()
    response = client.post(
        "/approvals", headers={"Authorization": f"Bearer {sign(access_claims(), SIGNING)}"}
    )
    assert response.status_code == 403
    assert response.json == {"code": "scope-missing"}


def test_require_scope_raises_the_typed_error_for_a_missing_scope() -> None:
    app = _app()
    token = sign(access_claims(), SIGNING)
    view = app.view_functions["approvals"]
    headers = {"Authorization": f"Bearer {token}"}
    with (
        app.test_request_context("/approvals", method="POST", headers=headers),
        pytest.raises(AuthorizationError) as caught,
    ):
        view()
    assert caught.value.code == "scope-missing"
    assert caught.value.scopes == ("approvals:decide",)


@pytest.mark.parametrize(
    ("headers", "query", "code"),
    [
        pytest.param({}, "", "token-missing", id="no-header"),
        pytest.param({}, "?access_token=abc", "token-missing", id="token-in-query"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, "", "token-malformed", id="basic-scheme"),
        pytest.param({"Authorization": "Bearer"}, "", "token-malformed", id="bearer-without-token"),
    ],
)
def test_the_token_is_only_taken_from_the_authorization_header(
    headers: dict[str, str], query: str, code: str
) -> None:
    response = _app().test_client().get(f"/tasks{query}", headers=headers)
    assert response.status_code == 401
    assert response.json == {"code": code}


def test_the_embedded_issuer_is_the_public_url() -> None:
    assert embedded_settings().expected_issuer == EMBEDDED_ISSUER
