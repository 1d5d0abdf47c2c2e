"""tempest.conf for a Stratus all-in-one: dynamic credentials through the embedded identity, no volume service,
the network service only for the network tests, and the compute features Stratus has today.
``python -m tests.tempest.config`` writes one for a running cloud (see docs/tempest.md); the test suite writes its
own."""

from __future__ import annotations

import argparse
import textwrap

#: features off until Stratus has them (each flips with the issue that brings it)
DISABLED_FEATURES = ("resize", "live_migration", "cold_migration", "shelve", "rescue", "change_password",
                     "interface_attach", "attach_encrypted_volume", "vnc_console", "spice_console",
                     "serial_console", "personality", "config_drive", "metadata_service")


#: what the embedded Networking API serves (its /v2.0/extensions), for tempest's network tests
NETWORK_EXTENSIONS = ("external-net", "provider", "binding", "port-security", "allowed-address-pairs",
                      "security-group", "net-mtu", "network_availability_zone", "project-id",
                      "standard-attr-description", "standard-attr-timestamp", "standard-attr-revisions",
                      "filter-validation", "sorting", "pagination", "router", "ext-gw-mode", "extraroute", "quotas",
                      "quota_details", "auto-allocated-topology", "agent", "standard-attr-tag", "tag",
                      "network-ip-availability")


def tempest_conf(identity_url: str, admin_password: str, image_ref: str, image_ref_alt: str,
                 log_dir: str, public_network_id: str | None = None) -> str:
    """With ``public_network_id`` (an external network of the cloud), the network service is on: for tempest's
    network tests, whose projects each get a network, subnet and router."""
    features = "\n".join(f"{name} = false" for name in DISABLED_FEATURES)
    network = "" if public_network_id is None else textwrap.dedent(f"""
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
        [compute]
        image_ref = {image_ref}
        image_ref_alt = {image_ref_alt}
        flavor_ref = 1
        flavor_ref_alt = 2
        build_timeout = 60
        min_microversion = 2.1
        max_microversion = 2.64
        [compute-feature-enabled]
        console_output = true
        snapshot = true
        pause = true
        suspend = true
        """) + features + textwrap.dedent("""
        [service_available]
        neutron = {neutron}
        cinder = false
        glance = true
        swift = false
        nova = true
        [validation]
        run_validation = false
        [image-feature-enabled]
        api_v1 = false
        """).format(neutron="false" if public_network_id is None else "true") + network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identity-url", default="http://127.0.0.1:5000/v3")
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--image-ref", required=True)
    parser.add_argument("--image-ref-alt", required=True)
    parser.add_argument("--log-dir", default=".")
    parser.add_argument("--public-network-id", help="An external network: turns the network service on (for the "
                                                    "tempest.api.network tests).")
    args = parser.parse_args()
    print(tempest_conf(args.identity_url, args.admin_password, args.image_ref, args.image_ref_alt, args.log_dir,
                       args.public_network_id))


if __name__ == "__main__":
    main()
