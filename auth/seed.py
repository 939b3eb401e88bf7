"""Loading users and OAuth clients for the embedded server from a JSON seed file, idempotently."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from auth.errors import AuthConfigError
from auth.models import AuthClient, AuthUser
from auth.principal import SCOPES, normalise_classification, normalise_rank

DEMO_SEED = Path(__file__).with_name("demo_seed.json")
GRANT_TYPES = frozenset({"authorization_code", "client_credentials"})

Row = TypeVar("Row", AuthUser, AuthClient)


@dataclass(frozen=True)
class SeedResult:
    users_created: int
    users_updated: int
    clients_created: int
    clients_updated: int


def load_seed(session: Session, path: Path | str = DEMO_SEED) -> SeedResult:
    """Create or update every user and client in the seed file; entries not in the file are left alone.

    Running it twice changes nothing the second time. A user entry carries ``password_hash`` (a werkzeug
    hash) or, for tests, ``password``; a client carries ``secret_hash``, ``secret`` or neither (public).
    The caller owns the transaction: this flushes but does not commit. Raises ``AuthConfigError``
    naming the offending entry.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AuthConfigError(f"cannot read seed file {source}: {exc}") from exc
    if not isinstance(document, dict):
        raise AuthConfigError(f"{source}: the seed is a JSON object with 'users' and 'clients'")
    users = [
        _user(entry, f"{source}: users[{index}]") for index, entry in enumerate(document.get("users", []))
    ]
    clients = [
        _client(entry, f"{source}: clients[{index}]")
        for index, entry in enumerate(document.get("clients", []))
    ]
    users_created, users_updated = _upsert(session, AuthUser, AuthUser.username, "username", users)
    clients_created, clients_updated = _upsert(
        session, AuthClient, AuthClient.client_id, "client_id", clients
    )
    session.flush()
    return SeedResult(users_created, users_updated, clients_created, clients_updated)


def _upsert(
    session: Session, model: type[Row], key_column: Any, key: str, entries: list[dict[str, Any]]
) -> tuple[int, int]:
    created = updated = 0
    for entry in entries:
        row = session.scalars(select(model).where(key_column == entry[key])).one_or_none()
        if row is None:
            session.add(model(**_resolve_secret(entry, None)))
            created += 1
            continue
        values = _resolve_secret(entry, row)
        changed = {name: value for name, value in values.items() if getattr(row, name) != value}
        for name, value in changed.items():
            setattr(row, name, value)
        updated += bool(changed)
    return created, updated


def _resolve_secret(entry: dict[str, Any], row: AuthUser | AuthClient | None) -> dict[str, Any]:
    """Hash a plain ``password``/``secret`` unless the stored hash already matches it (idempotence)."""
    values = dict(entry)
    for plain, hashed in (("password", "password_hash"), ("secret", "secret_hash")):
        if plain not in values:
            continue
        secret = values.pop(plain)
        current = getattr(row, hashed, None) if row is not None else None
        values[hashed] = (
            current if current and check_password_hash(current, secret) else generate_password_hash(secret)
        )
    return values


def _user(entry: Any, where: str) -> dict[str, Any]:
    entry = _object(entry, where)
    if ("password" in entry) == ("password_hash" in entry):
        raise AuthConfigError(f"{where}: give exactly one of password_hash or password")
    user: dict[str, Any] = {
        "username": _string(entry, "username", where),
        "name": _string(entry, "name", where),
        "roles": _strings(entry, "roles", where),
        "units": _strings(entry, "units", where),
        "rank": _optional(entry, "rank", where, normalise_rank),
        "clearance": _required(entry, "clearance", where, normalise_classification),
        "scopes": _scopes(entry, where),
        "active": _boolean(entry, "active", where),
    }
    if "password" in entry:
        user["password"] = _string(entry, "password", where)
    else:
        user["password_hash"] = _string(entry, "password_hash", where)
    return user


def _client(entry: Any, where: str) -> dict[str, Any]:
    entry = _object(entry, where)
    if "secret" in entry and "secret_hash" in entry:
        raise AuthConfigError(f"{where}: give at most one of secret_hash or secret")
    grant_types = _strings(entry, "grant_types", where)
    if not grant_types or not set(grant_types) <= GRANT_TYPES:
        raise AuthConfigError(f"{where}: grant_types must be chosen from {', '.join(sorted(GRANT_TYPES))}")
    public = "secret" not in entry and entry.get("secret_hash") is None
    if public and "client_credentials" in grant_types:
        raise AuthConfigError(f"{where}: a public client (no secret) cannot use client_credentials")
    redirect_uris = _strings(entry, "redirect_uris", where)
    if "authorization_code" in grant_types and not redirect_uris:
        raise AuthConfigError(f"{where}: an authorization_code client needs redirect_uris")
    client: dict[str, Any] = {
        "client_id": _string(entry, "client_id", where),
        "name": _string(entry, "name", where),
        "redirect_uris": redirect_uris,
        "grant_types": grant_types,
        "scopes": _scopes(entry, where),
        "roles": _strings(entry, "roles", where),
        "units": _strings(entry, "units", where),
        "clearance": _required(entry, "clearance", where, normalise_classification),
        "active": _boolean(entry, "active", where),
    }
    if "secret" in entry:
        client["secret"] = _string(entry, "secret", where)
    else:
        client["secret_hash"] = None if public else _string(entry, "secret_hash", where)
    return client


def _object(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise AuthConfigError(f"{where}: each entry is a JSON object")
    return entry


def _string(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise AuthConfigError(f"{where}.{name}: a non-empty string is required")
    return value


def _strings(entry: dict[str, Any], name: str, where: str) -> list[str]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise AuthConfigError(f"{where}.{name}: a list of non-empty strings is required")
    return list(dict.fromkeys(value))


def _scopes(entry: dict[str, Any], where: str) -> list[str]:
    scopes = _strings(entry, "scopes", where)
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise AuthConfigError(f"{where}.scopes: unknown scope(s) {', '.join(unknown)}")
    return scopes


def _boolean(entry: dict[str, Any], name: str, where: str) -> bool:
    value = entry.get(name, True)
    if not isinstance(value, bool):
        raise AuthConfigError(f"{where}.{name}: true or false")
    return value


def _required(entry: dict[str, Any], name: str, where: str, normalise: Callable[[str], str]) -> str:
    try:
        return normalise(_string(entry, name, where))
    except ValueError as exc:
        raise AuthConfigError(f"{where}.{name}: {exc}") from exc


def _optional(entry: dict[str, Any], name: str, where: str, normalise: Callable[[str], str]) -> str | None:
    if entry.get(name) is None:
        return None
    return _required(entry, name, where, normalise)
