"""migrations: Nova's columns for the moves (resize, cold and live migration, evacuate): the requester's project
and user, the destination host asked for, live-migration progress, hidden and cross-cell flags, soft delete

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_NEW = ("project_id", "user_id", "dest_host", "hidden", "cross_cell_move", "memory_total", "memory_processed",
        "memory_remaining", "disk_total", "disk_processed", "disk_remaining", "deleted", "deleted_at")


def upgrade() -> None:
    with op.batch_alter_table("migrations") as batch:
        batch.add_column(sa.Column("project_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("dest_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("cross_cell_move", sa.Boolean(), nullable=False, server_default=sa.false()))
        for name in ("memory_total", "memory_processed", "memory_remaining", "disk_total", "disk_processed",
                     "disk_remaining"):
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_migrations_status_updated", ["status", "updated_at"])


def downgrade() -> None:
    with op.batch_alter_table("migrations") as batch:
        batch.drop_index("ix_migrations_status_updated")
        for name in reversed(_NEW):
            batch.drop_column(name)
