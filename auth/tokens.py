"""Validation of RFC 9068 JWT access tokens and the mapping of their claims onto a ``Principal``.

One ``TokenValidator`` serves both modes; only its ``KeySource`` differs: the embedded ``KeyStore`` or
the ``RemoteJWKS`` of an external OpenID provider.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import requests
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key

from auth.errors import AuthConfigError, AuthenticationError
from auth.jwks import KeySource, RemoteJWKS
from auth.keys import KeyStore
from auth.principal import SCOPES, Principal, normalise_classification, normalise_rank
from auth.settings import AuthSettings
from auth.timing import Now, utcnow

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 16 * 1024
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_KEY_TYPE_FOR_ALGORITHM_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
_REFUSED_HEADERS = frozenset({"crit", "b64", "jku", "x5u", "jwk"})


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` in ``claims``: a claim name, or a dotted path into nested objects.

    A claim whose name itself contains dots (a URI, as Entra ID and some mappers produce) is found
    before the path is split.
    """
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value}) if value else frozenset()
    if isinstance(value, list | tuple):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()


def _listed(value: Any) -> frozenset[str]:
    """Roles or units: a JSON list, or one string that may list several values separated by commas."""
    if isinstance(value, str):
        return frozenset(item.strip() for item in value.split(",") if item.strip())
    return _strings(value)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class TokenValidator:
    """Checks a bearer token and returns the ``Principal`` it describes, or raises ``AuthenticationError``.

    Checked, in order: shape and size; ``alg`` against the allow-list (never "none", never HS*); the
    key named by ``kid`` and that its type fits ``alg`` (an RSA or EC public key is never used as an
    HMAC secret); the signature; ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` with ``settings.leeway``;
    ``sub``. Tokens from the embedded server must also be typed ``at+jwt`` and carry ``client_id`` and
    ``jti`` (RFC 9068); external providers (Keycloak, Entra ID) type their tokens "JWT", so that check
    is relaxed for them.
    """

    def __init__(self, keys: KeySource, settings: AuthSettings, *, now: Now = utcnow) -> None:
        self.keys = keys
        self.settings = settings
        self._now = now
        self._strict = settings.embedded
        self._registries = {
            alg: jws.JWSRegistry(algorithms=[alg], strict_check_header=False) for alg in settings.algorithms
        }

    @classmethod
    def from_settings(
        cls,
        settings: AuthSettings,
        *,
        keystore: KeyStore | None = None,
        http: requests.Session | None = None,
        now: Now = utcnow,
    ) -> TokenValidator:
        """The validator for the configured mode: the local ``keystore`` in embedded mode, else the
        provider's JWKS found through ``settings.issuer``'s discovery document."""
        if settings.embedded:
            if keystore is None:
                raise AuthConfigError("embedded mode (OPSFLOW_OIDC_ISSUER unset) needs the local KeyStore")
            return cls(keystore, settings, now=now)
        remote = RemoteJWKS(
            settings.issuer, min_refetch_interval=settings.jwks_refetch_min_interval, http=http
        )
        return cls(remote, settings, now=now)

    def validate(self, token: str) -> Principal:
        """Verify ``token`` and map its claims; raises ``AuthenticationError`` with a specific code."""
        return self.principal_from_claims(self.verified_claims(token))

    def verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` once its signature and registered claims have been checked."""
        if not token:
            raise AuthenticationError("token-missing", "no access token was sent")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("token-malformed", "the access token is too long")
        try:
            signed = jws.extract_compact(token.encode("ascii"))
        except (JoseError, ValueError, UnicodeError):
            raise AuthenticationError("token-malformed", "the access token is not a signed JWT") from None
        header = signed.headers()
        alg = self._check_header(header)
        key = self._key_for(header, alg)
        try:
            valid = jws.validate_compact(signed, key, registry=self._registries[alg])
        except JoseError:
            valid = False
        if not valid:
            raise AuthenticationError("token-bad-signature", "the access token signature does not verify")
        try:
            claims = json.loads(signed.payload)
        except ValueError:
            raise AuthenticationError("token-malformed", "the access token payload is not JSON") from None
        if not isinstance(claims, dict):
            raise AuthenticationError("token-malformed", "the access token payload is not a JSON object")
        self._check_claims(claims)
        return claims

    def _check_header(self, header: Mapping[str, Any]) -> str:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._registries:
            raise AuthenticationError(
                "token-algorithm-refused",
                f"tokens signed with {alg!r} are refused; accepted: {', '.join(self.settings.algorithms)}",
            )
        used = _REFUSED_HEADERS.intersection(header)
        if used:
            raise AuthenticationError(
                "token-malformed", f"the token header uses {', '.join(sorted(used))}, which is not accepted"
            )
        typ = header.get("typ")
        if self._strict and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
            raise AuthenticationError(
                "token-malformed", f"the token is typed {typ!r}, not an at+jwt access token"
            )
        return alg

    def _key_for(self, header: Mapping[str, Any], alg: str) -> Key:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("token-malformed", "the token's kid header is not a string")
        key = self.keys.find_key(kid)
        if key.key_type != _KEY_TYPE_FOR_ALGORITHM_FAMILY[alg[:2]] or key.alg not in {None, alg}:
            raise AuthenticationError(
                "token-algorithm-refused", f"key {kid!r} is a {key.key_type} key and may not verify {alg}"
            )
        return key

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        settings = self.settings
        if claims.get("iss") != settings.expected_issuer:
            raise AuthenticationError(
                "token-wrong-issuer",
                f"the token was issued by {claims.get('iss')!r}, not {settings.expected_issuer!r}",
            )
        audiences = _strings(claims.get("aud"))
        if settings.audience not in audiences:
            raise AuthenticationError(
                "token-wrong-audience", f"the token is not meant for audience {settings.audience!r}"
            )
        now = self._now().timestamp()
        expires, issued, not_before = _number(claims, "exp"), _number(claims, "iat"), claims.get("nbf")
        if expires is None or issued is None:
            raise AuthenticationError("token-malformed", "the token lacks a numeric exp or iat claim")
        if now > expires + settings.leeway:
            raise AuthenticationError("token-expired", "the access token has expired")
        if not_before is not None:
            start = _number(claims, "nbf")
            if start is None:
                raise AuthenticationError("token-malformed", "the token's nbf claim is not a number")
            if now + settings.leeway < start:
                raise AuthenticationError("token-not-yet-valid", "the access token is not valid yet")
        if now + settings.leeway < issued:
            raise AuthenticationError(
                "token-not-yet-valid", "the access token claims to be issued in the future"
            )
        required = ("sub", "client_id", "jti") if self._strict else ("sub",)
        for name in required:
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise AuthenticationError("token-malformed", f"the token lacks the {name} claim")

    def principal_from_claims(self, claims: Mapping[str, Any]) -> Principal:
        """Map verified claims onto a ``Principal`` using the claim paths in the settings.

        An unrecognised rank is dropped and an unrecognised clearance falls back to OFFICIAL (both are
        logged): a mapping mistake at the identity provider then grants less, never more. A token with
        no scope claim at all (``scope``, or Entra's ``scp``) takes as scopes those of its roles that
        name an opsflow scope: Entra ID puts application permissions of app-only tokens there.
        """
        settings = self.settings
        subject = str(claims["sub"])
        rank: str | None = None
        raw_rank = claim_at(claims, settings.claim_rank)
        if isinstance(raw_rank, str) and raw_rank:
            try:
                rank = normalise_rank(raw_rank)
            except ValueError:
                log.warning("auth.unknown_rank subject=%s value=%r", subject, raw_rank)
        clearance = "OFFICIAL"
        raw_clearance = claim_at(claims, settings.claim_clearance)
        if raw_clearance is not None:
            try:
                clearance = normalise_classification(str(raw_clearance))
            except ValueError:
                log.warning("auth.unknown_clearance subject=%s value=%r", subject, raw_clearance)
        name = claim_at(claims, settings.claim_name) or claims.get("preferred_username") or subject
        roles = _listed(claim_at(claims, settings.claim_roles))
        raw_scopes = claim_at(claims, settings.claim_scopes)
        if raw_scopes is None and settings.claim_scopes == "scope":
            raw_scopes = claims.get("scp")
        if raw_scopes is None:
            # Entra ID app-only tokens carry application permissions as roles and no scope claim at all.
            scopes = roles & SCOPES
        elif isinstance(raw_scopes, str):
            scopes = frozenset(raw_scopes.split())
        else:
            scopes = _strings(raw_scopes)
        client_id = claims.get("client_id") or claims.get("azp") or claims.get("appid")
        return Principal(
            subject=subject,
            name=str(name),
            roles=roles,
            units=_listed(claim_at(claims, settings.claim_units)),
            rank=rank,
            clearance=clearance,
            scopes=scopes,
            client_id=str(client_id) if client_id else None,
        )
