"""Configuration: INI files with Nova's section and option names, read by oslo.config.

Nothing reads a global: ``load()`` builds one ``ConfigOpts`` and every service is handed it, so tests build
their own with ``load(overrides=...)`` and never patch.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from oslo_config import cfg
from oslo_policy import opts as policy_opts

from stratus import keystoneauth_options, sizelimit
from stratus.network.server import nova as nova_notifier
from stratus.network.server import options as network_options
from stratus.rpc import options as rpc_options

DEFAULT_OPTS = [
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="(this machine's name)",
               help="Name of this node (compute host name)."),
    cfg.StrOpt("state_path", default=os.path.join(os.getcwd(), "data"), sample_default="./data",
               help="Directory holding the SQLite database, image store and instance files."),
    cfg.StrOpt("transport_url", default="local://", secret=True,
               help="Messaging transport URL: local:// (in-process, one process only) or RabbitMQ as "
                    "rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost (the first host that answers; the "
                    "others on failover)."),
    cfg.StrOpt("compute_driver", default="fake.FakeDriver",
               help="Virt driver: fake.FakeDriver (simulated hosts) or libvirt.LibvirtDriver (QEMU/KVM)."),
    cfg.StrOpt("instances_path", default=None, sample_default="(state_path)/instances",
               help="Where a compute host keeps instance files (disks, console logs) and its image cache "
                    "(_base); default state_path/instances."),
    cfg.IntOpt("shutdown_timeout", default=60, min=0,
               help="Seconds a guest has to shut down cleanly (ACPI) on stop or SOFT reboot before it is "
                    "powered off; an image's os_shutdown_timeout property overrides it."),
    cfg.IntOpt("vif_plugging_timeout", default=300, min=0,
               help="Seconds a build waits for the Networking service's network-vif-plugged event of each of its "
                    "ports before spawning is judged failed (0: do not wait)."),
    cfg.BoolOpt("vif_plugging_is_fatal", default=True,
                help="A build whose network-vif-plugged events did not come within vif_plugging_timeout fails "
                     "(False: it goes on without them)."),
    cfg.IntOpt("instance_build_timeout", default=3600, min=0,
               help="Seconds an instance may stay in BUILD (from its creation) before it goes to ERROR with the "
                    "fault 'Instance build timed out. Set to error state.' and its claims are released (0: never). "
                    "Each compute host checks its own builds, the conductors those no host has started. "
                    "Stratus-specific default (Nova's is 0): an hour is far longer than a healthy build takes, "
                    "even a large image downloaded to a host that emulates (TCG), and short enough that nothing "
                    "stays in BUILD for good."),
    cfg.IntOpt("max_concurrent_builds", default=10, min=0,
               help="Builds a compute host runs at once (0: no limit), as Nova's: a build cast to the host beyond "
                    "that waits, still in BUILD, until one of the running ones ends (active, error, rescheduled "
                    "or deleted). Each simulated host of the fake driver counts its own."),
    cfg.IntOpt("sync_power_state_interval", default=600,
               help="Seconds between syncs of every instance's power state with the hypervisor (negative: "
                    "never). Drivers with lifecycle events (libvirt) report changes at once as well."),
    cfg.StrOpt("running_deleted_instance_action", default="reap", choices=["reap", "log", "shutdown", "noop"],
               help="What a compute host does with a guest the hypervisor runs for an instance that is deleted "
                    "(or unknown) in the database, found at start-up and by the periodic check."),
    cfg.IntOpt("running_deleted_instance_poll_interval", default=1800,
               help="Seconds between checks for guests of deleted instances (0: only at start-up)."),
    cfg.IntOpt("resize_confirm_window", default=0, min=0,
               help="Seconds after which a resize or cold migration waiting in VERIFY_RESIZE is confirmed "
                    "automatically by its destination host's periodic task (0: never; the user confirms)."),
    cfg.IntOpt("reclaim_instance_interval", default=0, min=0,
               help="Seconds a deleted server is kept SOFT_DELETED (its guest off, its claim held; the restore "
                    "action brings it back, forceDelete deletes it now) before its host's periodic task deletes "
                    "it; 0: a delete deletes at once."),
    cfg.IntOpt("shelved_offload_time", default=0, min=-1,
               help="Seconds a shelved server keeps its host (its guest off, its resources claimed) before the "
                    "host's periodic task offloads it (destroys the guest, gives back the claim): 0 offloads at "
                    "once, -1 never."),
    cfg.IntOpt("shelved_poll_interval", default=3600,
               help="Seconds between a host's checks for shelved servers due to be offloaded (<= 0: never)."),
    cfg.BoolOpt("allow_resize_to_same_host", default=False,
                help="Let the scheduler choose an instance's own host for a resize (its usage there is counted "
                     "twice until the resize is confirmed). A cold migration always goes to another host."),
    cfg.BoolOpt("resume_guests_state_on_host_boot", default=False,
                help="At compute start-up, start the guests of active instances that the hypervisor has "
                     "stopped (after a host reboot, say)."),
    cfg.FloatOpt("cpu_allocation_ratio", default=4.0, help="Virtual CPU to physical CPU allocation ratio."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.0, help="Virtual RAM to physical RAM allocation ratio."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, help="Virtual disk to physical disk allocation ratio."),
    cfg.IntOpt("reserved_host_memory_mb", default=512, help="RAM kept back for the host."),
    cfg.IntOpt("reserved_host_disk_mb", default=0, help="Disk kept back for the host."),
    cfg.IntOpt("reserved_host_cpus", default=0, help="Host CPUs kept back for the host."),
    cfg.IntOpt("service_down_time", default=60, help="Seconds without a heartbeat after which a service is down."),
    cfg.IntOpt("report_interval", default=10, help="Seconds between service heartbeats."),
    cfg.IntOpt("update_resources_interval", default=60,
               help="Seconds between reports of each compute host's resources to placement."),
    cfg.StrOpt("default_availability_zone", default="nova", help="Availability zone of compute hosts."),
    cfg.StrOpt("internal_service_availability_zone", default="internal",
               help="Availability zone shown for services other than nova-compute."),
    cfg.StrOpt("default_schedule_zone", default=None, help="Availability zone used when a boot names none."),
    cfg.StrOpt("instance_name_template", default="instance-%08x", help="Hypervisor name of an instance."),
    cfg.IntOpt("rpc_response_timeout", default=60, help="Seconds to wait for the reply of an RPC call."),
    cfg.IntOpt("long_rpc_timeout", default=1800,
               help="Seconds to wait for the reply of an RPC call that is known to take long (a host's image "
                    "pre-cache, which downloads images)."),
    *rpc_options.DEFAULT_OPTS,
    cfg.StrOpt("osapi_compute_listen", default="127.0.0.1", help="Address of the compute API."),
    cfg.PortOpt("osapi_compute_listen_port", default=8774, help="Port of the compute API."),
    cfg.IntOpt("osapi_compute_workers", default=None, min=1,
               help="Nova's name of [api] workers (that one wins when both are set)."),
    cfg.StrOpt("metadata_listen", default="127.0.0.1", help="Address of the metadata API (Nova's metadata service)."),
    cfg.PortOpt("metadata_listen_port", default=8775, help="Port of the metadata API."),
    cfg.BoolOpt("force_config_drive", default=False,
                help="Give every instance built from now on a config drive, asked for or not."),
    cfg.StrOpt("config_drive_format", default="iso9660", choices=["iso9660"],
               help="Config drive format: an ISO 9660 volume labelled config-2 (Nova's vfat is not offered)."),
    cfg.BoolOpt("debug", default=False, help="Log at DEBUG level."),
    cfg.StrOpt("log_level", default="INFO", help="Log level when debug is off."),
]

DATABASE_OPTS = [
    cfg.StrOpt("connection", default=None, secret=True,
               help="SQLAlchemy URL; defaults to a SQLite file in state_path."),
    cfg.IntOpt("max_pool_size", default=10, help="Connections kept in the pool (server databases)."),
]

API_OPTS = [
    cfg.StrOpt("auth_strategy", default="embedded", choices=["embedded", "noauth2", "keystone"],
               help="embedded: Keystone v3 tokens from the identity API of this cloud ([identity]), checked "
                    "against its database; noauth2: the token 'user:project' names the caller and 'admin' is an "
                    "admin (tests and benchmarks only); keystone: a real Keystone through keystonemiddleware's "
                    "auth_token, configured in [keystone_authtoken] (docs/keystone.md); no identity API is served."),
    cfg.IntOpt("workers", default=None, min=1,
               help="Processes of `stratus api`, all serving the same compute, image and identity ports (each with "
                    "its own event loop, database pool and transport connection); default: the number of CPUs "
                    "with a shared transport (rabbit://), as Nova's osapi_compute_workers. With the in-process "
                    "transport more than 1 is refused: casts would reach no conductor. `stratus all-in-one` is "
                    "one process and ignores it."),
    cfg.IntOpt("max_limit", default=1000, help="Most items one list response returns."),
    cfg.BoolOpt("enable_instance_password", default=True,
                help="Return the server's admin password in the answers of create and of evacuate (before "
                     "2.14); off, the answers leave adminPass out."),
    cfg.StrOpt("compute_link_prefix", default=None, help="Base URL used in links instead of the request's."),
    cfg.ListOpt("vendordata_providers", item_type=cfg.types.String(choices=["StaticJSON"]), default=["StaticJSON"],
                help="Sources of vendor_data.json and vendor_data2.json: StaticJSON is the file "
                     "vendordata_jsonfile_path (Nova's DynamicJSON is not offered)."),
    cfg.StrOpt("vendordata_jsonfile_path", default=None,
               help="JSON file served as vendor_data.json (and vendor_data2.json's 'static'); unset: {}."),
    cfg.IntOpt("metadata_cache_expiration", default=15, min=0,
               help="Seconds the metadata API keeps an instance's metadata; 0: no caching."),
    cfg.StrOpt("dhcp_domain", default="novalocal",
               help="Domain appended to the instance hostname in the metadata; empty: the bare hostname."),
    cfg.StrOpt("config_drive_skip_versions",
               default="1.0 2007-01-19 2007-03-01 2007-08-29 2007-10-10 2007-12-15 2008-02-01 2008-09-01",
               help="EC2 metadata versions (space separated) left off config drives."),
]

SCHEDULER_OPTS = [
    cfg.IntOpt("max_attempts", default=3, min=1, help="Hosts tried for one build, the first included."),
    cfg.FloatOpt("host_state_sync_interval", default=2.0, min=0.1,
                 help="Seconds between a scheduler's re-reads of what changed in the database (providers whose "
                      "generation moved, services, aggregates, compute node stats). Stratus-specific: Nova's "
                      "scheduler re-reads every host on every request instead. Changes made through the API "
                      "reach schedulers at once by fanout; this bounds the staleness of everything else."),
]

CONDUCTOR_OPTS = [
    cfg.IntOpt("build_recovery_interval", default=60, min=1,
               help="Seconds between each conductor's passes over builds still waiting for a host (Stratus-specific): "
                    "it schedules again those whose conductor died (its service is down, or it is this conductor's "
                    "own previous run) and those no conductor took for this long, and puts in ERROR those past "
                    "[DEFAULT] instance_build_timeout. The first pass runs when the conductor starts."),
]

FILTER_SCHEDULER_OPTS = [
    cfg.IntOpt("host_subset_size", default=1, min=1, help="Pick at random among this many best hosts."),
    cfg.ListOpt("enabled_filters",
                default=["ComputeFilter", "AvailabilityZoneFilter", "ComputeCapabilitiesFilter",
                         "ImagePropertiesFilter", "ServerGroupAntiAffinityFilter", "ServerGroupAffinityFilter"],
                help="Filters run in this order for every request (Nova's class names)."),
    cfg.ListOpt("weight_classes", default=["nova.scheduler.weights.all_weighers"],
                help="Weighers by class name or dotted path; nova.scheduler.weights.all_weighers means all."),
    cfg.FloatOpt("ram_weight_multiplier", default=1.0, help="Weight of free RAM; negative stacks."),
    cfg.FloatOpt("cpu_weight_multiplier", default=1.0, help="Weight of free VCPUs; negative stacks."),
    cfg.FloatOpt("disk_weight_multiplier", default=1.0, help="Weight of free disk; negative stacks."),
    cfg.FloatOpt("io_ops_weight_multiplier", default=-1.0,
                 help="Weight of the number of builds, resizes and snapshots under way; negative prefers idle "
                      "hosts."),
    cfg.FloatOpt("build_failure_weight_multiplier", default=1000000.0,
                 help="Weight against hosts that failed builds recently; large so they are tried last."),
    cfg.FloatOpt("soft_affinity_weight_multiplier", default=1.0, min=0.0,
                 help="Weight of a soft-affinity group's members already on the host."),
    cfg.FloatOpt("soft_anti_affinity_weight_multiplier", default=1.0, min=0.0,
                 help="Weight against a soft-anti-affinity group's members already on the host."),
]

QUOTA_OPTS = [
    cfg.IntOpt("instances", default=10, help="Servers per project."),
    cfg.IntOpt("cores", default=20, help="Instance cores per project."),
    cfg.IntOpt("ram", default=51200, help="Megabytes of instance RAM per project."),
    cfg.IntOpt("metadata_items", default=128, help="Metadata items per server."),
    cfg.IntOpt("key_pairs", default=100, help="Key pairs per user."),
    cfg.IntOpt("server_groups", default=10, help="Server groups per project."),
    cfg.IntOpt("server_group_members", default=10, help="Servers per server group."),
    cfg.IntOpt("injected_files", default=5, help="Injected files per server."),
    cfg.IntOpt("injected_file_content_bytes", default=10240, help="Bytes per injected file."),
    cfg.IntOpt("injected_file_path_length", default=255, help="Length of an injected file path."),
]

GLANCE_OPTS = [
    cfg.ListOpt("api_servers", default=None,
                help="Image service endpoints; unset means the embedded image store of this process."),
]

IMAGE_STORE_OPTS = [
    cfg.StrOpt("listen", default="127.0.0.1", help="Address of the embedded image API."),
    cfg.PortOpt("listen_port", default=9292, help="Port of the embedded image API."),
    cfg.StrOpt("filesystem_store_datadir", default=None, help="Where image data lives; default state_path/images."),
    cfg.ListOpt("enabled_backends", default=[], sample_default="(one file store, 'file')",
                help="Glance multi-store: the stores as NAME:TYPE pairs, TYPE file or rbd (e.g. 'local:file, "
                     "ceph:rbd'). Each store's options are in the section [NAME]: filesystem_store_datadir (file); "
                     "rbd_store_pool, rbd_store_ceph_conf, rbd_store_user (rbd). Unset: one file store 'file' at "
                     "filesystem_store_datadir."),
    cfg.StrOpt("default_backend", default=None, sample_default="(the first of enabled_backends)",
               help="The store new image data goes to unless the upload names one (X-Image-Meta-Store)."),
    cfg.BoolOpt("show_image_direct_url", default=False,
                help="Show an image's first location as 'direct_url' (Glance's option of the same name)."),
    cfg.BoolOpt("show_multiple_locations", default=False,
                help="Show an image's 'locations' (url and store of each copy of its data), as Glance does."),
]

IDENTITY_OPTS = [
    cfg.StrOpt("listen", default="127.0.0.1", help="Address of the embedded identity API."),
    cfg.PortOpt("listen_port", default=5000, help="Port of the embedded identity API."),
    cfg.IntOpt("token_expiration", default=3600, min=1, help="Seconds a token is valid after it is issued."),
    cfg.StrOpt("region_name", default="RegionOne", help="Region of every endpoint in the service catalog."),
    cfg.StrOpt("public_endpoint_host", default=None, sample_default="(the listen address)",
               help="Host name or address in the catalog's endpoint URLs. Unset: each API's listen address, or, "
                    "for an API listening on every address (0.0.0.0 or ::), this machine's address on its "
                    "default route."),
    cfg.StrOpt("clouds_yaml", default="clouds.yaml",
               help="File (relative to the working directory) where the all-in-one writes the clouds.yaml entry "
                    "'stratus' for the bootstrap admin; other entries of an existing file are kept. Empty: none."),
    cfg.IntOpt("password_hash_rounds", default=12, min=4, max=31,
               help="bcrypt cost factor (log2 of the rounds) for passwords and application credential secrets."),
    cfg.FloatOpt("token_cache_time", default=5.0, min=0.0,
                 help="Seconds the compute and image APIs trust a token they have validated before reading it "
                      "again; a revocation made through another process takes effect within this time "
                      "(through this process, at once)."),
]

SECURITY_COMPLIANCE_OPTS = [
    cfg.IntOpt("lockout_failure_attempts", default=None, min=1,
               help="Wrong passwords in a row after which a user's password logins are refused for lockout_duration "
                    "seconds (Keystone's option; unset: no lockout). An update of the user that leaves it enabled "
                    "unlocks it; the user option ignore_lockout_failure_attempts exempts it."),
    cfg.IntOpt("lockout_duration", default=1800, min=1,
               help="Seconds an account stays locked after its last failed login (with lockout_failure_attempts); "
                    "unset: until an administrator unlocks it."),
]

FAKE_DRIVER_OPTS = [
    cfg.IntOpt("host_count", default=4, min=1,
               help="Hypervisor hosts the all-in-one simulates, compute-1..N. `stratus compute --host H` runs "
                    "the one host H, and simulates H-1..N only with `--fake-hosts N`."),
    cfg.IntOpt("vcpus", default=64, help="Physical CPUs of each simulated host."),
    cfg.IntOpt("memory_mb", default=262144, help="RAM of each simulated host."),
    cfg.IntOpt("local_gb", default=2048, help="Local disk of each simulated host."),
    cfg.FloatOpt("spawn_time", default=0.0, help="Seconds a simulated spawn takes."),
    cfg.FloatOpt("network_time", default=0.0,
                 help="Seconds a simulated host takes to plug networks (the build's networking step)."),
    cfg.FloatOpt("block_device_time", default=0.0,
                 help="Seconds a simulated host takes to prepare disks (the build's block_device_mapping step)."),
    cfg.BoolOpt("write_config_drive", default=False,
                help="Write each simulated guest's config drive as a real ISO (instances_path/<uuid>/disk.config)."),
    cfg.ListOpt("fail_hosts", default=[], help="Simulated hosts whose every spawn fails (failure injection)."),
    cfg.IntOpt("fail_every_nth_build", default=0, min=0,
               help="Every simulated host fails its Nth, 2Nth, … spawn (0: never). Failure injection."),
    cfg.BoolOpt("persist_guests", default=False,
                help="Keep each simulated host's guests (and the disks a move left behind) in "
                     "state_path/fake-guests/<host>.json, so they outlive a restart of the compute service as a "
                     "real hypervisor's domains do (crash tests kill the service mid-move and start it again)."),
]

COMPUTE_OPTS = [
    cfg.IntOpt("consecutive_build_service_disable_threshold", default=10, min=0,
               help="Disable a compute service after this many builds in a row failed on it in a way another "
                    "host could fix (0: never). The reason shows in os-services; an admin re-enables it."),
    cfg.IntOpt("shutdown_retry_interval", default=10, min=1,
               help="Seconds between repeats of the ACPI shutdown request while a stop or SOFT reboot waits "
                    "for the guest (within [DEFAULT] shutdown_timeout)."),
]

LIBVIRT_OPTS = [
    cfg.StrOpt("virt_type", default=None, choices=["kvm", "qemu"], sample_default="(kvm if kvm_intel or kvm_amd "
               "is loaded, else qemu)",
               help="Domain type: kvm (hardware virtualisation) or qemu (TCG emulation). Unset: kvm where the "
                    "host has VT-x/AMD-V (kvm_intel or kvm_amd loaded), qemu otherwise."),
    cfg.StrOpt("connection_uri", default="",
               help="libvirt URI; empty means qemu:///system."),
    cfg.StrOpt("images_type", default="qcow2", choices=["qcow2", "raw", "flat", "rbd", "default"],
               help="Root disk backend: qcow2 (copy-on-write overlay on the cached base image), raw or flat "
                    "(a full copy), rbd (an RBD image in [libvirt] images_rbd_pool: a copy-on-write clone of the "
                    "image when the image service keeps it in the same Ceph cluster); default means qcow2."),
    cfg.StrOpt("images_rbd_pool", default="rbd", help="Ceph pool of the instances' RBD disks (images_type = rbd)."),
    cfg.StrOpt("images_rbd_ceph_conf", default="", sample_default="(librados' default, /etc/ceph/ceph.conf)",
               help="Ceph configuration file of the compute host's cluster."),
    cfg.StrOpt("rbd_user", default=None, help="Ceph client (cephx user) the host and its guests use."),
    cfg.StrOpt("rbd_secret_uuid", default=None,
               help="libvirt secret holding rbd_user's key, named in each RBD disk's <auth>."),
    cfg.IntOpt("rbd_destroy_volume_retry_interval", default=5, min=0,
               help="Seconds between tries to remove an instance's RBD disk that still has a watcher (a qemu "
                    "going away)."),
    cfg.IntOpt("rbd_destroy_volume_retries", default=12, min=0,
               help="Tries again to remove such a disk before the delete fails (the instance in ERROR)."),
    cfg.StrOpt("images_rbd_glance_store_name", default=None,
               help="The image service's store in this Ceph cluster: an image that is not there yet is copied "
                    "into it (Glance's copy-image import) and then cloned, instead of downloaded by the host."),
    cfg.IntOpt("images_rbd_glance_copy_timeout", default=600, min=0,
               help="Seconds to wait for such a copy before downloading instead (or failing, with "
                    "[workarounds] never_download_image_if_on_rbd)."),
    cfg.IntOpt("images_rbd_glance_copy_poll_interval", default=15, min=0,
               help="Seconds between checks whether the copy has finished."),
    cfg.StrOpt("cpu_mode", default=None, choices=["host-model", "host-passthrough", "custom", "none"],
               help="Guest CPU model mode; unset: host-model on kvm, none on qemu."),
    cfg.IntOpt("wait_soft_reboot_seconds", default=None, min=0, sample_default="([DEFAULT] shutdown_timeout)",
               help="Seconds a SOFT reboot waits for the guest to shut down (ACPI) before rebooting it HARD; "
                    "unset: [DEFAULT] shutdown_timeout."),
    cfg.IntOpt("console_log_max_bytes", default=1048576, min=1024,
               help="Most bytes of a guest's serial log kept for os-getConsoleOutput (the tail is returned)."),
    cfg.StrOpt("live_migration_uri", default=None, sample_default="qemu+tcp://%s/system",
               help="URI of another compute host's libvirtd, %s replaced by that host's name: the destination "
                    "of a live migration, and where a resize or cold migration uploads the guest's disks "
                    "(libvirt storage volume streams; no shared file system). Unset: qemu+tcp://%s/system."),
    # --- live migration (stratus/virt/libvirt/live_migration.py), Nova's names and defaults -------------------
    cfg.StrOpt("live_migration_inbound_addr", default=None,
               help="This host's address for incoming live migrations: QEMU's migration stream and the disks' "
                    "NBD copy come to tcp://<it>; unset: the address libvirt finds for the host's name."),
    cfg.IntOpt("live_migration_bandwidth", default=0, min=0,
               help="Most MiB/s a live migration may use (0: libvirt's choice, no limit)."),
    cfg.IntOpt("live_migration_downtime", default=500, min=100,
               help="Most milliseconds the guest may be paused at the end of a live migration, reached in steps."),
    cfg.IntOpt("live_migration_downtime_steps", default=10, min=3,
               help="Steps in which the allowed downtime grows to live_migration_downtime."),
    cfg.IntOpt("live_migration_downtime_delay", default=75, min=3,
               help="Seconds between the downtime steps, per GiB of data to move (RAM, plus local disks in a "
                    "block migration; each at least 2 GiB)."),
    cfg.IntOpt("live_migration_completion_timeout", default=800, min=0, mutable=True,
               help="Seconds per GiB of data to move (as for live_migration_downtime_delay) that a live "
                    "migration may take before live_migration_timeout_action is taken; 0: no limit."),
    cfg.StrOpt("live_migration_timeout_action", default="abort", choices=["abort", "force_complete"],
               mutable=True,
               help="What a live migration past its completion timeout gets: abort (the guest stays on its "
                    "source) or force_complete (paused for the last copy, or switched to post-copy)."),
    cfg.BoolOpt("live_migration_permit_post_copy", default=False,
                help="Live migrations may switch to post-copy (the guest runs on the destination while its "
                     "remaining memory follows): force_complete does that instead of pausing the guest."),
    cfg.BoolOpt("live_migration_permit_auto_converge", default=False,
                help="libvirt slows the guest's CPUs down when its memory changes faster than it is copied "
                     "(not with post-copy, which is preferred when both are permitted)."),
]

IMAGE_CACHE_OPTS = [
    cfg.IntOpt("manager_interval", default=2400, min=-1,
               help="Seconds between runs of each compute host's image cache manager, which removes cached "
                    "base images no instance on the host uses (-1: never)."),
    cfg.BoolOpt("remove_unused_base_images", default=True,
                help="Whether the image cache manager removes unused base images (else it only reports them)."),
    cfg.IntOpt("remove_unused_original_minimum_age_seconds", default=86400, min=0,
               help="An unused base image is removed only once it has not been used for this long."),
    cfg.IntOpt("precache_concurrency", default=1, min=1,
               help="How many compute hosts of an aggregate cache the images of one ``POST "
                    "/os-aggregates/{id}/images`` at a time (each host fetches its images one after another)."),
]

def load_auth_plugin(conf: cfg.ConfigOpts, group: str) -> Any:
    """The keystoneauth plugin ``[group] auth_type`` names, from that group's options, as keystoneauth's
    ``load_auth_from_conf_options`` would load it, but without registering the plugin's options again: the usual
    ones are registered above with ``required`` off (so a deployment without them starts), and keystoneauth's
    own copies, ``required`` on, would be a duplicate option. A plugin's options that are not registered yet
    (another plugin than ``password``) are registered here first."""
    from keystoneauth1 import loading as ks_loading

    loader = ks_loading.get_plugin_loader(conf[group].auth_type)
    options = loader.get_options()
    for opt in options:
        if opt.dest not in conf[group]:
            conf.register_opt(opt._to_oslo_opt(), group=group)
    values = {opt.dest: conf[group][opt.dest] for opt in options}
    return loader.load_from_options(**{k: v for k, v in values.items() if v is not None})


NEUTRON_OPTS = [
    *keystoneauth_options.client_opts("network"),
    cfg.BoolOpt("service_metadata_proxy", default=False,
                help="The metadata API sits behind Neutron's metadata proxy: instances are named by the "
                     "X-Instance-ID, X-Tenant-ID and X-Instance-ID-Signature headers, not by their fixed IP."),
    cfg.StrOpt("metadata_proxy_shared_secret", default="", secret=True,
               help="Key of the HMAC-SHA256 signature of X-Instance-ID the metadata proxy sends."),
    cfg.StrOpt("ovs_bridge", default="br-int",
               help="The bridge named in a VIF whose port binding names none (Nova's default, OVS's integration "
                    "bridge)."),
    cfg.IntOpt("http_retries", default=3, min=0,
               help="Times a request to the Networking service is sent again when it could not be sent at all."),
]

WORKAROUNDS_OPTS = [
    cfg.BoolOpt("never_download_image_if_on_rbd", default=False,
                help="With [libvirt] images_type = rbd: fail a boot at once (no reschedule) when the image cannot "
                     "be cloned in the host's Ceph cluster, instead of downloading it and importing it into Ceph."),
]

GROUPS: dict[str, list[cfg.Opt]] = {
    "DEFAULT": DEFAULT_OPTS,
    "database": DATABASE_OPTS,
    "api": API_OPTS,
    "scheduler": SCHEDULER_OPTS,
    "conductor": CONDUCTOR_OPTS,
    "filter_scheduler": FILTER_SCHEDULER_OPTS,
    "quota": QUOTA_OPTS,
    "glance": GLANCE_OPTS,
    "image_store": IMAGE_STORE_OPTS,
    "identity": IDENTITY_OPTS,
    "security_compliance": SECURITY_COMPLIANCE_OPTS,
    "compute": COMPUTE_OPTS,
    "fake_driver": FAKE_DRIVER_OPTS,
    "libvirt": LIBVIRT_OPTS,
    "image_cache": IMAGE_CACHE_OPTS,
    "neutron": NEUTRON_OPTS,
    network_options.GROUP: network_options.OPTS,
    network_options.AGENT_GROUP: network_options.AGENT_OPTS,
    # keystoneauth's auth_type and auth_section: whether [nova] names a plugin is known without importing it
    "nova": [*nova_notifier.OPTS, *keystoneauth_options.auth_opts()],
    network_options.QUOTA_GROUP: network_options.QUOTA_OPTS,
    "workarounds": WORKAROUNDS_OPTS,
    sizelimit.GROUP: sizelimit.OPTS,
    "oslo_messaging_rabbit": rpc_options.RABBIT_OPTS,
}


def load(config_files: Iterable[str] = (), overrides: Mapping[str, Mapping[str, Any]] | None = None
         ) -> cfg.ConfigOpts:
    """Build a configuration from INI files, then apply ``overrides`` ({group: {option: value}})."""
    conf = cfg.ConfigOpts()
    for group, opts in GROUPS.items():
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
    register_policy_opts(conf)
    conf(args=[], project="stratus", default_config_files=list(config_files), validate_default_values=True)
    for group, values in (overrides or {}).items():
        for name, value in values.items():
            conf.set_override(name, value, group=None if group == "DEFAULT" else group)
    return conf


def register_policy_opts(conf: cfg.ConfigOpts) -> None:
    """oslo.policy's ``[oslo_policy]`` options, with Nova's defaults: rules overridden in ``policy.yaml``, only the
    new defaults enforced, scopes checked (both oslo.policy 6 defaults already)."""
    policy_opts.set_defaults(conf, policy_file="policy.yaml", enforce_new_defaults=True, enforce_scope=True)


def database_url(conf: cfg.ConfigOpts) -> str:
    """The SQLAlchemy URL: the configured one (PostgreSQL through asyncpg), or SQLite in ``state_path``."""
    url = conf.database.connection or f"sqlite:///{os.path.join(conf.state_path, 'stratus.sqlite')}"
    if url.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """For oslo-config-generator and docs."""
    return list(GROUPS.items())


def reference_markdown() -> str:
    """docs/configuration.md: every option, its default and help (a unit test keeps the file in step)."""
    lines = ["# Configuration", "",
             "INI files with Nova's section and option names, passed with `--config-file` (repeatable).",
             "Every option, its default and what it does (generated by `python -m stratus.conf`):", ""]
    for group, opts in GROUPS.items():
        lines += [f"## [{group}]", "", "| option | default | help |", "|---|---|---|"]
        for opt in opts:
            if opt.sample_default is not None:  # a default computed on this machine
                default = str(opt.sample_default)
            elif isinstance(opt.default, list):
                default = ",".join(str(v) for v in opt.default)
            else:
                default = "" if opt.default is None else str(opt.default)
            text = " ".join(str(opt.help or "").split()).replace("|", "\\|")
            lines.append(f"| `{opt.name}` | `{default}` | {text} |")
        lines.append("")
    lines += ["## [keystone_authtoken]", "",
              "With `[api] auth_strategy = keystone`: the options of keystonemiddleware's `auth_token`, which",
              "registers them itself (with those of its `auth_type` plugin) when the compute and image APIs start,",
              "exactly as in Nova: `www_authenticate_uri`, `auth_url`, `auth_type = password`, `username`,",
              "`password`, `project_name`, `user_domain_name`, `project_domain_name`, `region_name`, `interface`,",
              "`memcached_servers` (unset: tokens are cached in the process), `token_cache_time`,",
              "`service_token_roles`, `service_token_roles_required`, ... See keystonemiddleware's documentation",
              "and [keystone.md](keystone.md).", "",
              "## [nova] (keystoneauth)", "",
              "The networking server's notifier logs in to Nova with keystoneauth's options in `[nova]`, as",
              "Neutron's: `auth_type` (`password`) and its plugin's (`auth_url`, `username`, `password`,",
              "`project_name`, `user_domain_name`, `project_domain_name`, ...) and the session's (`cafile`,",
              "`insecure`, `timeout`, ...), registered when the networking API starts with `auth_type` (or",
              "`auth_section`, both in the table above) set. Unset, the all-in-one uses its own admin. See",
              "[networking.md](networking.md).", "",
              "## [oslo_policy]", "",
              "oslo.policy's own options, as in Nova: `policy_file` (default `policy.yaml`: a YAML file of rule",
              "overrides, an absolute path or a name looked up beside the config files, then in `~/.stratus` and",
              "`/etc/stratus`; none found means the defaults), `policy_dirs` (default `policy.d`),",
              "`enforce_new_defaults` (`True`), `enforce_scope` (`True`; oslo.policy 6 always checks scopes) and",
              "`policy_default_rule`. The rules, their defaults and the roles: [policy.md](policy.md).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
