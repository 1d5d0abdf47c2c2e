"""Networking: the embedded Networking API (Neutron v2.0 subset), its agents and data plane, and the Neutron client."""
