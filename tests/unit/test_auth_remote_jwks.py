"""Tokens from an external OpenID provider: discovery, cached JWKS, rotation at the provider, refetch bound.

The provider is a real HTTP server on 127.0.0.1 (werkzeug in a thread), so requests, timeouts and JSON
parsing run exactly as in production.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from auth_fixtures import FakeProvider, access_claims, fixed_now, rsa_key, running_provider, sign

from auth.errors import AuthenticationError, KeySetUnavailableError
from auth.jwks import RemoteJWKS
from auth.settings import AuthSettings
from auth.tokens import TokenValidator

FIRST = rsa_key("idp-2026-01")
SECOND = rsa_key("idp-2026-04")


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.value

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.value += seconds


def remote_validator(provider: FakeProvider, ticker: Ticker, **options: Any) -> TokenValidator:
    settings = AuthSettings(issuer=provider.issuer, jwks_refetch_min_interval=30)
    jwks = RemoteJWKS(provider.issuer, min_refetch_interval=30, monotonic=ticker, **options)
    return TokenValidator(jwks, settings, now=fixed_now)


def provider_token(provider: FakeProvider, key: Any, **claims: Any) -> str:
    return sign(access_claims(iss=provider.issuer, client_id=None, jti=None, **claims), key, typ="JWT")


def test_keys_are_discovered_once_and_cached() -> None:
    with running_provider(FIRST) as provider:
        validator = remote_validator(provider, Ticker())
        token = provider_token(provider, FIRST)
        assert validator.validate(token).subject == "dc.patel"
        assert validator.validate(token).roles == {"applicant", "investigator"}
        assert provider.hits == {"discovery": 1, "jwks": 1}


def test_from_settings_uses_the_issuers_discovery_document() -> None:
    with running_provider(FIRST) as provider:
        settings = AuthSettings.from_env({"OPSFLOW_OIDC_ISSUER": provider.issuer})
        validator = TokenValidator.from_settings(settings, now=fixed_now)
        assert validator.validate(provider_token(provider, FIRST)).subject == "dc.patel"
        assert provider.hits["discovery"] == 1


def test_a_key_rotated_in_at_the_provider_is_fetched_on_first_sight() -> None:
    ticker = Ticker()
    with running_provider(FIRST) as provider:
        validator = remote_validator(provider, ticker)
        validator.validate(provider_token(provider, FIRST))
        provider.keys = [SECOND, FIRST]
        ticker.advance(31)
        principal = validator.validate(provider_token(provider, SECOND, sub="ds.hughes"))
        assert principal.subject == "ds.hughes"
        assert provider.hits == {"discovery": 1, "jwks": 2}
        assert validator.validate(provider_token(provider, FIRST)).subject == "dc.patel"
        assert provider.hits["jwks"] == 2


def test_unknown_keys_refetch_at_most_once_per_interval() -> None:
    ticker = Ticker()
    forged = rsa_key("forged")
    with running_provider(FIRST) as provider:
        validator = remote_validator(provider, ticker)
        validator.validate(provider_token(provider, FIRST))
        ticker.advance(31)
        for _ in range(5):
            with pytest.raises(AuthenticationError) as caught:
                validator.validate(provider_token(provider, forged))
            assert caught.value.code == "token-unknown-key"
        assert provider.hits["jwks"] == 2
        ticker.advance(10)
        provider.keys = [SECOND, FIRST]
        with pytest.raises(AuthenticationError):
            validator.validate(provider_token(provider, SECOND))
        assert provider.hits["jwks"] == 2, "a genuinely new key waits for the interval too"
        ticker.advance(21)
        assert validator.validate(provider_token(provider, SECOND)).subject == "dc.patel"
        assert provider.hits["jwks"] == 3


def test_concurrent_requests_with_a_new_key_trigger_one_fetch() -> None:
    ticker = Ticker()
    with running_provider(FIRST) as provider:
        validator = remote_validator(provider, ticker)
        validator.validate(provider_token(provider, FIRST))
        provider.keys = [SECOND]
        ticker.advance(31)
        token = provider_token(provider, SECOND)
        with ThreadPoolExecutor(max_workers=16) as pool:
            subjects = list(pool.map(lambda _: validator.validate(token).subject, range(32)))
        assert subjects == ["dc.patel"] * 32
        assert provider.hits["jwks"] == 2


def test_keys_withdrawn_by_the_provider_stop_working_once_the_cache_ages() -> None:
    ticker = Ticker()
    with running_provider(FIRST, SECOND) as provider:
        validator = remote_validator(provider, ticker, max_age=600)
        validator.validate(provider_token(provider, FIRST))
        provider.keys = [SECOND]
        ticker.advance(601)
        with pytest.raises(AuthenticationError) as caught:
            validator.validate(provider_token(provider, FIRST))
        assert caught.value.code == "token-unknown-key"


def test_an_unreachable_provider_is_a_service_problem_not_a_bad_token() -> None:
    ticker = Ticker()
    with running_provider(FIRST) as provider:
        provider.failing = True
        validator = remote_validator(provider, ticker)
        with pytest.raises(KeySetUnavailableError):
            validator.validate(provider_token(provider, FIRST))
        with pytest.raises(KeySetUnavailableError):
            validator.validate(provider_token(provider, FIRST))
        assert provider.hits == {"discovery": 0, "jwks": 0}
        provider.failing = False
        ticker.advance(31)
        assert validator.validate(provider_token(provider, FIRST)).subject == "dc.patel"


def test_cached_keys_keep_working_while_the_provider_is_down() -> None:
    ticker = Ticker()
    with running_provider(FIRST) as provider:
        validator = remote_validator(provider, ticker, max_age=600)
        validator.validate(provider_token(provider, FIRST))
        provider.failing = True
        ticker.advance(601)
        assert validator.validate(provider_token(provider, FIRST)).subject == "dc.patel"


def test_a_discovery_document_for_another_issuer_is_refused() -> None:
    with running_provider(FIRST) as provider:
        jwks = RemoteJWKS(provider.issuer + "-other", min_refetch_interval=0)
        with pytest.raises(KeySetUnavailableError):
            jwks.refresh()


def test_a_closed_port_fails_fast() -> None:
    jwks = RemoteJWKS("http://127.0.0.1:9/realms/none", timeout=(0.5, 0.5))
    with pytest.raises(KeySetUnavailableError, match="cannot fetch"):
        jwks.find_key("any")
