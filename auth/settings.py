"""Auth configuration read once from ``OPSFLOW_*`` environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from auth.errors import AuthConfigError

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
"""Signature algorithms a token may use; symmetric (HS*) and "none" are never among them."""

_CLAIM_PATH = re.compile(r"^[A-Za-z0-9_:/\-]+(\.[A-Za-z0-9_:/\-]+)*$")


_CLAIM_VARIABLES = {
    "OPSFLOW_CLAIM_ROLES": "claim_roles",
    "OPSFLOW_CLAIM_UNITS": "claim_units",
    "OPSFLOW_CLAIM_RANK": "claim_rank",
    "OPSFLOW_CLAIM_CLEARANCE": "claim_clearance",
    "OPSFLOW_CLAIM_NAME": "claim_name",
    "OPSFLOW_CLAIM_SCOPES": "claim_scopes",
}


def _text(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip()


def _url(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _text(environ, name, default)
    if value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise AuthConfigError(f"{name} must be an http(s) URL without query or fragment, not {value!r}")
    return value


def _number(environ: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise AuthConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value >= minimum:
        raise AuthConfigError(f"{name} must be at least {minimum:g}, not {raw!r}")
    return value


def _claim_path(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _text(environ, name, default)
    if not _CLAIM_PATH.match(value):
        raise AuthConfigError(f"{name} must be a claim name or a dotted path such as realm_access.roles")
    return value


def _list(environ: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in _text(environ, name, default).split(",") if item.strip())


def _algorithms(environ: Mapping[str, str]) -> tuple[str, ...]:
    name = "OPSFLOW_AUTH_ALGORITHMS"
    algorithms = _list(environ, name, "RS256,PS256,ES256")
    if not algorithms:
        raise AuthConfigError(f"{name} must name at least one signature algorithm")
    for alg in algorithms:
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise AuthConfigError(
                f"{name} must not contain {alg!r}: unsigned and shared-secret tokens are refused"
            )
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise AuthConfigError(
                f"{name} contains {alg!r}; choose from {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
            )
    return algorithms


@dataclass(frozen=True)
class AuthSettings:
    """How tokens are issued or trusted, and how their claims map onto a ``Principal``.

    An empty ``issuer`` selects embedded mode: opsflow issues its own tokens as ``public_url`` and
    signs them with keys kept in ``key_dir``. Otherwise tokens come from that external OIDC issuer.
    """

    issuer: str = ""
    audience: str = "opsflow"
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    claim_roles: str = "roles"
    claim_units: str = "units"
    claim_rank: str = "rank"
    claim_clearance: str = "clearance"
    claim_name: str = "name"
    claim_scopes: str = "scope"
    cross_unit_roles: frozenset[str] = frozenset(
        {"central_record_keeper", "review_officer", "auditor", "process_designer", "operator"}
    )
    public_url: str = "http://127.0.0.1:8000"
    key_dir: Path = Path("var/keys")
    token_lifetime: int = 3600
    jwks_refetch_min_interval: float = 30.0
    leeway: int = 30

    def __post_init__(self) -> None:
        refused = [alg for alg in self.algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if refused or not self.algorithms:
            raise AuthConfigError(
                f"signature algorithms must be chosen from {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}; "
                f"refused: {', '.join(refused) or 'an empty list'}"
            )

    @property
    def embedded(self) -> bool:
        """True when opsflow is its own authorization server."""
        return self.issuer == ""

    @property
    def expected_issuer(self) -> str:
        """The exact ``iss`` value tokens must carry in the current mode."""
        return self.issuer if self.issuer else self.public_url.rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AuthSettings:
        """Read the settings, raising ``AuthConfigError`` naming the variable for any bad value."""
        defaults = cls()
        issuer = _url(environ, "OPSFLOW_OIDC_ISSUER", "")
        claims = {
            field: _claim_path(environ, name, getattr(defaults, field))
            for name, field in _CLAIM_VARIABLES.items()
        }
        if not issuer:
            for name, field in _CLAIM_VARIABLES.items():
                if claims[field] != getattr(defaults, field):
                    raise AuthConfigError(
                        f"{name} maps the claims of an external issuer; unset it or set OPSFLOW_OIDC_ISSUER "
                        "(the embedded server always issues roles, units, rank, clearance, name and scope)"
                    )
        lifetime = _number(environ, "OPSFLOW_TOKEN_LIFETIME", defaults.token_lifetime, minimum=60)
        if lifetime > 86400 or lifetime != int(lifetime):
            raise AuthConfigError("OPSFLOW_TOKEN_LIFETIME must be a whole number of seconds up to 86400")
        leeway = _number(environ, "OPSFLOW_AUTH_LEEWAY", defaults.leeway, minimum=0)
        if leeway > 300 or leeway != int(leeway):
            raise AuthConfigError("OPSFLOW_AUTH_LEEWAY must be a whole number of seconds up to 300")
        refetch = _number(
            environ, "OPSFLOW_JWKS_REFETCH_MIN_INTERVAL", defaults.jwks_refetch_min_interval, minimum=0
        )
        cross_unit = _list(environ, "OPSFLOW_CROSS_UNIT_ROLES", ",".join(sorted(defaults.cross_unit_roles)))
        return cls(
            issuer=issuer,
            audience=_text(environ, "OPSFLOW_OIDC_AUDIENCE", defaults.audience),
            algorithms=_algorithms(environ),
            cross_unit_roles=frozenset(cross_unit),
            public_url=_url(environ, "OPSFLOW_PUBLIC_URL", defaults.public_url).rstrip("/"),
            key_dir=Path(_text(environ, "OPSFLOW_KEY_DIR", str(defaults.key_dir))),
            token_lifetime=int(lifetime),
            jwks_refetch_min_interval=refetch,
            leeway=int(leeway),
            **claims,
        )
