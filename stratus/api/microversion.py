"""The Compute API's microversions: one commented list, negotiation from the request headers.

The maximum is only what Stratus really implements for every resource it serves; ``docs/api/version_history.rst``
says the same in prose and ``tests/unit/test_microversion.py`` keeps the two in step.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from stratus.api.errors import Fault

# (version, what it changes) -- each is served exactly as Nova serves it.
VERSIONS: list[tuple[str, str]] = [
    ("2.1", "The v2.1 API: servers, flavors, keypairs, server metadata, limits."),
    ("2.2", "Key pairs have a 'type' (ssh or x509); create takes it."),
    ("2.3", "Server show/detail add the extended attributes reservation_id, launch_index, kernel_id, "
            "ramdisk_id, hostname, root_device_name, user_data (admin)."),
    ("2.4", "Server attach volume gains read_only (no volumes here: nothing to change)."),
    ("2.5", "Admins may filter servers by ip6."),
    ("2.6", "Remote consoles API (not served: 404)."),
    ("2.7", "Flavor access checks is_public before adding a tenant."),
    ("2.8", "MKS remote console (not served: 404)."),
    ("2.9", "Server show/detail add 'locked'."),
    ("2.10", "Key pair APIs take user_id for admins."),
    ("2.11", "Services can be forced down (os-services force-down, forced_down in the list)."),
    ("2.12", "Virtual interfaces expose net_id (not served)."),
    ("2.13", "Server groups show user_id and project_id."),
    ("2.14", "Evacuate drops onSharedStorage and no longer returns adminPass."),
    ("2.15", "Server groups gain the soft-affinity and soft-anti-affinity policies."),
    ("2.16", "Server show/detail add host_status for admins."),
    ("2.17", "Trigger crash dump action."),
    ("2.18", "The project id in the URL is optional."),
    ("2.19", "Servers have a 'description' (create, update, rebuild, show)."),
    ("2.20", "Volume attach in more states (no volumes here)."),
    ("2.21", "Instance actions of deleted servers are shown."),
    ("2.22", "Force-complete of live migrations."),
    ("2.23", "Migration type in os-migrations; a server's live migrations listed and shown."),
    ("2.24", "Abort of live migrations."),
    ("2.25", "Live migration block_migration auto; disk_over_commit removed."),
    ("2.26", "Server tags: 'tags' in show/detail and tag filters."),
    ("2.27", "OpenStack-API-Version header accepted."),
    ("2.28", "Hypervisor cpu_info as an object."),
    ("2.29", "Evacuate force."),
    ("2.30", "Live migrate force."),
    ("2.31", "Serial console URLs (not served yet)."),
    ("2.32", "Device tags on networks and block devices at create."),
    ("2.33", "Hypervisors pagination (limit, marker, hypervisors_links)."),
    ("2.34", "Live migration pre-checks run after the answer."),
    ("2.35", "Key pairs list takes limit and marker."),
    ("2.36", "Proxy APIs (images: 404 from here) and quota network items removed."),
    ("2.37", "'networks' is required in server create: 'auto', 'none' or a list."),
    ("2.38", "Invalid status filter values are a 400."),
    ("2.39", "Image-metadata proxy removed (404 from here), so is maxImageMeta; createImage skips the metadata quota."),
    ("2.40", "Simple tenant usage pagination (limit, marker, links)."),
    ("2.41", "Aggregates have a uuid."),
    ("2.42", "Device tags restored for networks and block devices."),
    ("2.43", "os-hosts removed (404 from here)."),
    ("2.44", "Network proxy actions removed (not served)."),
    ("2.45", "createImage and createBackup return image_id in the body, no Location header."),
    ("2.46", "Signalling only: X-OpenStack-Request-ID as well as X-Compute-Request-ID on every response."),
    ("2.47", "Server show/detail embed the flavor (original_name, sizes, extra_specs)."),
    ("2.48", "Server diagnostics are standardised."),
    ("2.49", "Tagged volume and interface attach (no volumes or attach APIs here yet)."),
    ("2.50", "Quota classes show server group quotas, drop network ones."),
    ("2.51", "Instance action events shown to every caller (the volume-extended external event: not served)."),
    ("2.52", "Server create takes 'tags'."),
    ("2.53", "Services and hypervisors identified by uuid; PUT /os-services/{uuid}; hypervisor filters."),
    ("2.54", "Rebuild takes key_name."),
    ("2.55", "Flavors have a 'description': create, PUT /flavors/{id}, in every flavor body."),
    ("2.56", "Cold migrate takes a target host."),
    ("2.57", "Personality removed from server create; maxPersonality* and injected_file* quotas removed."),
    ("2.58", "Instance actions: updated_at; limit, marker and changes-since."),
    ("2.59", "os-migrations pagination, changes-since and uuid."),
    ("2.60", "Multiattach volumes (no volumes here)."),
    ("2.61", "Flavor bodies (detail, show, create, update) carry extra_specs, if policy allows."),
    ("2.62", "Instance action events show hostId, and host to admins."),
    ("2.63", "Server create takes trusted_image_certificates; show/detail/update return them."),
    ("2.64", "Server groups take policy and rules (max_server_per_host for anti-affinity)."),
    ("2.65", "Abort of live migrations in queued and preparing status (os-migrations: see the moves)."),
    ("2.66", "changes-before filter on the servers list and the instance actions list."),
    ("2.67", "block_device_mapping_v2 takes volume_type (refused: there is no block storage)."),
    ("2.68", "Live migrate and evacuate drop 'force'."),
    ("2.69", "Minimal server and service bodies from down cells (one cell here: never down)."),
    ("2.70", "Device tags in os-interface and os-volume_attachments bodies (not served)."),
    ("2.71", "Server show and update (and rebuild) show server_groups."),
    ("2.72", "Ports with a resource request at server create (no such ports here: nothing to change)."),
    ("2.73", "Lock takes locked_reason; server bodies show locked_reason; 'locked' filter and sort key."),
    ("2.74", "Server create takes host and hypervisor_hostname (admin), validated by the scheduler."),
    ("2.75", "Strict server list query; update returns the full server; flavor swap 0; hypervisor servers always."),
    ("2.76", "power-update external event (os-server-external-events not served)."),
    ("2.77", "Unshelve takes availability_zone (shelve: see the moves)."),
    ("2.78", "GET /servers/{id}/topology: the server's NUMA topology."),
    ("2.79", "Volume attachments take delete_on_termination (no volumes here)."),
    ("2.80", "Migrations show user_id and project_id (os-migrations: see the moves)."),
    ("2.81", "POST /os-aggregates/{id}/images: the aggregate's hosts pre-cache images."),
    ("2.82", "accelerator-request-bound external event (not served)."),
    ("2.83", "More server list filters for non-admins."),
    ("2.84", "Instance action events show 'details'."),
    ("2.85", "PUT of a volume attachment's delete_on_termination (no volumes here)."),
    ("2.86", "Flavor extra specs of the known namespaces are validated."),
    ("2.87", "Rescue of volume-backed servers (rescue: see the moves)."),
    ("2.88", "Hypervisors lose their statistics fields; /os-hypervisors/statistics is gone."),
    ("2.89", "Volume attachments show attachment_id and bdm_uuid (no volumes here)."),
    ("2.90", "Server create and update take hostname; OS-EXT-SRV-ATTR:hostname for every caller."),
    ("2.91", "Unshelve to a host and unpinning of the AZ (shelve: see the moves)."),
    ("2.92", "Key pair create imports only: public_key required; names may have @ and dots."),
    ("2.93", "Rebuild of volume-backed servers (no volumes here)."),
    ("2.94", "Server hostnames may be FQDNs."),
    ("2.95", "Evacuate leaves the server stopped (evacuate: see the moves)."),
    ("2.96", "Server bodies show pinned_availability_zone."),
    ("2.97", "Server shares API (not served: no shared file systems)."),
    ("2.98", "Server bodies show the image's properties."),
    ("2.99", "spice-direct console type (consoles not served)."),
    ("2.100", "Server bodies show scheduler_hints."),
]


class APIVersion(NamedTuple):
    major: int
    minor: int

    @classmethod
    @functools.lru_cache(maxsize=256)  # bounded: the text comes from any client's header
    def parse(cls, text: str) -> APIVersion:
        match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text)
        if not match:
            raise ValueError(text)
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


MIN_VERSION = APIVersion.parse(VERSIONS[0][0])
MAX_VERSION = APIVersion.parse(VERSIONS[-1][0])


def from_headers(headers: dict[str, str] | object) -> APIVersion:
    """The version a request asks for; ``latest`` is the maximum; absent is the minimum; out of range is a 406."""
    get = headers.get  # type: ignore[attr-defined]
    text = None
    new_style = get("openstack-api-version")
    if new_style:
        for item in new_style.split(","):
            parts = item.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == "compute":
                text = parts[1]
                break
    if text is None:
        text = get("x-openstack-nova-api-version")
    if not text:
        return MIN_VERSION
    if text.strip().lower() == "latest":
        return MAX_VERSION
    try:
        version = APIVersion.parse(text)
    except ValueError:
        raise Fault(400, f"API Version String {text} is of invalid format. Must be of format "
                         "MajorNum.MinorNum.") from None
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise Fault(406, f"Version {text} is not supported by the API. Minimum is {MIN_VERSION} and "
                         f"maximum is {MAX_VERSION}.")
    return version


def response_headers(version: APIVersion) -> dict[str, str]:
    return {
        "OpenStack-API-Version": f"compute {version}",
        "X-OpenStack-Nova-API-Version": str(version),
        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    }


@functools.lru_cache(maxsize=256)  # the versions served: a hundred
def raw_response_headers(version: APIVersion) -> tuple[tuple[bytes, bytes], ...]:
    """``response_headers`` as an ASGI response carries them (lower-case names, latin-1), made once a version."""
    return tuple((name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in response_headers(version).items())
