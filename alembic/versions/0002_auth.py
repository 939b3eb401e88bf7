"""embedded authorization server: users, clients, authorization codes

Revision ID: 0002_auth
Revises: 0001_engine
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = "0002_auth"
down_revision = "0001_engine"
branch_labels = None
depends_on = None

JSON_LIST = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "auth_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("roles", JSON_LIST, nullable=False),
        sa.Column("units", JSON_LIST, nullable=False),
        sa.Column("rank", sa.String(length=40), nullable=True),
        sa.Column("clearance", sa.String(length=40), nullable=False),
        sa.Column("scopes", JSON_LIST, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_user")),
        sa.UniqueConstraint("username", name=op.f("uq_auth_user_username")),
    )
    op.create_table(
        "auth_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("redirect_uris", JSON_LIST, nullable=False),
        sa.Column("grant_types", JSON_LIST, nullable=False),
        sa.Column("scopes", JSON_LIST, nullable=False),
        sa.Column("roles", JSON_LIST, nullable=False),
        sa.Column("units", JSON_LIST, nullable=False),
        sa.Column("clearance", sa.String(length=40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_auth_client_client_id")),
    )
    op.create_table(
        "auth_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("code_challenge_method", sa.String(length=10), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["auth_client.client_id"],
            name=op.f("fk_auth_code_client_id_auth_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth_user.id"], name=op.f("fk_auth_code_user_id_auth_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_auth_code_code_hash")),
    )
    op.create_index(op.f("ix_auth_code_expires_at"), "auth_code", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_code_expires_at"), table_name="auth_code")
    op.drop_table("auth_code")
    op.drop_table("auth_client")
    op.drop_table("auth_user")
