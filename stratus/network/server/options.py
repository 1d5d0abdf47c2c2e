"""Options of the embedded Networking API, with Neutron's names where Neutron has the option."""

from __future__ import annotations

import ipaddress

from oslo_config import cfg

GROUP = "network_server"
AGENT_GROUP = "agent"
AGENT_OPTS = [
    cfg.FloatOpt("report_interval", default=30, min=0.1, max=3600,
                 help="Seconds between an agent's report_state (Neutron's [agent] option and default); keep it well "
                      "below [network_server] agent_down_time."),
]

OPTS = [
    cfg.StrOpt("listen", default="127.0.0.1", help="Address of the Networking API (Neutron's bind_host)."),
    cfg.PortOpt("listen_port", default=9696, help="Port of the Networking API (Neutron's bind_port)."),
    cfg.StrOpt("base_mac", default="fa:16:3e:00:00:00",
               help="Base MAC address of ports: the first three octets are kept, the others drawn at random "
                    "(Neutron's option and default)."),
    cfg.IntOpt("mac_generation_retries", default=16, min=1, max=1000,
               help="Tries for a MAC address not in use on the network before the port create fails."),
    cfg.IntOpt("max_fixed_ips_per_port", default=5, min=1, max=1000,
               help="Most fixed IPs a port may ask for (Neutron's former option and default)."),
    cfg.IntOpt("max_dns_nameservers", default=5, min=0, max=100, help="Most DNS nameservers of a subnet."),
    cfg.IntOpt("max_subnet_host_routes", default=20, min=0, max=1000, help="Most host routes of a subnet."),
    cfg.IntOpt("global_physnet_mtu", default=1500, min=68, max=65535,
               help="MTU of the underlying physical network; a VXLAN network's MTU is 50 bytes less."),
    cfg.ListOpt("tenant_network_types", default=["vxlan"],
                help="Network type of project networks ([ml2] tenant_network_types): vxlan or vlan."),
    cfg.StrOpt("vni_ranges", default="1:16777215",
               help="VXLAN VNIs given out to project networks, min:max ([ml2_type_vxlan] vni_ranges)."),
    cfg.StrOpt("network_vlan_range", default="physnet1:1:4094",
               help="physical_network:min:max of VLAN ids for project networks of type vlan "
                    "([ml2_type_vlan] network_vlan_ranges, one range)."),
    cfg.ListOpt("flat_networks", default=["*"],
                help="Physical networks flat provider networks may be created on (* for any).",),
    cfg.ListOpt("default_availability_zones", default=["nova"],
                help="Availability zones of a network that asks for none (its availability_zones)."),
    cfg.IntOpt("pagination_max_limit", default=-1, min=-1, max=100000,
               help="Most items of one page of a list (-1: no limit; Neutron's option)."),
    cfg.StrOpt("auto_allocate_cidr", default="10.0.0.0/24",
               help="CIDR of the subnet of each project's auto-allocated network (auto-allocated-topology; "
                    "Neutron takes it from the default subnet pool). Empty: auto-allocation is refused."),
    cfg.IntOpt("agent_down_time", default=75, min=1, max=86400,
               help="Seconds without a report_state after which an agent is down (Neutron's option and default): "
                    "ports are no longer bound to its host."),
]

QUOTA_GROUP = "quotas"
QUOTA_RESOURCES = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50, "security_group": 10,
                   "security_group_rule": 100}
QUOTA_OPTS = [cfg.IntOpt(f"quota_{name}", default=default, min=-1, max=2**31 - 1,
                         help=f"Default {name.replace('_', ' ')}s a project may have (-1: unlimited; Neutron's "
                              "[quotas] option and default).") for name, default in QUOTA_RESOURCES.items()]


def check_options(conf: cfg.ConfigOpts) -> None:
    """ValueError naming the option whose value the networking server cannot use (checked at start)."""
    opts = conf[GROUP]
    try:
        low, high = (int(x) for x in opts.vni_ranges.split(":"))
        if not 1 <= low <= high <= 2**24 - 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"[{GROUP}] vni_ranges = {opts.vni_ranges}: want min:max within 1:16777215") from None
    try:
        _physnet, vlow, vhigh = opts.network_vlan_range.rsplit(":", 2)
        if not _physnet or not 1 <= int(vlow) <= int(vhigh) <= 4094:
            raise ValueError
    except ValueError:
        raise ValueError(f"[{GROUP}] network_vlan_range = {opts.network_vlan_range}: want physnet:min:max within "
                         "1:4094") from None
    for kind in opts.tenant_network_types:
        if kind not in ("vxlan", "vlan", "local"):
            raise ValueError(f"[{GROUP}] tenant_network_types: {kind} is not vxlan, vlan or local")
    if opts.auto_allocate_cidr:
        try:
            ipaddress.ip_network(opts.auto_allocate_cidr)
        except ValueError:
            raise ValueError(f"[{GROUP}] auto_allocate_cidr = {opts.auto_allocate_cidr}: not a CIDR") from None
    try:
        octets = [int(x, 16) for x in opts.base_mac.split(":")]
        if len(octets) != 6 or octets[0] & 1 or not all(0 <= o <= 255 for o in octets):
            raise ValueError
    except ValueError:
        raise ValueError(f"[{GROUP}] base_mac = {opts.base_mac}: not a unicast MAC address") from None
