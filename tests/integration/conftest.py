"""Fixtures of the HTTP API tests: the app on each backend and a client that signs in with real tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import Api
from flask import Flask

from api.app import create_app
from auth.keys import KeyStore
from auth.settings import AuthSettings
from engine.container import Services
from engine.settings import Settings


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing key for the whole run (2048 bits: generating a 3072-bit key per test is slow)."""
    directory = tmp_path_factory.mktemp("keys")
    KeyStore(directory, token_lifetime=3600, key_size=2048)
    return directory


@pytest.fixture
def auth_settings(key_dir: Path) -> AuthSettings:
    return AuthSettings(key_dir=key_dir)


@pytest.fixture
def app(settings: Settings, services: Services, auth_settings: AuthSettings) -> Flask:
    return create_app(settings, services=services, auth_settings=auth_settings, TESTING=True)


@pytest.fixture
def api(app: Flask, auth_settings: AuthSettings) -> Api:
    return Api(app, auth_settings)
