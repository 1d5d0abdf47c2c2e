"""The embedded Networking API: networks (with their segment), subnets, ports, IP allocations (unique per
network), the networking agents, security groups with their rules and each project's default group, routers,
floating IPs, per-project quotas, auto-allocated topologies and the groups of each port

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _fk(target: str, name: str, ondelete: str = "CASCADE") -> sa.ForeignKey:
    return sa.ForeignKey(target, name=name, ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("external", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("mtu", sa.Integer(), nullable=False),
        sa.Column("network_type", sa.String(32), nullable=False),
        sa.Column("physical_network", sa.String(64), nullable=False),
        sa.Column("segmentation_id", sa.Integer()),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.UniqueConstraint("network_type", "physical_network", "segmentation_id", name="uq_networks_segment"),
    )
    op.create_index("ix_networks_project_id", "networks", ["project_id"])
    op.create_table(
        "subnets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("network_id", sa.String(36), _fk("networks.id", "fk_subnets_network_id_networks"), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway_ip", sa.String(64)),
        sa.Column("enable_dhcp", sa.Boolean(), nullable=False),
        sa.Column("ipv6_ra_mode", sa.String(16)),
        sa.Column("ipv6_address_mode", sa.String(16)),
        sa.Column("allocation_pools", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_index("ix_subnets_network_id", "subnets", ["network_id"])
    op.create_index("ix_subnets_project_id", "subnets", ["project_id"])
    op.create_table(
        "ports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("network_id", sa.String(36), _fk("networks.id", "fk_ports_network_id_networks"), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("mac_address", sa.String(32), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("device_owner", sa.String(255), nullable=False),
        sa.Column("binding_host_id", sa.String(255), nullable=False),
        sa.Column("binding_vif_type", sa.String(64), nullable=False),
        sa.Column("binding_vnic_type", sa.String(64), nullable=False),
        sa.Column("binding_vif_details", sa.JSON(), nullable=False),
        sa.Column("binding_profile", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.UniqueConstraint("network_id", "mac_address", name="uq_ports_network_id_mac_address"),
    )
    op.create_index("ix_ports_binding_host_id", "ports", ["binding_host_id"])
    op.create_index("ix_ports_device_id", "ports", ["device_id"])
    op.create_index("ix_ports_network_id", "ports", ["network_id"])
    op.create_index("ix_ports_project_id", "ports", ["project_id"])
    op.create_table(
        "ip_allocations",
        sa.Column("network_id", sa.String(36),
                  _fk("networks.id", "fk_ip_allocations_network_id_networks"), primary_key=True),
        sa.Column("ip_address", sa.String(64), primary_key=True),
        sa.Column("subnet_id", sa.String(36), _fk("subnets.id", "fk_ip_allocations_subnet_id_subnets"), nullable=False),
        sa.Column("port_id", sa.String(36), _fk("ports.id", "fk_ip_allocations_port_id_ports"), nullable=False),
    )
    op.create_index("ix_ip_allocations_port_id", "ip_allocations", ["port_id"])
    op.create_index("ix_ip_allocations_subnet_id", "ip_allocations", ["subnet_id"])
    op.create_table(
        "network_agents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agent_type", sa.String(255), nullable=False),
        sa.Column("binary", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("availability_zone", sa.String(255)),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("configurations", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(255)),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_timestamp", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("agent_type", "host", name="uq_network_agents_agent_type_host"),
    )
    op.create_table(
        "security_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_index("ix_security_groups_project_id", "security_groups", ["project_id"])
    op.create_table(
        "default_security_groups",
        sa.Column("project_id", sa.String(255), primary_key=True),
        sa.Column("security_group_id", sa.String(36),
                  _fk("security_groups.id", "fk_default_security_groups_security_group_id_security_groups"),
                  nullable=False),
    )
    op.create_table(
        "security_group_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("security_group_id", sa.String(36),
                  _fk("security_groups.id", "fk_security_group_rules_security_group_id_security_groups"),
                  nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("ethertype", sa.String(8), nullable=False),
        sa.Column("protocol", sa.String(40)),
        sa.Column("port_range_min", sa.Integer()),
        sa.Column("port_range_max", sa.Integer()),
        sa.Column("remote_ip_prefix", sa.String(64)),
        sa.Column("remote_group_id", sa.String(36),
                  _fk("security_groups.id", "fk_security_group_rules_remote_group_id_security_groups")),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_index("ix_security_group_rules_project_id", "security_group_rules", ["project_id"])
    op.create_index("ix_security_group_rules_remote_group_id", "security_group_rules", ["remote_group_id"])
    op.create_index("ix_security_group_rules_security_group_id", "security_group_rules", ["security_group_id"])
    op.create_table(
        "routers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("gw_port_id", sa.String(36), _fk("ports.id", "fk_routers_gw_port_id_ports", "SET NULL")),
        sa.Column("enable_snat", sa.Boolean(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_index("ix_routers_project_id", "routers", ["project_id"])
    op.create_table(
        "floatingips",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("floating_network_id", sa.String(36),
                  _fk("networks.id", "fk_floatingips_floating_network_id_networks"), nullable=False),
        sa.Column("floating_ip_address", sa.String(64), nullable=False),
        sa.Column("floating_port_id", sa.String(36),
                  _fk("ports.id", "fk_floatingips_floating_port_id_ports"), nullable=False),
        sa.Column("fixed_port_id", sa.String(36), _fk("ports.id", "fk_floatingips_fixed_port_id_ports", "SET NULL")),
        sa.Column("fixed_ip_address", sa.String(64)),
        sa.Column("router_id", sa.String(36), _fk("routers.id", "fk_floatingips_router_id_routers", "SET NULL")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_index("ix_floatingips_fixed_port_id", "floatingips", ["fixed_port_id"])
    op.create_index("ix_floatingips_project_id", "floatingips", ["project_id"])
    op.create_index("ix_floatingips_router_id", "floatingips", ["router_id"])
    op.create_table(
        "network_quotas",
        sa.Column("project_id", sa.String(255), primary_key=True),
        sa.Column("resource", sa.String(64), primary_key=True),
        sa.Column("limit", sa.Integer(), nullable=False),
    )
    op.create_table(
        "auto_allocated_topologies",
        sa.Column("project_id", sa.String(255), primary_key=True),
        sa.Column("network_id", sa.String(36),
                  _fk("networks.id", "fk_auto_allocated_topologies_network_id_networks"), nullable=False),
        sa.Column("router_id", sa.String(36),
                  _fk("routers.id", "fk_auto_allocated_topologies_router_id_routers", "SET NULL")),
    )
    op.create_table(
        "port_security_groups",
        sa.Column("port_id", sa.String(36), _fk("ports.id", "fk_port_security_groups_port_id_ports"), primary_key=True),
        sa.Column("security_group_id", sa.String(36),
                  _fk("security_groups.id", "fk_port_security_groups_security_group_id_security_groups"),
                  primary_key=True),
    )
    op.create_index("ix_port_security_groups_security_group_id", "port_security_groups", ["security_group_id"])


def downgrade() -> None:
    op.drop_table("port_security_groups")
    op.drop_table("auto_allocated_topologies")
    op.drop_table("network_quotas")
    op.drop_table("floatingips")
    op.drop_table("routers")
    op.drop_table("security_group_rules")
    op.drop_table("default_security_groups")
    op.drop_table("security_groups")
    op.drop_table("network_agents")
    op.drop_table("ip_allocations")
    op.drop_table("ports")
    op.drop_table("subnets")
    op.drop_table("networks")
