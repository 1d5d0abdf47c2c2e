"""instances by host: an index on (host, deleted)

Every build and delete recounts its host's instances for the weighers' stats (compute/resource_tracker.py
host_stats), and a compute host's start-up and periodic tasks read its own instances: without this index each
of those scanned every live instance of the cloud.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_instances_host_deleted", "instances", ["host", "deleted"])


def downgrade() -> None:
    op.drop_index("ix_instances_host_deleted", "instances")
