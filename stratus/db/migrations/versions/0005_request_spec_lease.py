"""request_specs.conductor_id, request_specs.generation: the scheduling lease of a build (db/builds.py), so a
build whose conductor died is scheduled again by exactly one other conductor

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_specs") as batch:
        batch.add_column(sa.Column("conductor_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("request_specs") as batch:
        batch.drop_column("generation")
        batch.drop_column("conductor_id")
