"""The networking agents: what wires ports up on a host, told by the server over ``stratus.network.agent_rpc``:
``noop`` for fake-driver hosts, ``linuxbridge``, ``dhcp`` and ``l3`` for the real data plane (``dataplane/``)."""
