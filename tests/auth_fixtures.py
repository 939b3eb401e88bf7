"""Helpers for the auth tests: keys, signed tokens, principals and a local OpenID provider over HTTP."""

from __future__ import annotations

import base64
import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from auth.errors import AuthenticationError
from auth.jwks import index_public_keys, select_key
from auth.principal import Principal
from auth.settings import AuthSettings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
EMBEDDED_ISSUER = "http://127.0.0.1:8000"


def fixed_now() -> datetime:
    return NOW


@functools.cache
def rsa_key(kid: str) -> RSAKey:
    """A 2048-bit RSA key per ``kid``, generated once per test run."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"}, private=True)


@functools.cache
def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"}, private=True)


def jwks_of(*keys: Key) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


class StaticKeys:
    """A ``KeySource`` over a fixed set of public keys."""

    def __init__(self, *keys: Key) -> None:
        self.index = index_public_keys(jwks_of(*keys))

    def find_key(self, kid: str | None) -> Key:
        key = select_key(self.index, kid)
        if key is None:
            raise AuthenticationError("token-unknown-key", f"unknown key {kid!r}")
        return key


def access_claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid embedded-mode token for an investigator, issued at ``NOW``."""
    issued = int(NOW.timestamp())
    claims: dict[str, Any] = {
        "iss": EMBEDDED_ISSUER,
        "aud": "opsflow",
        "sub": "dc.patel",
        "client_id": "opsflow-cli",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 3600,
        "jti": "0f9c2a",
        "scope": "tasks:read tasks:write",
        "name": "DC Asha Patel",
        "roles": ["applicant", "investigator"],
        "units": ["MIT-North"],
        "rank": "constable",
        "clearance": "SECRET",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(
    claims: dict[str, Any], key: Key, *, alg: str = "RS256", typ: str | None = "at+jwt", **header: Any
) -> str:
    full_header = {"alg": alg, "kid": key.kid, **header}
    if typ is not None:
        full_header["typ"] = typ
    return jwt.encode(full_header, claims, key, algorithms=[alg], default_type=None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode("utf-8"))


def principal(**overrides: Any) -> Principal:
    values: dict[str, Any] = {
        "subject": "insp.walsh",
        "name": "Insp Ciara Walsh",
        "roles": frozenset({"authorising_officer"}),
        "units": frozenset({"MIT-North"}),
        "rank": "inspector",
        "clearance": "SECRET",
        "scopes": frozenset({"tasks:read", "tasks:write", "approvals:decide"}),
        "client_id": "opsflow-cli",
    }
    values.update(overrides)
    return Principal(**values)


def embedded_settings(**overrides: Any) -> AuthSettings:
    return AuthSettings(public_url=EMBEDDED_ISSUER, **overrides)


@dataclass
class FakeProvider:
    """An OpenID provider on 127.0.0.1 serving a discovery document and a JWKS that tests can change."""

    keys: list[Key]
    issuer: str = ""
    hits: dict[str, int] = field(default_factory=lambda: {"discovery": 0, "jwks": 0})
    failing: bool = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if self.failing:
            response = Response("unavailable", status=503)
        elif request.path == "/realms/police/.well-known/openid-configuration":
            self.hits["discovery"] += 1
            document = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/protocol/openid-connect/certs"}
            response = Response(json.dumps(document), mimetype="application/json")
        elif request.path == "/realms/police/protocol/openid-connect/certs":
            self.hits["jwks"] += 1
            response = Response(json.dumps(jwks_of(*self.keys)), mimetype="application/json")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)


@contextmanager
def running_provider(*keys: Key) -> Iterator[FakeProvider]:
    """Serve a ``FakeProvider`` from a real HTTP server in a thread for the duration of the block."""
    provider = FakeProvider(list(keys))
    server = make_server("127.0.0.1", 0, provider, threaded=True)
    provider.issuer = f"http://127.0.0.1:{server.server_port}/realms/police"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
