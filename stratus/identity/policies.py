"""Nova's policy rules with Nova's current defaults, as data (``nova/policies/*.py``, one list per file).

Every rule is project-scoped (``scope_types=['project']``) and uses the personas of ``nova/policies/base.py``: reads
need ``reader`` on the target's project, writes ``member``, and the ``admin`` role passes everywhere
(``context_is_admin``). Roles imply each other as in Keystone (admin ⊇ member ⊇ reader), so the tokens carry
all three for an admin. ``stratus.identity.policy`` registers these with oslo.policy; an operator's policy file
(``[oslo_policy] policy_file``) overrides any of them by name. Rules of APIs Stratus does not serve yet stay
registered with their group, so that a Nova policy file means the same here.
"""

from __future__ import annotations

from oslo_policy import policy

# nova/policies/base.py: the personas every API rule is written with
ADMIN = "rule:context_is_admin"
PROJECT_MANAGER_OR_ADMIN = "rule:project_manager_or_admin"
PROJECT_MEMBER_OR_ADMIN = "rule:project_member_or_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"
SERVICE_ROLE = "rule:service_or_admin"
RULE_ANY = "@"  # anyone with a valid token
RULE_NOBODY = "!"
ADMIN_OR_USER = f"({ADMIN}) or user_id:%(user_id)s"  # keypairs belong to a user, not to a project

_LEGACY = "Nova's rules before the project personas; kept so that policy files naming them still load."

BASE = [
    policy.RuleDefault("context_is_admin", "role:admin",
                       "Decides what is required for the 'is_admin:True' check to succeed."),
    policy.RuleDefault("admin_or_owner", "is_admin:True or project_id:%(project_id)s",
                       "Default rule for most non-Admin APIs.", deprecated_for_removal=True,
                       deprecated_reason=_LEGACY, deprecated_since="21.0.0"),
    policy.RuleDefault("admin_api", "is_admin:True", "Default rule for most Admin APIs.",
                       deprecated_for_removal=True, deprecated_reason=_LEGACY, deprecated_since="21.0.0"),
    policy.RuleDefault("project_manager_api", "role:manager and project_id:%(project_id)s",
                       "Default rule for Project level management APIs."),
    policy.RuleDefault("project_member_api", "role:member and project_id:%(project_id)s",
                       "Default rule for Project level non admin APIs."),
    policy.RuleDefault("project_reader_api", "role:reader and project_id:%(project_id)s",
                       "Default rule for Project level read only APIs."),
    policy.RuleDefault("service_api", "role:service", "Default rule for service-to-service APIs."),
    policy.RuleDefault("project_manager_or_admin", "rule:project_manager_api or rule:context_is_admin",
                       "Default rule for Project Manager or admin APIs."),
    policy.RuleDefault("project_member_or_admin", "rule:project_member_api or rule:context_is_admin",
                       "Default rule for Project Member or admin APIs."),
    policy.RuleDefault("project_reader_or_admin", "rule:project_reader_api or rule:context_is_admin",
                       "Default rule for Project reader or admin APIs."),
    policy.RuleDefault("service_or_admin", "rule:service_api or rule:context_is_admin",
                       "Default rule for service or admin APIs."),
]


def _api(name: str, check_str: str, description: str, *operations: str) -> policy.DocumentedRuleDefault:
    """One API rule, project-scoped as all of Nova's; each operation is ``"METHOD /path"``."""
    return policy.DocumentedRuleDefault(
        name=name, check_str=check_str, description=description, scope_types=["project"],
        operations=[{"method": method, "path": path} for method, _, path in (op.partition(" ") for op in operations)])


SERVERS = [  # nova/policies/servers.py
    _api("os_compute_api:servers:index", PROJECT_READER_OR_ADMIN,
         "List all servers", "GET /servers"),
    _api("os_compute_api:servers:detail", PROJECT_READER_OR_ADMIN,
         "List all servers with detailed information", "GET /servers/detail"),
    _api("os_compute_api:servers:index:get_all_tenants", ADMIN,
         "List all servers for all projects", "GET /servers"),
    _api("os_compute_api:servers:detail:get_all_tenants", ADMIN,
         "List all servers with detailed information for all projects", "GET /servers/detail"),
    _api("os_compute_api:servers:allow_all_filters", ADMIN,
         "Allow all filters when listing servers", "GET /servers", "GET /servers/detail"),
    _api("os_compute_api:servers:show", PROJECT_READER_OR_ADMIN,
         "Show a server", "GET /servers/{server_id}"),
    _api("compute:server:topology:index", PROJECT_READER_OR_ADMIN,
         "Show the NUMA topology data for a server", "GET /servers/{server_id}/topology"),
    _api("compute:server:topology:host:index", ADMIN,
         "Show the NUMA topology data for a server with host NUMA ID and CPU pinning information",
         "GET /servers/{server_id}/topology"),
    _api("os_compute_api:servers:show:flavor-extra-specs", PROJECT_READER_OR_ADMIN,
         "From 2.47, show the flavor's extra specs in server bodies",
         "GET /servers/detail", "GET /servers/{server_id}", "PUT /servers/{server_id}",
         "POST /servers/{server_id}/action (rebuild)"),
    _api("os_compute_api:servers:show:host_status", ADMIN,
         "Show a server with additional host status information",
         "GET /servers/{server_id}", "GET /servers/detail", "PUT /servers/{server_id}",
         "POST /servers/{server_id}/action (rebuild)"),
    _api("os_compute_api:servers:show:host_status:unknown-only", ADMIN,
         "Show host_status of a server only when it is UNKNOWN",
         "GET /servers/{server_id}", "GET /servers/detail", "PUT /servers/{server_id}",
         "POST /servers/{server_id}/action (rebuild)"),
    _api("os_compute_api:servers:create", PROJECT_MEMBER_OR_ADMIN,
         "Create a server", "POST /servers"),
    _api("os_compute_api:servers:create:forced_host", ADMIN,
         "Create a server on a forced host and/or node, bypassing the scheduler filters", "POST /servers"),
    _api("compute:servers:create:requested_destination", ADMIN,
         "Create a server on a requested host and/or hypervisor_hostname (scheduler filters still apply)",
         "POST /servers"),
    _api("os_compute_api:servers:create:attach_volume", PROJECT_MEMBER_OR_ADMIN,
         "Create a server with the requested volume attached to it", "POST /servers"),
    _api("os_compute_api:servers:create:attach_network", PROJECT_MEMBER_OR_ADMIN,
         "Create a server with the requested network attached to it", "POST /servers"),
    _api("os_compute_api:servers:create:trusted_certs", PROJECT_MEMBER_OR_ADMIN,
         "Create a server with trusted image certificate IDs", "POST /servers"),
    _api("os_compute_api:servers:create:zero_disk_flavor", ADMIN,
         "Create a server with a flavor of 0 disk that is not volume-backed", "POST /servers"),
    _api("network:attach_external_network", ADMIN,
         "Attach an unshared external network to a server", "POST /servers", "POST /servers/{server_id}/os-interface"),
    _api("os_compute_api:servers:delete", PROJECT_MEMBER_OR_ADMIN,
         "Delete a server", "DELETE /servers/{server_id}"),
    _api("os_compute_api:servers:update", PROJECT_MEMBER_OR_ADMIN,
         "Update a server", "PUT /servers/{server_id}"),
    _api("os_compute_api:servers:confirm_resize", PROJECT_MEMBER_OR_ADMIN,
         "Confirm a server resize", "POST /servers/{server_id}/action (confirmResize)"),
    _api("os_compute_api:servers:revert_resize", PROJECT_MEMBER_OR_ADMIN,
         "Revert a server resize", "POST /servers/{server_id}/action (revertResize)"),
    _api("os_compute_api:servers:reboot", PROJECT_MEMBER_OR_ADMIN,
         "Reboot a server", "POST /servers/{server_id}/action (reboot)"),
    _api("os_compute_api:servers:resize", PROJECT_MEMBER_OR_ADMIN,
         "Resize a server", "POST /servers/{server_id}/action (resize)"),
    _api("compute:servers:resize:cross_cell", RULE_NOBODY,
         "Resize a server across cells", "POST /servers/{server_id}/action (resize)"),
    _api("os_compute_api:servers:rebuild", PROJECT_MEMBER_OR_ADMIN,
         "Rebuild a server", "POST /servers/{server_id}/action (rebuild)"),
    _api("os_compute_api:servers:rebuild:trusted_certs", PROJECT_MEMBER_OR_ADMIN,
         "Rebuild a server with trusted image certificate IDs", "POST /servers/{server_id}/action (rebuild)"),
    _api("os_compute_api:servers:create_image", PROJECT_MEMBER_OR_ADMIN,
         "Create an image from a server", "POST /servers/{server_id}/action (createImage)"),
    _api("os_compute_api:servers:create_image:allow_volume_backed", PROJECT_MEMBER_OR_ADMIN,
         "Create an image from a volume backed server", "POST /servers/{server_id}/action (createImage)"),
    _api("os_compute_api:servers:start", PROJECT_MEMBER_OR_ADMIN,
         "Start a server", "POST /servers/{server_id}/action (os-start)"),
    _api("os_compute_api:servers:stop", PROJECT_MEMBER_OR_ADMIN,
         "Stop a server", "POST /servers/{server_id}/action (os-stop)"),
    _api("os_compute_api:servers:trigger_crash_dump", PROJECT_MEMBER_OR_ADMIN,
         "Trigger crash dump in a server", "POST /servers/{server_id}/action (trigger_crash_dump)"),
]

SERVER_METADATA = [  # nova/policies/server_metadata.py
    _api("os_compute_api:server-metadata:index", PROJECT_READER_OR_ADMIN,
         "List all metadata of a server", "GET /servers/{server_id}/metadata"),
    _api("os_compute_api:server-metadata:show", PROJECT_READER_OR_ADMIN,
         "Show metadata for a server", "GET /servers/{server_id}/metadata/{key}"),
    _api("os_compute_api:server-metadata:create", PROJECT_MEMBER_OR_ADMIN,
         "Create metadata for a server", "POST /servers/{server_id}/metadata"),
    _api("os_compute_api:server-metadata:update_all", PROJECT_MEMBER_OR_ADMIN,
         "Replace metadata for a server", "PUT /servers/{server_id}/metadata"),
    _api("os_compute_api:server-metadata:update", PROJECT_MEMBER_OR_ADMIN,
         "Update metadata from a server", "PUT /servers/{server_id}/metadata/{key}"),
    _api("os_compute_api:server-metadata:delete", PROJECT_MEMBER_OR_ADMIN,
         "Delete metadata from a server", "DELETE /servers/{server_id}/metadata/{key}"),
]

SERVER_TAGS = [  # nova/policies/server_tags.py
    _api("os_compute_api:os-server-tags:delete_all", PROJECT_MEMBER_OR_ADMIN,
         "Delete all the server tags", "DELETE /servers/{server_id}/tags"),
    _api("os_compute_api:os-server-tags:index", PROJECT_READER_OR_ADMIN,
         "List all tags for given server", "GET /servers/{server_id}/tags"),
    _api("os_compute_api:os-server-tags:update_all", PROJECT_MEMBER_OR_ADMIN,
         "Replace all tags on specified server with the new set of tags", "PUT /servers/{server_id}/tags"),
    _api("os_compute_api:os-server-tags:delete", PROJECT_MEMBER_OR_ADMIN,
         "Delete a single tag from the specified server", "DELETE /servers/{server_id}/tags/{tag}"),
    _api("os_compute_api:os-server-tags:update", PROJECT_MEMBER_OR_ADMIN,
         "Add a single tag to the server if server has no specified tag", "PUT /servers/{server_id}/tags/{tag}"),
    _api("os_compute_api:os-server-tags:show", PROJECT_READER_OR_ADMIN,
         "Check tag existence on the server", "GET /servers/{server_id}/tags/{tag}"),
]

PAUSE_SERVER = [  # nova/policies/pause_server.py
    _api("os_compute_api:os-pause-server:pause", PROJECT_MEMBER_OR_ADMIN,
         "Pause a server", "POST /servers/{server_id}/action (pause)"),
    _api("os_compute_api:os-pause-server:unpause", PROJECT_MEMBER_OR_ADMIN,
         "Unpause a paused server", "POST /servers/{server_id}/action (unpause)"),
]

MIGRATE_SERVER = [  # nova/policies/migrate_server.py (2024.1 defaults: the project's manager may migrate)
    _api("os_compute_api:os-migrate-server:migrate", PROJECT_MANAGER_OR_ADMIN,
         "Cold migrate a server without specifying a host", "POST /servers/{server_id}/action (migrate)"),
    _api("os_compute_api:os-migrate-server:migrate:host", ADMIN,
         "Cold migrate a server to a specified host", "POST /servers/{server_id}/action (migrate)"),
    _api("os_compute_api:os-migrate-server:migrate_live", PROJECT_MANAGER_OR_ADMIN,
         "Live migrate a server to a new host without a reboot",
         "POST /servers/{server_id}/action (os-migrateLive)"),
    _api("os_compute_api:os-migrate-server:migrate_live:host", ADMIN,
         "Live migrate a server to a specified host without a reboot",
         "POST /servers/{server_id}/action (os-migrateLive)"),
]

SHELVE = [  # nova/policies/shelve.py
    _api("os_compute_api:os-shelve:shelve", PROJECT_MEMBER_OR_ADMIN, "Shelve server",
         "POST /servers/{server_id}/action (shelve)"),
    _api("os_compute_api:os-shelve:unshelve", PROJECT_MEMBER_OR_ADMIN, "Unshelve (restore) shelved server",
         "POST /servers/{server_id}/action (unshelve)"),
    _api("os_compute_api:os-shelve:unshelve_to_host", ADMIN, "Unshelve (restore) shelve offloaded server to a "
         "specific host", "POST /servers/{server_id}/action (unshelve)"),
    _api("os_compute_api:os-shelve:shelve_offload", ADMIN, "Shelf-offload (remove) server",
         "POST /servers/{server_id}/action (shelveOffload)"),
]

RESCUE = [  # nova/policies/rescue.py, admin_password.py, server_diagnostics.py
    _api("os_compute_api:os-rescue", PROJECT_MEMBER_OR_ADMIN, "Rescue a server",
         "POST /servers/{server_id}/action (rescue)"),
    _api("os_compute_api:os-unrescue", PROJECT_MEMBER_OR_ADMIN, "Unrescue a server",
         "POST /servers/{server_id}/action (unrescue)"),
    _api("os_compute_api:os-admin-password", PROJECT_MEMBER_OR_ADMIN,
         "Change the administrative password for a server", "POST /servers/{server_id}/action (changePassword)"),
    _api("os_compute_api:os-server-password:show", PROJECT_READER_OR_ADMIN, "Show the encrypted administrative "
         "password of a server", "GET /servers/{server_id}/os-server-password"),
    _api("os_compute_api:os-server-password:clear", PROJECT_MEMBER_OR_ADMIN, "Clear the encrypted administrative "
         "password of a server", "DELETE /servers/{server_id}/os-server-password"),
    _api("os_compute_api:os-server-diagnostics", ADMIN, "Show the usage data for a server",
         "GET /servers/{server_id}/diagnostics"),
]

CREATE_BACKUP = [  # nova/policies/create_backup.py
    _api("os_compute_api:os-create-backup", PROJECT_MEMBER_OR_ADMIN, "Create a back up of a server",
         "POST /servers/{server_id}/action (createBackup)"),
]

DEFERRED_DELETE = [  # nova/policies/deferred_delete.py
    _api("os_compute_api:os-deferred-delete:restore", PROJECT_MEMBER_OR_ADMIN, "Restore a soft deleted server",
         "POST /servers/{server_id}/action (restore)"),
    _api("os_compute_api:os-deferred-delete:force", PROJECT_MEMBER_OR_ADMIN, "Force delete a server before "
         "deferred cleanup", "POST /servers/{server_id}/action (forceDelete)"),
]

ADMIN_ACTIONS = [  # nova/policies/admin_actions.py
    _api("os_compute_api:os-admin-actions:reset_state", ADMIN, "Reset the state of a given server",
         "POST /servers/{server_id}/action (os-resetState)"),
    _api("os_compute_api:os-admin-actions:inject_network_info", ADMIN, "Inject network information into the "
         "server", "POST /servers/{server_id}/action (injectNetworkInfo)"),
]

EVACUATE = [  # nova/policies/evacuate.py
    _api("os_compute_api:os-evacuate", ADMIN, "Evacuate a server from a failed host to a new host",
         "POST /servers/{server_id}/action (evacuate)"),
]

SERVER_MIGRATIONS = [  # nova/policies/servers_migrations.py (the manager's, host fields the admin's)
    _api("os_compute_api:servers:migrations:show", PROJECT_MANAGER_OR_ADMIN,
         "Show details for an in-progress live migration for a given server",
         "GET /servers/{server_id}/migrations/{migration_id}"),
    _api("os_compute_api:servers:migrations:show:host", ADMIN,
         "Show the hosts of an in-progress live migration", "GET /servers/{server_id}/migrations/{migration_id}"),
    _api("os_compute_api:servers:migrations:force_complete", PROJECT_MANAGER_OR_ADMIN,
         "Force an in-progress live migration for a given server to complete",
         "POST /servers/{server_id}/migrations/{migration_id}/action (force_complete)"),
    _api("os_compute_api:servers:migrations:delete", PROJECT_MANAGER_OR_ADMIN,
         "Delete(Abort) an in-progress live migration", "DELETE /servers/{server_id}/migrations/{migration_id}"),
    _api("os_compute_api:servers:migrations:index", PROJECT_MANAGER_OR_ADMIN,
         "Lists in-progress live migrations for a given server", "GET /servers/{server_id}/migrations"),
    _api("os_compute_api:servers:migrations:index:host", ADMIN,
         "List the hosts of in-progress live migrations", "GET /servers/{server_id}/migrations"),
]

MIGRATIONS = [  # nova/policies/migrations.py (2024.2 defaults)
    _api("os_compute_api:os-migrations:index", PROJECT_MANAGER_OR_ADMIN,
         "List migrations without host info", "GET /os-migrations"),
    _api("os_compute_api:os-migrations:index:all_projects", ADMIN,
         "List migrations for all or cross projects", "GET /os-migrations"),
    _api("os_compute_api:os-migrations:index:host", ADMIN,
         "List migrations with host info", "GET /os-migrations"),
]

SUSPEND_SERVER = [  # nova/policies/suspend_server.py
    _api("os_compute_api:os-suspend-server:resume", PROJECT_MEMBER_OR_ADMIN,
         "Resume suspended server", "POST /servers/{server_id}/action (resume)"),
    _api("os_compute_api:os-suspend-server:suspend", PROJECT_MEMBER_OR_ADMIN,
         "Suspend server", "POST /servers/{server_id}/action (suspend)"),
]

LOCK_SERVER = [  # nova/policies/lock_server.py
    _api("os_compute_api:os-lock-server:lock", PROJECT_MEMBER_OR_ADMIN,
         "Lock a server", "POST /servers/{server_id}/action (lock)"),
    _api("os_compute_api:os-lock-server:unlock", PROJECT_MEMBER_OR_ADMIN,
         "Unlock a server", "POST /servers/{server_id}/action (unlock)"),
    _api("os_compute_api:os-lock-server:unlock:unlock_override", ADMIN,
         "Unlock a server, regardless who locked the server", "POST /servers/{server_id}/action (unlock)"),
]

CONSOLE_OUTPUT = [  # nova/policies/console_output.py
    _api("os_compute_api:os-console-output", PROJECT_MEMBER_OR_ADMIN,
         "Show console output for a server", "POST /servers/{server_id}/action (os-getConsoleOutput)"),
]

IPS = [  # nova/policies/ips.py
    _api("os_compute_api:ips:show", PROJECT_READER_OR_ADMIN, "Show IP addresses details for a network label of a "
         "server", "GET /servers/{server_id}/ips/{network_label}"),
    _api("os_compute_api:ips:index", PROJECT_READER_OR_ADMIN, "List IP addresses that are assigned to a server",
         "GET /servers/{server_id}/ips"),
]

ATTACH_INTERFACES = [  # nova/policies/attach_interfaces.py
    _api("os_compute_api:os-attach-interfaces:list", PROJECT_READER_OR_ADMIN, "List port interfaces attached to a "
         "server", "GET /servers/{server_id}/os-interface"),
    _api("os_compute_api:os-attach-interfaces:show", PROJECT_READER_OR_ADMIN, "Show details of a port interface "
         "attached to a server", "GET /servers/{server_id}/os-interface/{port_id}"),
    _api("os_compute_api:os-attach-interfaces:create", PROJECT_MEMBER_OR_ADMIN, "Attach an interface to a server",
         "POST /servers/{server_id}/os-interface"),
    _api("os_compute_api:os-attach-interfaces:delete", PROJECT_MEMBER_OR_ADMIN, "Detach an interface from a "
         "server", "DELETE /servers/{server_id}/os-interface/{port_id}"),
]

SECURITY_GROUPS = [  # nova/policies/security_groups.py (the server's groups and its actions)
    _api("os_compute_api:os-security-groups:list", PROJECT_READER_OR_ADMIN, "List security groups of server.",
         "GET /servers/{server_id}/os-security-groups"),
    _api("os_compute_api:os-security-groups:add", PROJECT_MEMBER_OR_ADMIN, "Add security groups to server.",
         "POST /servers/{server_id}/action (addSecurityGroup)"),
    _api("os_compute_api:os-security-groups:remove", PROJECT_MEMBER_OR_ADMIN, "Remove security groups from "
         "server.", "POST /servers/{server_id}/action (removeSecurityGroup)"),
]

NETWORK_PROXIES = [  # nova/policies/networks.py, security_groups.py, floating_ip_pools.py, floating_ips.py
    _api("os_compute_api:os-networks:list", PROJECT_READER_OR_ADMIN, "List networks for the project. This API is "
         "proxy calls to the Network service. This is deprecated.", "GET /os-networks"),
    _api("os_compute_api:os-networks:view", PROJECT_READER_OR_ADMIN, "Show network details. This API is proxy calls "
         "to the Network service. This is deprecated.", "GET /os-networks/{network_id}"),
    _api("os_compute_api:os-security-groups:get", PROJECT_READER_OR_ADMIN, "List security groups. This API is "
         "deprecated.", "GET /os-security-groups"),
    _api("os_compute_api:os-security-groups:show", PROJECT_READER_OR_ADMIN, "Show security group. This API is "
         "deprecated.", "GET /os-security-groups/{security_group_id}"),
    _api("os_compute_api:os-security-groups:create", PROJECT_MEMBER_OR_ADMIN, "Create security group. This API is "
         "deprecated.", "POST /os-security-groups"),
    _api("os_compute_api:os-security-groups:update", PROJECT_MEMBER_OR_ADMIN, "Update security group. This API is "
         "deprecated.", "PUT /os-security-groups/{security_group_id}"),
    _api("os_compute_api:os-security-groups:delete", PROJECT_MEMBER_OR_ADMIN, "Delete security group. This API is "
         "deprecated.", "DELETE /os-security-groups/{security_group_id}"),
    _api("os_compute_api:os-security-groups:rule:create", PROJECT_MEMBER_OR_ADMIN, "Create security group Rule. "
         "This API is deprecated.", "POST /os-security-group-rules"),
    _api("os_compute_api:os-security-groups:rule:delete", PROJECT_MEMBER_OR_ADMIN, "Delete security group Rule. "
         "This API is deprecated.", "DELETE /os-security-group-rules/{security_group_id}"),
    _api("os_compute_api:os-floating-ip-pools:list", RULE_ANY, "List floating IP pools. This API is deprecated.",
         "GET /os-floating-ip-pools"),
    _api("os_compute_api:os-floating-ips:list", PROJECT_READER_OR_ADMIN, "List floating IPs. This API is "
         "deprecated.", "GET /os-floating-ips"),
    _api("os_compute_api:os-floating-ips:show", PROJECT_READER_OR_ADMIN, "Show floating IPs. This API is "
         "deprecated.", "GET /os-floating-ips/{floating_ip_id}"),
    _api("os_compute_api:os-floating-ips:create", PROJECT_MEMBER_OR_ADMIN, "Create floating IPs. This API is "
         "deprecated.", "POST /os-floating-ips"),
    _api("os_compute_api:os-floating-ips:delete", PROJECT_MEMBER_OR_ADMIN, "Delete floating IPs. This API is "
         "deprecated.", "DELETE /os-floating-ips/{floating_ip_id}"),
    _api("os_compute_api:os-floating-ips:add", PROJECT_MEMBER_OR_ADMIN, "Associate floating IPs to server. This "
         "API is deprecated.", "POST /servers/{server_id}/action (addFloatingIp)"),
    _api("os_compute_api:os-floating-ips:remove", PROJECT_MEMBER_OR_ADMIN, "Disassociate floating IPs to server. "
         "This API is deprecated.", "POST /servers/{server_id}/action (removeFloatingIp)"),
    _api("os_compute_api:os-tenant-networks:list", PROJECT_READER_OR_ADMIN, "List project networks. This API is "
         "proxy calls to the Network service. This is deprecated.", "GET /os-tenant-networks"),
    _api("os_compute_api:os-tenant-networks:show", PROJECT_READER_OR_ADMIN, "Show project network details. This "
         "API is proxy calls to the Network service. This is deprecated.", "GET /os-tenant-networks/{network_id}"),
]

SERVER_EXTERNAL_EVENTS = [  # nova/policies/server_external_events.py
    _api("os_compute_api:os-server-external-events:create", SERVICE_ROLE, "Create one or more external events",
         "POST /os-server-external-events"),
]

EXTENDED_SERVER_ATTRIBUTES = [  # nova/policies/extended_server_attributes.py
    _api("os_compute_api:os-extended-server-attributes", ADMIN,
         "Return extended attributes for server",
         "GET /servers/{id}", "GET /servers/detail", "PUT /servers/{server_id}",
         "POST /servers/{server_id}/action (rebuild)"),
]

INSTANCE_ACTIONS = [  # nova/policies/instance_actions.py
    _api("os_compute_api:os-instance-actions:events:details", ADMIN,
         "Add the 'details' key in action events for a server",
         "GET /servers/{server_id}/os-instance-actions/{request_id}"),
    _api("os_compute_api:os-instance-actions:events", ADMIN,
         "Add events details in action details for a server",
         "GET /servers/{server_id}/os-instance-actions/{request_id}"),
    _api("os_compute_api:os-instance-actions:list", PROJECT_READER_OR_ADMIN,
         "List actions for a server", "GET /servers/{server_id}/os-instance-actions"),
    _api("os_compute_api:os-instance-actions:show", PROJECT_READER_OR_ADMIN,
         "Show action details for a server", "GET /servers/{server_id}/os-instance-actions/{request_id}"),
]

SERVER_GROUPS = [  # nova/policies/server_groups.py
    _api("os_compute_api:os-server-groups:create", PROJECT_MEMBER_OR_ADMIN,
         "Create a new server group", "POST /os-server-groups"),
    _api("os_compute_api:os-server-groups:delete", PROJECT_MEMBER_OR_ADMIN,
         "Delete a server group", "DELETE /os-server-groups/{server_group_id}"),
    _api("os_compute_api:os-server-groups:index", PROJECT_READER_OR_ADMIN,
         "List all server groups", "GET /os-server-groups"),
    _api("os_compute_api:os-server-groups:index:all_projects", ADMIN,
         "List all server groups for all projects", "GET /os-server-groups"),
    _api("os_compute_api:os-server-groups:show", PROJECT_READER_OR_ADMIN,
         "Show details of a server group", "GET /os-server-groups/{server_group_id}"),
]

KEYPAIRS = [  # nova/policies/keypairs.py
    _api("os_compute_api:os-keypairs:index", ADMIN_OR_USER,
         "List all keypairs", "GET /os-keypairs"),
    _api("os_compute_api:os-keypairs:create", ADMIN_OR_USER,
         "Create a keypair", "POST /os-keypairs"),
    _api("os_compute_api:os-keypairs:delete", ADMIN_OR_USER,
         "Delete a keypair", "DELETE /os-keypairs/{keypair_name}"),
    _api("os_compute_api:os-keypairs:show", ADMIN_OR_USER,
         "Show details of a keypair", "GET /os-keypairs/{keypair_name}"),
]

FLAVOR_MANAGE = [  # nova/policies/flavor_manage.py
    _api("os_compute_api:os-flavor-manage:create", ADMIN,
         "Create a flavor", "POST /flavors"),
    _api("os_compute_api:os-flavor-manage:update", ADMIN,
         "Update a flavor", "PUT /flavors/{flavor_id}"),
    _api("os_compute_api:os-flavor-manage:delete", ADMIN,
         "Delete a flavor", "DELETE /flavors/{flavor_id}"),
]

FLAVOR_EXTRA_SPECS = [  # nova/policies/flavor_extra_specs.py
    _api("os_compute_api:os-flavor-extra-specs:show", PROJECT_READER_OR_ADMIN,
         "Show an extra spec for a flavor", "GET /flavors/{flavor_id}/os-extra_specs/{flavor_extra_spec_key}"),
    _api("os_compute_api:os-flavor-extra-specs:create", ADMIN,
         "Create extra specs for a flavor", "POST /flavors/{flavor_id}/os-extra_specs/"),
    _api("os_compute_api:os-flavor-extra-specs:update", ADMIN,
         "Update an extra spec for a flavor", "PUT /flavors/{flavor_id}/os-extra_specs/{flavor_extra_spec_key}"),
    _api("os_compute_api:os-flavor-extra-specs:delete", ADMIN,
         "Delete an extra spec for a flavor", "DELETE /flavors/{flavor_id}/os-extra_specs/{flavor_extra_spec_key}"),
    _api("os_compute_api:os-flavor-extra-specs:index", PROJECT_READER_OR_ADMIN,
         "List extra specs for a flavor",
         "GET /flavors/{flavor_id}/os-extra_specs/", "POST /flavors", "GET /flavors/detail", "GET /flavors/{flavor_id}",
         "PUT /flavors/{flavor_id}"),
]

FLAVOR_ACCESS = [  # nova/policies/flavor_access.py
    _api("os_compute_api:os-flavor-access:add_tenant_access", ADMIN,
         "Add flavor access to a tenant", "POST /flavors/{flavor_id}/action (addTenantAccess)"),
    _api("os_compute_api:os-flavor-access:remove_tenant_access", ADMIN,
         "Remove flavor access from a tenant", "POST /flavors/{flavor_id}/action (removeTenantAccess)"),
    _api("os_compute_api:os-flavor-access", ADMIN,
         "List the projects that have access to a flavor",
         "GET /flavors/{flavor_id}/os-flavor-access"),
]

QUOTA_SETS = [  # nova/policies/quota_sets.py
    _api("os_compute_api:os-quota-sets:update", ADMIN,
         "Update the quotas", "PUT /os-quota-sets/{tenant_id}"),
    _api("os_compute_api:os-quota-sets:defaults", RULE_ANY,
         "List default quotas", "GET /os-quota-sets/{tenant_id}/defaults"),
    _api("os_compute_api:os-quota-sets:show", PROJECT_READER_OR_ADMIN,
         "Show a quota", "GET /os-quota-sets/{tenant_id}"),
    _api("os_compute_api:os-quota-sets:delete", ADMIN,
         "Revert quotas to defaults", "DELETE /os-quota-sets/{tenant_id}"),
    _api("os_compute_api:os-quota-sets:detail", PROJECT_READER_OR_ADMIN,
         "Show the detail of quota", "GET /os-quota-sets/{tenant_id}/detail"),
]

QUOTA_CLASS_SETS = [  # nova/policies/quota_class_sets.py
    _api("os_compute_api:os-quota-class-sets:show", ADMIN,
         "List quotas for specific quota classes", "GET /os-quota-class-sets/{quota_class}"),
    _api("os_compute_api:os-quota-class-sets:update", ADMIN,
         "Update quotas for specific quota class", "PUT /os-quota-class-sets/{quota_class}"),
]

LIMITS = [  # nova/policies/limits.py
    _api("os_compute_api:limits", RULE_ANY,
         "Show rate and absolute limits for the current user project", "GET /limits"),
    _api("os_compute_api:limits:other_project", ADMIN,
         "Show rate and absolute limits of another project", "GET /limits"),
]

AGGREGATES = [  # nova/policies/aggregates.py
    _api("os_compute_api:os-aggregates:set_metadata", ADMIN,
         "Create or replace metadata for an aggregate", "POST /os-aggregates/{aggregate_id}/action (set_metadata)"),
    _api("os_compute_api:os-aggregates:add_host", ADMIN,
         "Add a host to an aggregate", "POST /os-aggregates/{aggregate_id}/action (add_host)"),
    _api("os_compute_api:os-aggregates:create", ADMIN,
         "Create an aggregate", "POST /os-aggregates"),
    _api("os_compute_api:os-aggregates:remove_host", ADMIN,
         "Remove a host from an aggregate", "POST /os-aggregates/{aggregate_id}/action (remove_host)"),
    _api("os_compute_api:os-aggregates:update", ADMIN,
         "Update name and/or availability zone for an aggregate", "PUT /os-aggregates/{aggregate_id}"),
    _api("os_compute_api:os-aggregates:index", ADMIN,
         "List all aggregates", "GET /os-aggregates"),
    _api("os_compute_api:os-aggregates:delete", ADMIN,
         "Delete an aggregate", "DELETE /os-aggregates/{aggregate_id}"),
    _api("os_compute_api:os-aggregates:show", ADMIN,
         "Show details for an aggregate", "GET /os-aggregates/{aggregate_id}"),
    _api("compute:aggregates:images", ADMIN,
         "Request image caching for an aggregate", "POST /os-aggregates/{aggregate_id}/images"),
]

AVAILABILITY_ZONE = [  # nova/policies/availability_zone.py
    _api("os_compute_api:os-availability-zone:list", RULE_ANY,
         "List availability zone information without host information", "GET /os-availability-zone"),
    _api("os_compute_api:os-availability-zone:detail", ADMIN,
         "List detailed availability zone information with host information", "GET /os-availability-zone/detail"),
]

SERVICES = [  # nova/policies/services.py
    _api("os_compute_api:os-services:list", ADMIN,
         "List all running Compute services in a region", "GET /os-services"),
    _api("os_compute_api:os-services:update", ADMIN,
         "Update a Compute service", "PUT /os-services/{service_id}"),
    _api("os_compute_api:os-services:delete", ADMIN,
         "Delete a Compute service", "DELETE /os-services/{service_id}"),
]

HYPERVISORS = [  # nova/policies/hypervisors.py
    _api("os_compute_api:os-hypervisors:list", ADMIN,
         "List all hypervisors", "GET /os-hypervisors"),
    _api("os_compute_api:os-hypervisors:list-detail", ADMIN,
         "List all hypervisors with details", "GET /os-hypervisors/details"),
    _api("os_compute_api:os-hypervisors:statistics", ADMIN,
         "Show summary statistics for all hypervisors over all compute nodes", "GET /os-hypervisors/statistics"),
    _api("os_compute_api:os-hypervisors:show", ADMIN,
         "Show details for a hypervisor", "GET /os-hypervisors/{hypervisor_id}"),
    _api("os_compute_api:os-hypervisors:uptime", ADMIN,
         "Show the uptime of a hypervisor", "GET /os-hypervisors/{hypervisor_id}/uptime"),
    _api("os_compute_api:os-hypervisors:search", ADMIN,
         "Search hypervisor by hypervisor_hostname pattern",
         "GET /os-hypervisors/{hypervisor_hostname_pattern}/search"),
    _api("os_compute_api:os-hypervisors:servers", ADMIN,
         "List all servers on hypervisors that can match the provided hypervisor_hostname pattern",
         "GET /os-hypervisors/{hypervisor_hostname_pattern}/servers"),
]


def list_rules() -> list[policy.RuleDefault]:
    """Every default, base rules first (also the ``oslo.policy.policies`` entry point: ``oslopolicy-sample-generator
    --namespace stratus`` writes a sample policy file)."""
    return [*BASE, *SERVERS, *SERVER_METADATA, *SERVER_TAGS, *PAUSE_SERVER, *MIGRATE_SERVER, *MIGRATIONS,
            *SERVER_MIGRATIONS, *EVACUATE, *SHELVE, *ADMIN_ACTIONS, *RESCUE, *DEFERRED_DELETE,
            *CREATE_BACKUP, *SUSPEND_SERVER, *LOCK_SERVER, *CONSOLE_OUTPUT, *IPS, *ATTACH_INTERFACES,
            *SECURITY_GROUPS, *NETWORK_PROXIES, *SERVER_EXTERNAL_EVENTS, *EXTENDED_SERVER_ATTRIBUTES, *INSTANCE_ACTIONS,
            *SERVER_GROUPS, *KEYPAIRS, *FLAVOR_MANAGE, *FLAVOR_EXTRA_SPECS, *FLAVOR_ACCESS, *QUOTA_SETS,
            *QUOTA_CLASS_SETS, *LIMITS, *AGGREGATES, *AVAILABILITY_ZONE, *SERVICES, *HYPERVISORS,
            *READ_SIDE]


READ_SIDE = [  # nova/policies/extensions.py, simple_tenant_usage.py, instance_usage_audit_log.py, hosts.py
    _api("os_compute_api:extensions", RULE_ANY,
         "List available extensions and show information for an extension", "GET /extensions"),
    _api("os_compute_api:os-simple-tenant-usage:show", PROJECT_READER_OR_ADMIN,
         "Show usage statistics for a specific tenant", "GET /os-simple-tenant-usage/{tenant_id}"),
    _api("os_compute_api:os-simple-tenant-usage:list", ADMIN,
         "List per tenant usage statistics for all tenants", "GET /os-simple-tenant-usage"),
    _api("os_compute_api:os-instance-usage-audit-log:list", ADMIN,
         "List all usage audits", "GET /os-instance_usage_audit_log"),
    _api("os_compute_api:os-instance-usage-audit-log:show", ADMIN,
         "List all usage audits occurred before a specified time for all servers on all compute hosts",
         "GET /os-instance_usage_audit_log/{before_timestamp}"),
    _api("os_compute_api:os-hosts:list", ADMIN, "List physical hosts", "GET /os-hosts"),
    _api("os_compute_api:os-hosts:show", ADMIN, "Show physical host", "GET /os-hosts/{host_name}"),
    _api("os_compute_api:os-hosts:update", ADMIN, "Update physical host", "PUT /os-hosts/{host_name}"),
    _api("os_compute_api:os-hosts:reboot", ADMIN, "Reboot physical host", "GET /os-hosts/{host_name}/reboot"),
    _api("os_compute_api:os-hosts:shutdown", ADMIN, "Shutdown physical host",
         "GET /os-hosts/{host_name}/shutdown"),
    _api("os_compute_api:os-hosts:start", ADMIN, "Start physical host", "GET /os-hosts/{host_name}/startup"),
]
