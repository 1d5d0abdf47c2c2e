"""The data plane of Stratus networks, Neutron's linuxbridge way, entirely inside network namespaces.

Every kernel object lives in a namespace Stratus created (see docs/networking-dataplane.md):
``stratus-fabric`` (the underlay that joins the hosts), ``stratus-host-<host>`` (each host's bridges, VXLAN
devices, guest taps and their nftables filter), ``qdhcp-<network>`` (dnsmasq) and ``qrouter-<router>`` (NAT).
Each module converges one kind of object toward a desired state (``sync``) and removes it (``remove``), so a
restart after kill -9 converges from whatever is left.
"""
