"""Networking: the embedded Networking API (``server/``), the agent RPC seam (``agent_rpc``) and the agents
(``agent/``) that carry ports out on each host."""
