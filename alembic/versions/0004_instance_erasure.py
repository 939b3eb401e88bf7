"""when and by whom a finished case's data was erased

Revision ID: 0004_instance_erasure
Revises: 0003_open_task_inbox_index
"""

import sqlalchemy as sa

from alembic import op

revision = "0004_instance_erasure"
down_revision = "0003_open_task_inbox_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("erased_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.drop_column("erased_by")
        batch_op.drop_column("erased_at")
