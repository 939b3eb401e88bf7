"""The embedded authorization server's RSA signing keys, persisted as private JWKs with a rotation history."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from joserfc.jwk import Key, RSAKey

from auth.errors import AuthConfigError, AuthenticationError
from auth.jwks import select_key
from auth.timing import Now, utcnow

log = logging.getLogger(__name__)

SIGNING_ALGORITHM = "RS256"


@dataclass(frozen=True)
class StoredKey:
    """One signing key and its life: created, then retired by a rotation, then dropped."""

    private: RSAKey
    created_at: datetime
    retired_at: datetime | None

    @property
    def kid(self) -> str:
        kid = self.private.kid
        if kid is None:
            raise AuthConfigError("a stored signing key has no kid")
        return kid

    def public_jwk(self) -> dict[str, Any]:
        return dict(self.private.as_dict(private=False))

    @cached_property
    def public_key(self) -> RSAKey:
        return RSAKey.import_key(self.public_jwk())


class KeyStore:
    """Signing keys kept in ``<directory>/signing-keys.json`` (mode 0600), created on first use.

    ``rotate()`` makes a new current key; the retired one stays in ``public_jwks()`` until every token
    it signed has expired (``retired_at`` + ``token_lifetime`` + ``leeway``). Several processes may
    share the directory: writes take an exclusive file lock and readers reload when the file changes.
    """

    FILE_NAME = "signing-keys.json"

    def __init__(
        self,
        directory: Path,
        *,
        token_lifetime: int,
        key_size: int = 3072,
        leeway: int = 30,
        now: Now = utcnow,
    ) -> None:
        if key_size not in {2048, 3072, 4096}:
            raise AuthConfigError(f"RSA signing keys are 2048, 3072 or 4096 bits, not {key_size}")
        self.directory = Path(directory)
        self.path = self.directory / self.FILE_NAME
        self._keep_for = timedelta(seconds=token_lifetime + leeway)
        self._key_size = key_size
        self._now = now
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: tuple[StoredKey, ...] = ()
        self._ensure_current()

    def current_key(self) -> StoredKey:
        """The key that signs new tokens."""
        for stored in self._snapshot():
            if stored.retired_at is None:
                return stored
        return self._ensure_current()

    def public_jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWKS document to publish: the current key and retired keys whose tokens may still be live."""
        return {"keys": [stored.public_jwk() for stored in self._published()]}

    def find_key(self, kid: str | None) -> Key:
        """The public key named ``kid`` among the published keys (the ``KeySource`` contract)."""
        index: dict[str | None, Key] = {stored.kid: stored.public_key for stored in self._published()}
        key = select_key(index, kid)
        if key is None:
            raise AuthenticationError("token-unknown-key", f"the token is signed with unknown key {kid!r}")
        return key

    def rotate(self) -> StoredKey:
        """Retire the current key, create a new current key and drop keys no token can still need."""
        with self._file_lock():
            now = self._now()
            kept = [
                StoredKey(stored.private, stored.created_at, stored.retired_at or now)
                for stored in self._read()
                if stored.retired_at is None or stored.retired_at + self._keep_for > now
            ]
            fresh = self._generate(now)
            self._write([fresh, *kept])
        log.info("auth.key_rotated kid=%s kept=%d", fresh.kid, len(kept))
        return fresh

    def _published(self) -> list[StoredKey]:
        now = self._now()
        return [
            stored
            for stored in self._snapshot()
            if stored.retired_at is None or stored.retired_at + self._keep_for > now
        ]

    def _ensure_current(self) -> StoredKey:
        with self._file_lock():
            keys = self._read()
            for stored in keys:
                if stored.retired_at is None:
                    return stored
            fresh = self._generate(self._now())
            self._write([fresh, *keys])
        log.info("auth.key_created kid=%s path=%s", fresh.kid, self.path)
        return fresh

    def _generate(self, now: datetime) -> StoredKey:
        key = RSAKey.generate_key(
            self._key_size, parameters={"alg": SIGNING_ALGORITHM, "use": "sig"}, private=True, auto_kid=True
        )
        return StoredKey(key, now, None)

    def _snapshot(self) -> tuple[StoredKey, ...]:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return ()
        stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._keys = tuple(self._read())
                self._stamp = stamp
            return self._keys

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _read(self) -> list[StoredKey]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        if self.path.stat().st_mode & 0o077:
            log.warning("auth.key_file_permissions path=%s fixed_to=0600", self.path)
            self.path.chmod(0o600)
        try:
            document = json.loads(text)
            keys = [
                StoredKey(
                    private=RSAKey.import_key(entry["jwk"]),
                    created_at=datetime.fromisoformat(entry["created_at"]),
                    retired_at=datetime.fromisoformat(entry["retired_at"]) if entry["retired_at"] else None,
                )
                for entry in document["keys"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthConfigError(f"{self.path} is not a valid signing key file: {exc}") from exc
        if any(not stored.private.is_private or stored.private.kid is None for stored in keys):
            raise AuthConfigError(f"{self.path} holds a key without its private part or kid")
        return sorted(keys, key=lambda stored: stored.created_at, reverse=True)

    def _write(self, keys: list[StoredKey]) -> None:
        document = {
            "keys": [
                {
                    "jwk": stored.private.as_dict(private=True),
                    "created_at": stored.created_at.isoformat(),
                    "retired_at": stored.retired_at.isoformat() if stored.retired_at else None,
                }
                for stored in keys
            ]
        }
        temporary = self.path.with_name(f".{self.FILE_NAME}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
