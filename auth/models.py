"""The embedded authorization server's tables: users, OAuth clients and pending authorization codes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONList = sa.JSON().with_variant(JSONB(), "postgresql")


class AuthBase(DeclarativeBase):
    """Declarative base of the auth tables, with its own metadata so ``auth`` never imports ``engine``."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class AuthUser(AuthBase):
    """A person who signs in at the embedded login page; ``scopes`` caps what a client may get for them."""

    __tablename__ = "auth_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str] = mapped_column(sa.String(200))
    roles: Mapped[list[str]] = mapped_column(JSONList)
    units: Mapped[list[str]] = mapped_column(JSONList)
    rank: Mapped[str | None] = mapped_column(sa.String(40))
    clearance: Mapped[str] = mapped_column(sa.String(40))
    scopes: Mapped[list[str]] = mapped_column(JSONList)
    active: Mapped[bool] = mapped_column(sa.Boolean)


class AuthClient(AuthBase):
    """An OAuth client: public when it has no secret (PKCE only), confidential otherwise.

    ``roles``, ``units`` and ``clearance`` describe the system itself in client-credentials tokens.
    """

    __tablename__ = "auth_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(sa.String(100), unique=True)
    secret_hash: Mapped[str | None] = mapped_column(sa.String(255))
    name: Mapped[str] = mapped_column(sa.String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(JSONList)
    grant_types: Mapped[list[str]] = mapped_column(JSONList)
    scopes: Mapped[list[str]] = mapped_column(JSONList)
    roles: Mapped[list[str]] = mapped_column(JSONList)
    units: Mapped[list[str]] = mapped_column(JSONList)
    clearance: Mapped[str] = mapped_column(sa.String(40))
    active: Mapped[bool] = mapped_column(sa.Boolean)


class AuthCode(AuthBase):
    """An authorization code waiting to be exchanged; only its SHA-256 is stored, and only until used."""

    __tablename__ = "auth_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("auth_client.client_id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("auth_user.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(sa.String(2000))
    scope: Mapped[str] = mapped_column(sa.Text)
    code_challenge: Mapped[str] = mapped_column(sa.String(128))
    code_challenge_method: Mapped[str] = mapped_column(sa.String(10))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
