"""Stratus: a compute fabric controller with OpenStack Nova's API.

httpx imports its command-line client (``httpx._main``: click, rich, pygments; 4.4 MiB of a process's memory)
whenever those are installed, and no Stratus process runs that client. A ``None`` in ``sys.modules`` makes
httpx's own ``from ._main import main`` fail as if they were not installed, so it falls back to its stub
``main``; this runs before any module of the package can import httpx.
"""

import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]
