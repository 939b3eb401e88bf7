"""Auth settings from the environment: defaults, claim mapping, and refusals that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth.errors import AuthConfigError
from auth.settings import AuthSettings


def test_defaults_select_embedded_mode() -> None:
    settings = AuthSettings.from_env({})
    assert settings.embedded is True
    assert settings.expected_issuer == "http://127.0.0.1:8000"
    assert settings.audience == "opsflow"
    assert settings.algorithms == ("RS256", "PS256", "ES256")
    assert settings.cross_unit_roles == {
        "central_record_keeper",
        "review_officer",
        "auditor",
        "process_designer",
        "operator",
    }
    assert settings.key_dir == Path("var/keys")
    assert settings.token_lifetime == 3600
    assert settings.jwks_refetch_min_interval == 30.0


def test_an_external_issuer_with_keycloak_claim_mapping() -> None:
    settings = AuthSettings.from_env(
        {
            "OPSFLOW_OIDC_ISSUER": "https://sso.police.example/realms/police",
            "OPSFLOW_OIDC_AUDIENCE": "opsflow-api",
            "OPSFLOW_CLAIM_ROLES": "realm_access.roles",
            "OPSFLOW_AUTH_ALGORITHMS": "RS256, PS256",
            "OPSFLOW_CROSS_UNIT_ROLES": "review_officer, gatekeeper",
            "OPSFLOW_JWKS_REFETCH_MIN_INTERVAL": "5",
        }
    )
    assert settings.embedded is False
    assert settings.expected_issuer == "https://sso.police.example/realms/police"
    assert settings.audience == "opsflow-api"
    assert settings.claim_roles == "realm_access.roles"
    assert settings.algorithms == ("RS256", "PS256")
    assert settings.cross_unit_roles == {"review_officer", "gatekeeper"}
    assert settings.jwks_refetch_min_interval == 5.0


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        pytest.param({"OPSFLOW_AUTH_ALGORITHMS": "RS256,none"}, "OPSFLOW_AUTH_ALGORITHMS", id="none"),
        pytest.param({"OPSFLOW_AUTH_ALGORITHMS": "HS256"}, "OPSFLOW_AUTH_ALGORITHMS", id="hs256"),
        pytest.param({"OPSFLOW_AUTH_ALGORITHMS": "RS256,XX1"}, "OPSFLOW_AUTH_ALGORITHMS", id="unknown-alg"),
        pytest.param({"OPSFLOW_AUTH_ALGORITHMS": " , "}, "OPSFLOW_AUTH_ALGORITHMS", id="empty-list"),
        pytest.param({"OPSFLOW_TOKEN_LIFETIME": "soon"}, "OPSFLOW_TOKEN_LIFETIME", id="lifetime-text"),
        pytest.param({"OPSFLOW_TOKEN_LIFETIME": "10"}, "OPSFLOW_TOKEN_LIFETIME", id="lifetime-short"),
        pytest.param({"OPSFLOW_TOKEN_LIFETIME": "1e9"}, "OPSFLOW_TOKEN_LIFETIME", id="lifetime-long"),
        pytest.param(
            {"OPSFLOW_JWKS_REFETCH_MIN_INTERVAL": "-1"}, "OPSFLOW_JWKS_REFETCH_MIN_INTERVAL", id="refetch"
        ),
        pytest.param({"OPSFLOW_OIDC_ISSUER": "sso.example"}, "OPSFLOW_OIDC_ISSUER", id="issuer-not-url"),
        pytest.param({"OPSFLOW_PUBLIC_URL": "ftp://host"}, "OPSFLOW_PUBLIC_URL", id="public-url"),
        pytest.param(
            {"OPSFLOW_OIDC_ISSUER": "https://sso.example", "OPSFLOW_CLAIM_ROLES": "realm access"},
            "OPSFLOW_CLAIM_ROLES",
            id="claim-path",
        ),
        pytest.param(
            {"OPSFLOW_CLAIM_ROLES": "realm_access.roles"}, "OPSFLOW_CLAIM_ROLES", id="claims-in-embedded"
        ),
    ],
)
def test_bad_values_are_refused_naming_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(AuthConfigError, match=variable):
        AuthSettings.from_env(environ)


def test_direct_construction_refuses_symmetric_algorithms_too() -> None:
    with pytest.raises(AuthConfigError, match="HS256"):
        AuthSettings(algorithms=("RS256", "HS256"))
