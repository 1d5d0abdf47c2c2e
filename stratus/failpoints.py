"""Crash points for crash tests, as etcd's gofail: a process started with ``STRATUS_FAILPOINTS=name[,name…]`` in
its environment kills itself with SIGKILL when it reaches a named point. That is exactly a ``kill -9`` at that step
of a flow (no cleanup, no flush), where an external kill could only land somewhere near it; the test then starts
the cloud again on the same data and checks what recovery made of it. Unarmed (always, outside such tests), a
point costs one set lookup.

The points: ``conductor.received`` (a boot request reached the conductor, which has not taken it yet),
``conductor.leased`` (taken, no host chosen), ``conductor.claimed`` (the scheduler claimed hosts, none recorded
on the instances yet), ``scheduler.claimed`` (the scheduler committed a claim and has not replied),
``conductor.rescheduling`` (a host failed a build and gave it back with its ports; the conductor took it and has
chosen no next host); and the fake driver's ``fake.<method>`` at the start of each move step
(``fake.migrate_disk_and_power_off``, ``fake.finish_migration``, ``fake.confirm_migration``,
``fake.finish_revert_migration``, ``fake.live_migration``, ``fake.post_live_migration_at_destination``,
``fake.snapshot``, ``fake.destroy``, ``fake.spawn``): a compute service killed in the middle of a move (or of a
spawn).
"""

from __future__ import annotations

import logging
import os
import signal

LOG = logging.getLogger(__name__)
ENV = "STRATUS_FAILPOINTS"
ARMED = frozenset(name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip())


def hit(name: str) -> None:
    """Die here, at once, if the point ``name`` is armed."""
    if name in ARMED:
        LOG.warning("failpoint %s reached: killing process %d", name, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
