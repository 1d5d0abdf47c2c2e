"""The embedded Networking API v2.0: a Neutron subset on port 9696 (networks, subnets, ports, their IPAM).

``app`` routes, ``resource`` carries a request (caller, policy, body), one module per resource validates and
writes, ``ipam`` picks addresses, ``listing`` filters, sorts and pages as Neutron does, ``errors`` is Neutron's
error body, ``policy`` Neutron's default rules on oslo.policy.
"""
