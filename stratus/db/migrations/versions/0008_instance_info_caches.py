"""instance_info_caches: Nova's table of each instance's network info (the VIFs of its ports, as the Networking
service last described them), moved out of instances.network_info

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_info_caches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_uuid", sa.String(36), sa.ForeignKey("instances.uuid", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("network_info", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("instance_uuid", name="uq_instance_info_caches_instance_uuid"),
    )
    op.execute("INSERT INTO instance_info_caches (instance_uuid, network_info, created_at, deleted) "
               "SELECT uuid, network_info, created_at, 0 FROM instances")
    # a plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch rebuild would drop the old instances table, and
    # with foreign keys on that deletes the rows of every table referring to it
    op.drop_column("instances", "network_info")


def downgrade() -> None:
    op.add_column("instances", sa.Column("network_info", sa.JSON(), nullable=False, server_default="[]"))
    op.execute("UPDATE instances SET network_info = (SELECT c.network_info FROM instance_info_caches c "
               "WHERE c.instance_uuid = instances.uuid) WHERE uuid IN (SELECT instance_uuid FROM "
               "instance_info_caches)")
    op.drop_table("instance_info_caches")
