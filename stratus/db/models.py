"""The schema, for the whole mission: compute records, placement's resource model, the image store.

Tables are SQLAlchemy Core ``Table`` objects, not ORM classes: the hot paths (listing a thousand servers,
claiming resources) are single statements over rows, and Core keeps them that way. Alembic migrations in
``db/migrations`` build exactly this metadata; ``tests/unit/test_migrations.py`` proves they agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


def _timestamps() -> list[Column]:
    return [Column("created_at", DateTime, nullable=False), Column("updated_at", DateTime)]


# --- services and hypervisors -------------------------------------------------------------------------
services = Table(
    "services", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("binary", String(255), nullable=False),
    Column("topic", String(255)),
    Column("report_count", Integer, nullable=False, default=0),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("disabled_reason", String(255)),
    Column("forced_down", Boolean, nullable=False, default=False),
    Column("last_seen_up", DateTime),
    Column("version", Integer, nullable=False, default=1),
    *_timestamps(),
    UniqueConstraint("host", "binary", name="uq_services_host_binary"),
)

compute_nodes = Table(
    "compute_nodes", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("service_id", Integer, ForeignKey("services.id", ondelete="CASCADE")),
    Column("host", String(255), nullable=False),
    Column("hypervisor_hostname", String(255), nullable=False, unique=True),
    Column("hypervisor_type", String(255), nullable=False),
    Column("hypervisor_version", Integer, nullable=False, default=0),
    Column("host_ip", String(64)),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("local_gb", Integer, nullable=False),
    Column("cpu_info", Text, nullable=False, default="{}"),
    Column("cpu_allocation_ratio", Float, nullable=False),
    Column("ram_allocation_ratio", Float, nullable=False),
    Column("disk_allocation_ratio", Float, nullable=False),
    Column("running_vms", Integer, nullable=False, default=0),
    Column("current_workload", Integer, nullable=False, default=0),
    Column("stats", JSON, nullable=False, default=dict),
    Column("supported_instances", JSON, nullable=False, default=list),
    *_timestamps(),
)

# --- placement: providers, inventories, allocations ---------------------------------------------------
resource_providers = Table(
    "resource_providers", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("generation", Integer, nullable=False, default=0),
    Column("root_provider_id", Integer, ForeignKey("resource_providers.id")),
    Column("parent_provider_id", Integer, ForeignKey("resource_providers.id")),
    *_timestamps(),
)

inventories = Table(
    "inventories", metadata,
    Column("id", Integer, primary_key=True),
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id", ondelete="CASCADE"),
           nullable=False),
    Column("resource_class", String(255), nullable=False),
    Column("total", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, default=0),
    Column("min_unit", Integer, nullable=False, default=1),
    Column("max_unit", Integer, nullable=False),
    Column("step_size", Integer, nullable=False, default=1),
    Column("allocation_ratio", Float, nullable=False, default=1.0),
    *_timestamps(),
    UniqueConstraint("resource_provider_id", "resource_class", name="uq_inventories_provider_class"),
)

consumers = Table(
    "consumers", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("consumer_type", String(32), nullable=False, default="INSTANCE"),
    Column("generation", Integer, nullable=False, default=0),
    *_timestamps(),
)

allocations = Table(
    "allocations", metadata,
    Column("id", Integer, primary_key=True),
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id", ondelete="CASCADE"),
           nullable=False),
    Column("consumer_id", String(36), nullable=False, index=True),
    Column("resource_class", String(255), nullable=False),
    Column("used", Integer, nullable=False),
    *_timestamps(),
    Index("ix_allocations_provider_class", "resource_provider_id", "resource_class"),
)

traits = Table(
    "traits", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    *_timestamps(),
)

resource_provider_traits = Table(
    "resource_provider_traits", metadata,
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id", ondelete="CASCADE"),
           primary_key=True),
    Column("trait_id", Integer, ForeignKey("traits.id", ondelete="CASCADE"), primary_key=True),
)

# --- host aggregates and server groups -----------------------------------------------------------------
aggregates = Table(
    "aggregates", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(255), nullable=False, unique=True),
    *_timestamps(),
)

aggregate_hosts = Table(
    "aggregate_hosts", metadata,
    Column("aggregate_id", Integer, ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True),
    Column("host", String(255), primary_key=True),
)

aggregate_metadata = Table(
    "aggregate_metadata", metadata,
    Column("aggregate_id", Integer, ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(255), nullable=False),
)

instance_groups = Table(
    "instance_groups", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(255)),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("policy", String(255), nullable=False),
    Column("rules", JSON, nullable=False, default=dict),
    *_timestamps(),
)

instance_group_members = Table(
    "instance_group_members", metadata,
    Column("group_id", Integer, ForeignKey("instance_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("instance_uuid", String(36), primary_key=True),
)

# --- flavors and key pairs -------------------------------------------------------------------------------
flavors = Table(
    "flavors", metadata,
    Column("id", Integer, primary_key=True),
    Column("flavorid", String(255), nullable=False, unique=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("memory_mb", Integer, nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("root_gb", Integer, nullable=False),
    Column("ephemeral_gb", Integer, nullable=False, default=0),
    Column("swap", Integer, nullable=False, default=0),
    Column("rxtx_factor", Float, nullable=False, default=1.0),
    Column("vcpu_weight", Integer),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("is_public", Boolean, nullable=False, default=True),
    Column("description", Text),
    *_timestamps(),
)

flavor_extra_specs = Table(
    "flavor_extra_specs", metadata,
    Column("flavor_id", Integer, ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(255), nullable=False),
)

flavor_projects = Table(
    "flavor_projects", metadata,
    Column("flavor_id", Integer, ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", String(255), primary_key=True),
)

key_pairs = Table(
    "key_pairs", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("fingerprint", String(255), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("type", String(16), nullable=False, default="ssh"),
    *_timestamps(),
    UniqueConstraint("user_id", "name", name="uq_key_pairs_user_name"),
)

# --- instances -----------------------------------------------------------------------------------------------
instances = Table(
    "instances", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("user_id", String(255), nullable=False),
    Column("display_name", String(255)),
    Column("display_description", Text),
    Column("hostname", String(255)),
    Column("image_ref", String(255)),
    Column("flavor", JSON, nullable=False),  # the flavor as booted: id, name, sizes, extra_specs
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("root_gb", Integer, nullable=False),
    Column("ephemeral_gb", Integer, nullable=False, default=0),
    Column("vm_state", String(255), nullable=False),
    Column("task_state", String(255)),
    Column("power_state", Integer, nullable=False, default=0),
    Column("host", String(255), index=True),
    Column("node", String(255)),
    Column("launched_on", String(255)),
    Column("availability_zone", String(255)),
    Column("key_name", String(255)),
    Column("key_data", Text),
    Column("user_data", Text),
    Column("config_drive", String(255), nullable=False, default=""),
    Column("access_ip_v4", String(64)),
    Column("access_ip_v6", String(64)),
    Column("reservation_id", String(255), nullable=False),
    Column("launch_index", Integer, nullable=False, default=0),
    Column("progress", Integer, nullable=False, default=0),
    Column("locked", Boolean, nullable=False, default=False),
    Column("locked_by", String(16)),
    Column("root_device_name", String(255)),
    Column("kernel_id", String(255), nullable=False, default=""),
    Column("ramdisk_id", String(255), nullable=False, default=""),
    Column("auto_disk_config", Boolean, nullable=False, default=False),
    Column("system_metadata", JSON, nullable=False, default=dict),
    Column("trusted_certs", JSON(none_as_null=True)),  # trusted image certificate ids (2.63), or NULL
    Column("security_groups", JSON, nullable=False, default=list),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False, index=True),
    Column("launched_at", DateTime),
    Column("terminated_at", DateTime),
    Column("deleted_at", DateTime),
    Column("deleted", Integer, nullable=False, default=0),  # 0, or the row id once soft-deleted
    Index("ix_instances_project_deleted_created", "project_id", "deleted", "created_at"),
    Index("ix_instances_deleted_created", "deleted", "created_at"),
    Index("ix_instances_host_deleted", "host", "deleted"),  # a host's instances (stats, start-up, periodic tasks)
)

instance_info_caches = Table(  # Nova's: the network info of each instance (stratus/network/model.py)
    "instance_info_caches", metadata,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", ondelete="CASCADE"), nullable=False,
           unique=True),
    Column("network_info", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
    Column("deleted_at", DateTime),
    Column("deleted", Integer, nullable=False, default=0),
)

instance_metadata = Table(
    "instance_metadata", metadata,
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(255), nullable=False),
)

instance_tags = Table(
    "instance_tags", metadata,
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(60), primary_key=True),
    Index("ix_instance_tags_tag", "tag"),
)

instance_faults = Table(
    "instance_faults", metadata,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("code", Integer, nullable=False),
    Column("message", String(255), nullable=False),
    Column("details", Text, nullable=False, default=""),
    Column("host", String(255)),
    Column("created_at", DateTime, nullable=False),
)

instance_actions = Table(
    "instance_actions", metadata,
    Column("id", Integer, primary_key=True),
    Column("action", String(255), nullable=False),
    Column("instance_uuid", String(36), nullable=False, index=True),
    Column("request_id", String(255), nullable=False),
    Column("user_id", String(255)),
    Column("project_id", String(255)),
    Column("start_time", DateTime, nullable=False),
    Column("finish_time", DateTime),
    Column("message", String(255)),
    *_timestamps(),
)

instance_actions_events = Table(
    "instance_actions_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("action_id", Integer, ForeignKey("instance_actions.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("event", String(255), nullable=False),
    Column("result", String(255)),
    Column("traceback", Text),
    Column("host", String(255)),
    Column("details", Text),
    Column("start_time", DateTime, nullable=False),
    Column("finish_time", DateTime),
)

request_specs = Table(
    "request_specs", metadata,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36), nullable=False, unique=True),
    Column("spec", JSON, nullable=False),
    # the scheduling lease (db/builds.py): the services.id of the conductor scheduling the build now, NULL while
    # none does (a cast to the conductors is on its way); generation moves at every hand-over (compare-and-swap)
    Column("conductor_id", Integer),
    Column("generation", Integer, nullable=False, default=0, server_default="0"),
    *_timestamps(),
)

block_device_mappings = Table(
    "block_device_mappings", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("source_type", String(255), nullable=False),
    Column("destination_type", String(255), nullable=False),
    Column("boot_index", Integer),
    Column("device_name", String(255)),
    Column("image_id", String(36)),
    Column("volume_id", String(36)),
    Column("volume_size", Integer),
    Column("delete_on_termination", Boolean, nullable=False, default=False),
    Column("tag", String(255)),
    *_timestamps(),
)

migrations = Table(
    "migrations", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("instance_uuid", String(36), nullable=False, index=True),
    Column("migration_type", String(32), nullable=False),
    Column("status", String(255), nullable=False),
    Column("source_compute", String(255)),
    Column("dest_compute", String(255)),
    Column("source_node", String(255)),
    Column("dest_node", String(255)),
    Column("old_flavor", JSON),
    Column("new_flavor", JSON),
    # Nova's columns besides (migration 0009): who asked, the destination host asked for, live progress, hiding
    Column("project_id", String(255)),
    Column("user_id", String(255)),
    Column("dest_host", String(255)),
    Column("hidden", Boolean, nullable=False, default=False, server_default=false()),
    Column("cross_cell_move", Boolean, nullable=False, default=False, server_default=false()),
    Column("memory_total", BigInteger),
    Column("memory_processed", BigInteger),
    Column("memory_remaining", BigInteger),
    Column("disk_total", BigInteger),
    Column("disk_processed", BigInteger),
    Column("disk_remaining", BigInteger),
    Column("deleted", Integer, nullable=False, default=0, server_default="0"),
    Column("deleted_at", DateTime),
    *_timestamps(),
    Index("ix_migrations_status_updated", "status", "updated_at"),
)

# --- quotas -------------------------------------------------------------------------------------------------
quotas = Table(
    "quotas", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("user_id", String(255), primary_key=True, default=""),
    Column("resource", String(255), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
    *_timestamps(),
)

quota_classes = Table(
    "quota_classes", metadata,
    Column("class_name", String(255), primary_key=True),
    Column("resource", String(255), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
    *_timestamps(),
)

# --- the embedded image store (Glance v2 model) --------------------------------------------------------------
images = Table(
    "images", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255)),
    Column("status", String(30), nullable=False),
    Column("visibility", String(20), nullable=False, default="shared"),
    Column("protected", Boolean, nullable=False, default=False),
    Column("os_hidden", Boolean, nullable=False, default=False),
    Column("owner", String(255)),
    Column("size", BigInteger),
    Column("virtual_size", BigInteger),
    Column("checksum", String(32)),
    Column("os_hash_algo", String(64)),
    Column("os_hash_value", String(128)),
    Column("disk_format", String(20)),
    Column("container_format", String(20)),
    Column("min_disk", Integer, nullable=False, default=0),
    Column("min_ram", Integer, nullable=False, default=0),
    *_timestamps(),
)

image_properties = Table(
    "image_properties", metadata,
    Column("image_id", String(36), ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

image_tags = Table(
    "image_tags", metadata,
    Column("image_id", String(36), ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("value", String(255), primary_key=True),
)

image_locations = Table(
    "image_locations", metadata,
    Column("id", Integer, primary_key=True),
    Column("image_id", String(36), ForeignKey("images.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("store", String(255), nullable=False, default="file"),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("status", String(30), nullable=False, default="active"),
    *_timestamps(),
)

image_tasks = Table(  # Glance's tasks of an image: its copy-image imports (GET /v2/images/{id}/tasks)
    "image_tasks", metadata,
    Column("id", String(36), primary_key=True),
    Column("image_id", String(36), ForeignKey("images.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("type", String(30), nullable=False),
    Column("status", String(30), nullable=False),
    Column("owner", String(255)),
    Column("user_id", String(255)),
    Column("request_id", String(255)),
    Column("input", JSON, nullable=False),
    Column("result", JSON),
    Column("message", Text, nullable=False),
    Column("expires_at", DateTime),
    *_timestamps(),
)

# --- the embedded identity service (Keystone v3 subset) ----------------------------------------------------------
domains = Table(
    "domains", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("extra", JSON),  # attributes outside Keystone's own, kept and shown as Keystone does; NULL: none
    *_timestamps(),
)

projects = Table(
    "projects", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("domain_id", String(64), ForeignKey("domains.id"), nullable=False),
    Column("description", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("tags", JSON, nullable=False, default=list),
    Column("extra", JSON),  # as domains.extra
    *_timestamps(),
    UniqueConstraint("domain_id", "name", name="uq_projects_domain_id_name"),
)

users = Table(
    "users", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("domain_id", String(64), ForeignKey("domains.id"), nullable=False),
    Column("password_hash", String(255)),  # bcrypt; NULL: no password login
    Column("enabled", Boolean, nullable=False, default=True),
    Column("default_project_id", String(64)),
    Column("extra", JSON, nullable=False, default=dict),  # email, description and other free attributes
    Column("options", JSON),  # Keystone's user options this service implements (ignore_lockout_failure_attempts)
    Column("failed_auth_count", Integer),  # wrong passwords in a row ([security_compliance] lockout)
    Column("failed_auth_at", DateTime),  # the last of them
    *_timestamps(),
    UniqueConstraint("domain_id", "name", name="uq_users_domain_id_name"),
)

roles = Table(
    "roles", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    *_timestamps(),
)

implied_roles = Table(
    "implied_roles", metadata,
    Column("prior_role_id", String(64), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("implied_role_id", String(64), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)

role_assignments = Table(
    "role_assignments", metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("target_type", String(16), primary_key=True),  # project or domain
    Column("target_id", String(64), primary_key=True, index=True),
    Column("role_id", String(64), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)

application_credentials = Table(
    "application_credentials", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String(255), nullable=False),
    Column("description", Text),
    Column("roles", JSON, nullable=False, default=list),  # [{id, name}] delegated at creation
    Column("unrestricted", Boolean, nullable=False, default=False),
    Column("expires_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("user_id", "name", name="uq_application_credentials_user_id_name"),
)

tokens = Table(
    "tokens", metadata,
    Column("id_hash", String(64), primary_key=True),  # sha256 of the token id; the id itself is never stored
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("project_id", String(64), index=True),
    Column("domain_id", String(64)),
    Column("roles", JSON, nullable=False, default=list),  # [{id, name}] effective at issue, implied ones included
    Column("methods", JSON, nullable=False, default=list),
    Column("audit_ids", JSON, nullable=False, default=list),
    Column("application_credential_id", String(64), index=True),
    Column("issued_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
    Column("revoked", Boolean, nullable=False, default=False),
)

# --- the embedded Networking API (Neutron v2.0 subset) ----------------------------------------------------------
# Columns for what a constraint or a join needs; the descriptive rest of each resource (description, tags, ...) in
# its ``attributes`` JSON. ``physical_network`` is '' rather than NULL so that the unique segment holds on every
# engine (NULLs are distinct in a unique constraint).
networks = Table(
    "networks", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("shared", Boolean, nullable=False, default=False),
    Column("external", Boolean, nullable=False, default=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("mtu", Integer, nullable=False),
    Column("network_type", String(32), nullable=False),
    Column("physical_network", String(64), nullable=False, default=""),
    Column("segmentation_id", Integer),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("revision_number", Integer, nullable=False, default=0),
    *_timestamps(),
    UniqueConstraint("network_type", "physical_network", "segmentation_id", name="uq_networks_segment"),
)

subnets = Table(
    "subnets", metadata,
    Column("id", String(36), primary_key=True),
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False, default=""),
    Column("ip_version", Integer, nullable=False),
    Column("cidr", String(64), nullable=False),
    Column("gateway_ip", String(64)),
    Column("enable_dhcp", Boolean, nullable=False, default=True),
    Column("ipv6_ra_mode", String(16)),
    Column("ipv6_address_mode", String(16)),
    Column("allocation_pools", JSON, nullable=False, default=list),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("revision_number", Integer, nullable=False, default=0),
    *_timestamps(),
)

ports = Table(
    "ports", metadata,
    Column("id", String(36), primary_key=True),
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False, default=""),
    Column("mac_address", String(32), nullable=False),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False),
    Column("device_id", String(255), nullable=False, default="", index=True),
    Column("device_owner", String(255), nullable=False, default=""),
    Column("binding_host_id", String(255), nullable=False, default="", index=True),
    Column("binding_vif_type", String(64), nullable=False, default="unbound"),
    Column("binding_vnic_type", String(64), nullable=False, default="normal"),
    Column("binding_vif_details", JSON, nullable=False, default=dict),
    Column("binding_profile", JSON, nullable=False, default=dict),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("revision_number", Integer, nullable=False, default=0),
    *_timestamps(),
    UniqueConstraint("network_id", "mac_address", name="uq_ports_network_id_mac_address"),
)

# One row per address in use on a network: the primary key is what makes two concurrent allocations of one address
# impossible, whatever the engine's isolation level.
ip_allocations = Table(
    "ip_allocations", metadata,
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("ip_address", String(64), primary_key=True),
    Column("subnet_id", String(36), ForeignKey("subnets.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False, index=True),
)

# Agents of the networking service (Neutron's ``agents``): one row per (agent type, host), its heartbeat the
# time of its last ``report_state``.
network_agents = Table(
    "network_agents", metadata,
    Column("id", String(36), primary_key=True),
    Column("agent_type", String(255), nullable=False),
    Column("binary", String(255), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("availability_zone", String(255)),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("configurations", JSON, nullable=False, default=dict),
    Column("description", String(255)),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_timestamp", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("agent_type", "host", name="uq_network_agents_agent_type_host"),
)

security_groups = Table(
    "security_groups", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False, default=""),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("revision_number", Integer, nullable=False, default=0),
    *_timestamps(),
)

# Each project's ``default`` group, once: the primary key makes two first uses at once create one group.
default_security_groups = Table(
    "default_security_groups", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("security_group_id", String(36), ForeignKey("security_groups.id", ondelete="CASCADE"), nullable=False),
)

security_group_rules = Table(
    "security_group_rules", metadata,
    Column("id", String(36), primary_key=True),
    Column("security_group_id", String(36), ForeignKey("security_groups.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("direction", String(16), nullable=False),
    Column("ethertype", String(8), nullable=False),
    Column("protocol", String(40)),
    Column("port_range_min", Integer),
    Column("port_range_max", Integer),
    Column("remote_ip_prefix", String(64)),
    Column("remote_group_id", String(36), ForeignKey("security_groups.id", ondelete="CASCADE"), index=True),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("revision_number", Integer, nullable=False, default=0),
    *_timestamps(),
)

routers = Table(
    "routers", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("gw_port_id", String(36), ForeignKey("ports.id", ondelete="SET NULL")),
    Column("enable_snat", Boolean, nullable=False, default=True),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("revision_number", Integer, nullable=False, default=0),
    *_timestamps(),
)

floatingips = Table(
    "floatingips", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("floating_network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("floating_ip_address", String(64), nullable=False),
    Column("floating_port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False),
    Column("fixed_port_id", String(36), ForeignKey("ports.id", ondelete="SET NULL"), index=True),
    Column("fixed_ip_address", String(64)),
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="SET NULL"), index=True),
    Column("status", String(16), nullable=False),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("revision_number", Integer, nullable=False, default=0),
    *_timestamps(),
)

# Quotas of the networking service set per project (Neutron's ``quotas``); a resource without a row has the
# configured default.
network_quotas = Table(
    "network_quotas", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("limit", Integer, nullable=False),
)

# Each project's auto-allocated topology (Nova's ``networks: auto``), once.
auto_allocated_topologies = Table(
    "auto_allocated_topologies", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="SET NULL")),
)

# Which groups a port is in (also in the port's attributes, for its view): what finds a remote group's members
# and a group's ports without reading every port.
port_security_groups = Table(
    "port_security_groups", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True),
    Column("security_group_id", String(36), ForeignKey("security_groups.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)
