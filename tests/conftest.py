"""Shared fixtures: a migrated database per backend (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from engine.clock import FrozenClock
from engine.container import Services, build_services
from engine.db import Base
from engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PG_URL = os.environ.get("OPSFLOW_TEST_DATABASE_URL")
PG_REASON = "OPSFLOW_TEST_DATABASE_URL is not set; PostgreSQL integration tests need a server"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.skipif(not PG_URL, reason=PG_REASON)),
]


def migrate(url: str) -> None:
    """Build the schema the only supported way: Alembic."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('db') / 'opsflow.sqlite3'}"}
    migrate(urls["sqlite"])
    schema = None
    if PG_URL:
        schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        admin.dispose()
        separator = "&" if "?" in PG_URL else "?"
        urls["postgresql"] = f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
        migrate(urls["postgresql"])
    yield urls
    if schema:
        admin = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)  # type: ignore[arg-type]
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _table_names() -> list[str]:
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    try:
        from auth.models import AuthBase
    except ImportError:
        return names
    return names + [t.name for t in reversed(AuthBase.metadata.sorted_tables)]


def wipe(services: Services) -> None:
    with services.db.begin() as conn:
        names = _table_names()
        if services.db.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE"
            )
        else:
            for name in names:
                conn.exec_driver_sql(f'DELETE FROM "{name}"')  # noqa: S608  (names come from our own metadata)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_urls: dict[str, str], backend: str) -> Settings:
    return Settings(
        database_url=database_urls[backend],
        processes_dir=ROOT / "processes",
        forms_dir=FIXTURES / "forms",
    )


@pytest.fixture
def services(settings: Settings, clock: FrozenClock) -> Iterator[Services]:
    built = build_services(settings, clock=clock)
    wipe(built)
    yield built
    built.db.dispose()
