"""Verification keys: the ``KeySource`` contract and the cached JWKS of an external OpenID provider."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import requests
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from auth.errors import AuthenticationError, KeySetUnavailableError

log = logging.getLogger(__name__)

KeyIndex = Mapping[str | None, Key]
"""Public verification keys by ``kid``; a key published without ``kid`` is filed under ``None``."""


class KeySource(Protocol):
    """Where ``TokenValidator`` finds the public key a token names in its ``kid`` header."""

    def find_key(self, kid: str | None) -> Key:
        """Return the public key for ``kid``; raise ``AuthenticationError("token-unknown-key")`` if none."""
        ...


def index_public_keys(jwks: Any) -> dict[str | None, Key]:
    """Build a ``KeyIndex`` from a JWKS document, keeping public signature keys only.

    Symmetric keys (``kty`` "oct") are dropped whatever the document says: a shared secret must never
    verify a token. So are encryption keys and entries this library cannot import.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("a JWKS document is an object with a 'keys' list")
    index: dict[str | None, Key] = {}
    for entry in jwks["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in {"RSA", "EC"}:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        public = {
            name: value for name, value in entry.items() if name not in {"d", "p", "q", "dp", "dq", "qi"}
        }
        try:
            key = JWKRegistry.import_key(public)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("jwks.key_skipped kid=%s reason=%s", entry.get("kid"), exc)
            continue
        index[key.kid] = key
    return index


def select_key(index: KeyIndex, kid: str | None) -> Key | None:
    """The key named by ``kid``; a token without ``kid`` matches only a set holding exactly one key."""
    if kid is not None:
        return index.get(kid)
    if len(index) == 1:
        return next(iter(index.values()))
    return None


class RemoteJWKS:
    """The signing keys of an external OpenID provider, found through its discovery document.

    Keys are fetched on first use and kept. A token naming an unknown ``kid`` (the provider has rotated)
    triggers one refetch, but never more often than ``min_refetch_interval`` seconds, so a flood of
    forged tokens cannot turn opsflow into a load generator against the provider. The set is also
    refreshed once it is older than ``max_age`` so that keys withdrawn by the provider stop working.
    Safe to share between threads.
    """

    def __init__(
        self,
        issuer: str,
        *,
        min_refetch_interval: float = 30.0,
        max_age: float = 3600.0,
        timeout: tuple[float, float] = (3.05, 10.0),
        http: requests.Session | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._min_refetch_interval = min_refetch_interval
        self._max_age = max_age
        self._timeout = timeout
        self._http = http or requests.Session()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._index: dict[str | None, Key] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def find_key(self, kid: str | None) -> Key:
        index = self._index
        if index is None or self._is_stale():
            index = self._refresh_if(lambda current: current is None or self._is_stale())
        key = select_key(index, kid)
        if key is None:
            index = self._refresh_if(lambda current: select_key(current or {}, kid) is None)
            key = select_key(index, kid)
        if key is None:
            raise AuthenticationError(
                "token-unknown-key",
                f"the token is signed with key {kid!r}, which {self.issuer} does not publish",
            )
        return key

    def refresh(self) -> None:
        """Fetch the provider's keys now (e.g. at boot, to fail early on a wrong issuer URL)."""
        with self._lock:
            self._fetch()

    def _is_stale(self) -> bool:
        return self._monotonic() - self._fetched_at >= self._max_age

    def _refresh_if(self, needed: Callable[[dict[str | None, Key] | None], bool]) -> dict[str | None, Key]:
        """Refetch under the lock when ``needed`` still holds and the refetch bound allows it.

        Threads that queued behind a refetch see its result instead of fetching again.
        """
        with self._lock:
            current = self._index
            if not needed(current):
                return current or {}
            if (
                self._attempted_at is not None
                and self._monotonic() - self._attempted_at < self._min_refetch_interval
            ):
                if current is None:
                    raise KeySetUnavailableError(f"the keys of {self.issuer} could not be fetched just now")
                return current
            try:
                self._fetch()
            except KeySetUnavailableError:
                if current is None:
                    raise
                log.warning("jwks.refresh_failed issuer=%s keeping=%d", self.issuer, len(current))
                return current
            return self._index or {}

    def _fetch(self) -> None:
        self._attempted_at = self._monotonic()
        if self._jwks_uri is None:
            self._jwks_uri = self._discover()
        jwks_uri = self._jwks_uri
        try:
            index = index_public_keys(self._get_json(jwks_uri))
        except ValueError as exc:
            self._jwks_uri = None  # the provider may have moved its keys; rediscover next time
            raise KeySetUnavailableError(f"{jwks_uri} is not a usable JWKS document: {exc}") from exc
        except KeySetUnavailableError:
            self._jwks_uri = None
            raise
        self._index = index
        self._fetched_at = self._monotonic()
        log.info("jwks.fetched issuer=%s keys=%d", self.issuer, len(index))

    def _discover(self) -> str:
        document = self._get_json(self.discovery_url)
        if document.get("issuer") != self.issuer:
            raise KeySetUnavailableError(
                f"{self.discovery_url} names issuer {document.get('issuer')!r}, not {self.issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise KeySetUnavailableError(f"{self.discovery_url} has no usable jwks_uri")
        return jwks_uri

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, timeout=self._timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("jwks.fetch_failed url=%s error=%s", url, exc)
            raise KeySetUnavailableError(f"cannot fetch {url}: {exc}") from exc
        if not isinstance(document, dict):
            raise KeySetUnavailableError(f"{url} did not return a JSON object")
        return document
