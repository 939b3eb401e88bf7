"""The embedded key store: created once with safe permissions, rotated without breaking live tokens."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from auth_fixtures import NOW, access_claims, embedded_settings, sign

from auth.errors import AuthConfigError, AuthenticationError
from auth.keys import KeyStore
from auth.tokens import TokenValidator


class Clock:
    def __init__(self) -> None:
        self.moment = NOW

    def now(self) -> datetime:
        return self.moment


def store(directory: Path, clock: Clock) -> KeyStore:
    return KeyStore(directory, token_lifetime=3600, key_size=2048, now=clock.now)


def test_first_use_creates_one_private_key_readable_by_the_owner_only(tmp_path: Path) -> None:
    keys = store(tmp_path / "keys", Clock())
    mode = stat.S_IMODE(keys.path.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    published = keys.public_jwks()["keys"]
    assert [jwk["kid"] for jwk in published] == [keys.current_key().kid]
    assert published[0]["alg"] == "RS256"
    assert "d" not in published[0]
    assert keys.current_key().private.is_private


def test_a_second_store_on_the_same_directory_reuses_the_key(tmp_path: Path) -> None:
    first = store(tmp_path, Clock())
    second = store(tmp_path, Clock())
    assert second.current_key().kid == first.current_key().kid


def test_rotation_keeps_the_old_key_published_until_its_tokens_expire(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    validator = TokenValidator(keys, embedded_settings(), now=clock.now)
    old = keys.current_key()
    old_token = sign(access_claims(), old.private)

    clock.moment = NOW + timedelta(minutes=10)
    new = keys.rotate()
    assert new.kid != old.kid
    assert keys.current_key().kid == new.kid
    assert {jwk["kid"] for jwk in keys.public_jwks()["keys"]} == {old.kid, new.kid}
    assert validator.validate(old_token).subject == "dc.patel"

    clock.moment = NOW + timedelta(minutes=10, seconds=3600 + 31)
    assert {jwk["kid"] for jwk in keys.public_jwks()["keys"]} == {new.kid}
    with pytest.raises(AuthenticationError) as caught:
        keys.find_key(old.kid)
    assert caught.value.code == "token-unknown-key"


def test_another_process_sees_a_rotation(tmp_path: Path) -> None:
    clock = Clock()
    server, worker = store(tmp_path, clock), store(tmp_path, clock)
    rotated = server.rotate()
    assert worker.current_key().kid == rotated.kid
    assert worker.find_key(rotated.kid).kid == rotated.kid


def test_old_keys_are_dropped_from_the_file_at_the_next_rotation(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    first = keys.current_key()
    keys.rotate()
    clock.moment = NOW + timedelta(hours=2)
    keys.rotate()
    assert first.kid not in keys.path.read_text()


def test_a_loose_key_file_is_tightened(tmp_path: Path) -> None:
    keys = store(tmp_path, Clock())
    keys.path.chmod(0o644)
    store(tmp_path, Clock())
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600


def test_a_corrupt_key_file_stops_the_boot(tmp_path: Path) -> None:
    (tmp_path / KeyStore.FILE_NAME).write_text("{not json")
    with pytest.raises(AuthConfigError, match="signing key file"):
        store(tmp_path, Clock())


def test_weak_key_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="1024"):
        KeyStore(tmp_path, token_lifetime=3600, key_size=1024)
