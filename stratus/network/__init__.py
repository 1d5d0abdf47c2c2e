"""Networking: the embedded Networking API (``server/``), the agent RPC seam (``agent_rpc``), the agents
(``agent/``) that carry ports out on each host, and their data plane in namespaces (``dataplane/``)."""
