"""Network agents: the per-host processes that make the kernel match the Networking service's records."""
