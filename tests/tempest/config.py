"""tempest.conf for a Stratus all-in-one as a normal deployment has it: dynamic credentials through the embedded
identity, the Networking service (each test project gets a network, subnet and router on the cloud's external
network), no volume service, and the compute features of a normal deployment.
``python -m tests.tempest.config`` writes one for a running cloud (see docs/tempest.md); the test suite writes its
own."""

from __future__ import annotations

import argparse
import textwrap

from stratus.api.microversion import VERSIONS

#: features that cannot run here (docs/tempest.md says why for each): no console proxies, no volume service
DISABLED_FEATURES = ("vnc_console", "spice_console", "serial_console", "attach_encrypted_volume")


#: the scheduler filters of the cloud tempest runs against (devstack's: Nova's defaults and the host hints),
#: which tempest's scheduler-hint tests look for
SCHEDULER_FILTERS = ("ComputeFilter", "AvailabilityZoneFilter", "ComputeCapabilitiesFilter", "ImagePropertiesFilter",
                     "ServerGroupAntiAffinityFilter", "ServerGroupAffinityFilter", "SameHostFilter",
                     "DifferentHostFilter")

#: the roles Nova's 2024+ policy defaults use and the embedded identity's bootstrap makes (admin implies manager
#: implies member implies reader; service for service-to-service calls): with ``[enforce_scope] nova`` tempest
#: then reads as the project's reader and migrates as its manager, as against a current Nova
NOVA_POLICY_ROLES = ("admin", "manager", "member", "reader", "service")

#: what the embedded Networking API serves (its /v2.0/extensions), for tempest's network tests
NETWORK_EXTENSIONS = ("external-net", "provider", "binding", "port-security", "allowed-address-pairs",
                      "security-group", "net-mtu", "network_availability_zone", "project-id",
                      "standard-attr-description", "standard-attr-timestamp", "standard-attr-revisions",
                      "filter-validation", "sorting", "pagination", "router", "ext-gw-mode", "extraroute", "quotas",
                      "quota_details", "auto-allocated-topology", "agent", "standard-attr-tag", "tag",
                      "network-ip-availability")


def tempest_conf(identity_url: str, admin_password: str, image_ref: str, image_ref_alt: str,
                 log_dir: str, public_network_id: str) -> str:
    """``public_network_id``: an external network of the cloud, where tempest's routers get their gateway and its
    floating IPs come from."""
    features = "\n".join(f"{name} = false" for name in DISABLED_FEATURES)
    # the highest microversion served, not ``latest``: tempest would run the tests of later ones and get 406s
    max_microversion = VERSIONS[-1][0]
    network = textwrap.dedent(f"""
        [network]
        public_network_id = {public_network_id}
        project_network_cidr = 10.100.0.0/16
        project_network_mask_bits = 28
        project_networks_reachable = false
        [network-feature-enabled]
        api_extensions = {",".join(NETWORK_EXTENSIONS)}
        ipv6 = true
        ipv6_subnet_attributes = true
        port_security = true
        """)
    return textwrap.dedent(f"""\
        [DEFAULT]
        log_dir = {log_dir}
        [auth]
        use_dynamic_credentials = true
        admin_username = admin
        admin_password = {admin_password}
        admin_project_name = admin
        admin_domain_name = Default
        [identity]
        uri_v3 = {identity_url}
        auth_version = v3
        region = RegionOne
        [identity-feature-enabled]
        api_v2 = false
        [enforce_scope]
        nova = true
        [compute]
        image_ref = {image_ref}
        image_ref_alt = {image_ref_alt}
        flavor_ref = 1
        flavor_ref_alt = 2
        build_timeout = 60
        min_microversion = 2.1
        max_microversion = {max_microversion}
        min_compute_nodes = 2
        [compute-feature-enabled]
        resize = true
        cold_migration = true
        live_migration = true
        shelve = true
        rescue = true
        change_password = true
        block_migration_for_live_migration = true
        console_output = true
        snapshot = true
        pause = true
        suspend = true
        interface_attach = true
        personality = true
        config_drive = true
        metadata_service = true
        stable_rescue = true
        hostname_fqdn_sanitization = true
        scheduler_enabled_filters = {",".join(SCHEDULER_FILTERS)}
        nova_policy_roles = {",".join(NOVA_POLICY_ROLES)}
        """) + features + textwrap.dedent("""
        [service_available]
        neutron = true
        cinder = false
        glance = true
        swift = false
        nova = true
        [validation]
        run_validation = false
        [image-feature-enabled]
        api_v1 = false
        """) + network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identity-url", default="http://127.0.0.1:5000/v3")
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--image-ref", required=True)
    parser.add_argument("--image-ref-alt", required=True)
    parser.add_argument("--log-dir", default=".")
    parser.add_argument("--public-network-id", required=True,
                        help="The cloud's external network (routers' gateways, floating IPs).")
    args = parser.parse_args()
    print(tempest_conf(args.identity_url, args.admin_password, args.image_ref, args.image_ref_alt, args.log_dir,
                       args.public_network_id))


if __name__ == "__main__":
    main()
