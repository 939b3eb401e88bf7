"""inbox index on open tasks only, covering the visibility columns

The inbox and its count always ask for open tasks of a role and unit, and filter on classification and
assignee. A partial index over open tasks alone is a fifth of the size of one over every task ever
created, and with classification and assignee included PostgreSQL answers the count from the index
without reading the table. It replaces ``ix_human_task_inbox``.

Revision ID: 0003_open_task_inbox_index
Revises: 0002_auth
"""

import sqlalchemy as sa

from alembic import op

revision = "0003_open_task_inbox_index"
down_revision = "0002_auth"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'ready'")


def upgrade() -> None:
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.create_index(
            "ix_human_task_open_inbox",
            ["role", "unit", "due_at", "id"],
            unique=False,
            postgresql_include=["classification", "assignee"],
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )
        batch_op.drop_index("ix_human_task_inbox")


def downgrade() -> None:
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.create_index("ix_human_task_inbox", ["role", "unit", "status", "due_at", "id"], unique=False)
        batch_op.drop_index("ix_human_task_open_inbox")
