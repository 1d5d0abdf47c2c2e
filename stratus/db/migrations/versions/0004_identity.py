"""The embedded identity service: domains, projects, users, roles (with implications), role assignments,
application credentials and tokens (stored by the sha256 of their id)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(), nullable=False), sa.Column("updated_at", sa.DateTime())]


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("name", name="uq_domains_name"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("domain_id", sa.String(64), sa.ForeignKey("domains.id", name="fk_projects_domain_id_domains"),
                  nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("domain_id", "name", name="uq_projects_domain_id_name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("domain_id", sa.String(64), sa.ForeignKey("domains.id", name="fk_users_domain_id_domains"),
                  nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("default_project_id", sa.String(64)),
        sa.Column("extra", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("domain_id", "name", name="uq_users_domain_id_name"),
    )
    op.create_table(
        "roles",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        *_timestamps(),
        sa.UniqueConstraint("name", name="uq_roles_name"),
    )
    op.create_table(
        "implied_roles",
        sa.Column("prior_role_id", sa.String(64),
                  sa.ForeignKey("roles.id", ondelete="CASCADE", name="fk_implied_roles_prior_role_id_roles"),
                  primary_key=True),
        sa.Column("implied_role_id", sa.String(64),
                  sa.ForeignKey("roles.id", ondelete="CASCADE", name="fk_implied_roles_implied_role_id_roles"),
                  primary_key=True),
    )
    op.create_table(
        "role_assignments",
        sa.Column("user_id", sa.String(64),
                  sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_role_assignments_user_id_users"),
                  primary_key=True),
        sa.Column("target_type", sa.String(16), primary_key=True),
        sa.Column("target_id", sa.String(64), primary_key=True),
        sa.Column("role_id", sa.String(64),
                  sa.ForeignKey("roles.id", ondelete="CASCADE", name="fk_role_assignments_role_id_roles"),
                  primary_key=True),
    )
    op.create_index("ix_role_assignments_target_id", "role_assignments", ["target_id"])
    op.create_table(
        "application_credentials",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(64),
                  sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_application_credentials_user_id_users"),
                  nullable=False),
        sa.Column("project_id", sa.String(64),
                  sa.ForeignKey("projects.id", ondelete="CASCADE",
                                name="fk_application_credentials_project_id_projects"),
                  nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("unrestricted", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_application_credentials_user_id_name"),
    )
    op.create_table(
        "tokens",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64),
                  sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_tokens_user_id_users"), nullable=False),
        sa.Column("project_id", sa.String(64)),
        sa.Column("domain_id", sa.String(64)),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("methods", sa.JSON(), nullable=False),
        sa.Column("audit_ids", sa.JSON(), nullable=False),
        sa.Column("application_credential_id", sa.String(64)),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_tokens_user_id", "tokens", ["user_id"])
    op.create_index("ix_tokens_project_id", "tokens", ["project_id"])
    op.create_index("ix_tokens_application_credential_id", "tokens", ["application_credential_id"])
    op.create_index("ix_tokens_expires_at", "tokens", ["expires_at"])


def downgrade() -> None:
    for table in ("tokens", "application_credentials", "role_assignments", "implied_roles", "roles", "users",
                  "projects", "domains"):
        op.drop_table(table)
