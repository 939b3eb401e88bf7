"""Alembic environment: migrates the engine's and the embedded authorization server's tables."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from engine import models  # noqa: F401  (registers the engine's tables on Base.metadata)
from engine.db import Base, create_db_engine
from engine.settings import Settings


def _target_metadata() -> list[sa.MetaData]:
    metadata = [Base.metadata]
    try:
        from auth.models import AuthBase
    except ImportError:  # auth tables arrive with their own migration
        return metadata
    metadata.append(AuthBase.metadata)
    return metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_target_metadata(),
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    engine = create_db_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
