"""Identity: free attributes of domains and projects (``extra``, as Keystone keeps them), user options, and the
failed-login count behind ``[security_compliance]`` lockout

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("domains", "projects"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("extra", sa.JSON(), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("options", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("failed_auth_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("failed_auth_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        for column in ("failed_auth_at", "failed_auth_count", "options"):
            batch.drop_column(column)
    for table in ("projects", "domains"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("extra")
