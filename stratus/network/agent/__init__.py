"""The networking agents: what wires ports up on a host, told by the server over ``stratus.network.agent_rpc``."""
