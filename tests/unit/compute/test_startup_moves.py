"""Start-up reconciliation of moves: a compute agent restarted in the middle of a resize, cold or live migration,
shelve or unshelve leaves the server in no move's task_state, its migration record over, and the allocations
exactly the server's on the host it is on (no claim held by a migration or left on the other host).

Two hosts on one database and transport: h1 (the source of every move here) and h2 (its destination). Each test
writes the state the agent left when it stopped (instance row, migration record, allocations, guests), restarts
one agent, and reads the outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from stratus.compute import startup_moves
from stratus.compute.manager import ComputeManager
from stratus.db import actions, instances, placement
from stratus.db import migration_records as records
from stratus.db.models import resource_providers
from stratus.objects.states import power_state as ps
from stratus.virt.fake import FakeDriver, _Guest
from tests.unit.compute.conftest import Host, context

OLD = {"name": "old", "flavorid": "1", "vcpus": 1, "memory_mb": 64, "root_gb": 1, "ephemeral_gb": 0,
       "extra_specs": {}}
NEW = {"name": "new", "flavorid": "2", "vcpus": 2, "memory_mb": 128, "root_gb": 1, "ephemeral_gb": 0,
       "extra_specs": {}}
OLD_USAGE = {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}
NEW_USAGE = {"VCPU": 2, "MEMORY_MB": 128, "DISK_GB": 1}


class Pair:
    """h1 (the ``host`` fixture) and a second agent h2 on the same database and transport."""

    def __init__(self, h1: Host) -> None:
        self.h1 = h1
        self.driver2 = FakeDriver(h1.conf, "h2")
        self.h2 = self._manager2()

    def _manager2(self) -> ComputeManager:
        return ComputeManager(self.h1.conf, self.h1.db, self.h1.transport, host="h2", driver=self.driver2,
                              images=None)

    async def start2(self) -> None:
        await self.h2.init_host()
        await self.h1.transport.listen("compute", self.h2, server="h2")

    async def restart2(self) -> None:
        await self.h2.cleanup_host()
        self.h2 = self._manager2()
        await self.h1.transport.listen("compute", self.h2, server="h2")
        await self.h2.init_host()
        await self.settle()

    async def restart1(self) -> None:
        await self.h1.restart()
        await self.settle()

    async def settle(self) -> None:
        """Every background action and cast under way, done (the casts they send too)."""
        for _ in range(3):
            await self.h1.manager.drain()
            await self.h2.drain()
            await self.h1.transport.stop()

    async def provider(self, name: str) -> int:
        async with self.h1.db.read() as conn:
            return int((await conn.execute(select(resource_providers.c.id).where(
                resource_providers.c.name == name))).scalar_one())

    async def allocations(self, consumer: str) -> dict[str, dict[str, int]]:
        names = {await self.provider("h1"): "h1", await self.provider("h2"): "h2"}
        async with self.h1.db.read() as conn:
            held = await placement.allocations_for_consumer(conn, consumer)
        return {names[p]: used for p, used in held.items()}

    async def migration(self, migration_id: int) -> dict[str, Any]:
        async with self.h1.db.read() as conn:
            found = await records.get(conn, migration_id)
        assert found is not None
        return found

    async def move(self, task: str | None, status: str, *, kind: str = records.RESIZE, on: str = "h1",
                   vm_state: str = "active", action: str = "resize", events: tuple[str, ...] = (),
                   handed_over: bool = True, dest_claim: bool = True, guest: str | None = "h1",
                   **values: Any) -> tuple[str, dict[str, Any]]:
        """An instance in the middle of a move from h1 to h2 as a stopped agent left it: its row on ``on``, the
        user's ``action`` with ``events`` open, its migration in ``status``, the source's usage held by the
        migration (``handed_over``) or by the instance, a claim for it on h2 (``dest_claim``), its guest on
        ``guest``'s hypervisor (h1's ``moved`` away for a resize past the source's step)."""
        uuid = await self.h1.add(vm_state=vm_state, task_state=task, host=on, guest=1 if guest == "h1" else None,
                                 flavor=OLD, display_name="vm", **values)
        if guest == "moved":
            self.h1.driver.moved_away[uuid] = _Guest(uuid, "vm", ps.SHUTDOWN, 1, 64)
        elif guest == "h2":
            self.driver2.guests[uuid] = _Guest(uuid, "vm", ps.RUNNING, 2, 128)
        new = NEW if kind == records.RESIZE else OLD
        ctx = context()
        async with self.h1.db.write() as conn:
            await actions.action_start(conn, ctx, [uuid], action)
            for event in events:
                await actions.event_start(conn, ctx, uuid, event, host="h1")
            migration = await records.create(conn, {
                "instance_uuid": uuid, "migration_type": kind, "status": status, "source_compute": "h1",
                "source_node": "h1", "dest_compute": "h2", "dest_node": "h2", "dest_host": "h2",
                "old_flavor": OLD, "new_flavor": new, "project_id": "p", "user_id": "u"})
            assert await placement.claim(conn, await self.provider("h1"), uuid, "p", "u", OLD_USAGE)
            if handed_over:
                await placement.move_allocations(conn, uuid, migration["uuid"], "p", "u", "MIGRATION")
            if dest_claim:
                usage = NEW_USAGE if kind == records.RESIZE else OLD_USAGE
                assert await placement.claim(conn, await self.provider("h2"), uuid, "p", "u", usage)
        return uuid, migration


@pytest.fixture
async def pair(host: Host) -> AsyncIterator[Pair]:
    two = Pair(host)
    await two.start2()
    try:
        yield two
    finally:
        await two.h2.cleanup_host()


def interrupted(uuid: str, task: str, host: str = "h1") -> str:
    return f"Instance {uuid} was in task_state {task} when compute host {host} restarted"


# --- resize and cold migration ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [records.RESIZE, records.MIGRATION])
async def test_resize_prep_is_undone_on_the_source(pair: Pair, kind: str) -> None:
    """Nova clears the task_state; the claim on the destination and the migration's hold go with it here."""
    uuid, migration = await pair.move("resize_prep", "pre-migrating", kind=kind,
                                      action="resize" if kind == records.RESIZE else "migrate",
                                      events=("conductor_migrate_server",))
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    assert (await pair.migration(migration["id"]))["status"] == "error"
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert await pair.allocations(migration["uuid"]) == {}
    assert await pair.h1.faults(uuid) == [interrupted(uuid, "resize_prep")]
    assert (await pair.h1.actions(uuid))[-1][2] == [("conductor_migrate_server", "Error")]


async def test_resize_prep_before_the_hand_over_keeps_the_source_usage(pair: Pair) -> None:
    uuid, migration = await pair.move("resize_prep", "pre-migrating", handed_over=False)
    await pair.restart1()
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}  # the destination's claim gone, its own kept
    assert (await pair.migration(migration["id"]))["status"] == "error"


@pytest.mark.parametrize(("vm_state", "guest_power", "after"), [
    ("active", ps.RUNNING, ps.RUNNING), ("active", ps.SHUTDOWN, ps.RUNNING), ("stopped", ps.SHUTDOWN, ps.SHUTDOWN)])
async def test_resize_migrating_is_reverted_on_the_source(pair: Pair, vm_state: str, guest_power: int,
                                                          after: int) -> None:
    """Nova's ``finish_revert_migration`` on the source, powered on unless the instance was stopped."""
    uuid, migration = await pair.move("resize_migrating", "migrating", vm_state=vm_state,
                                      events=("compute_resize_instance",))
    pair.h1.driver.guests[uuid].power_state = guest_power
    await pair.restart1()
    assert await pair.h1.states(uuid) == (vm_state, None, after)
    row = await pair.h1.get(uuid)
    assert (row["host"], row["flavor"]["name"]) == ("h1", "old")
    assert (await pair.migration(migration["id"]))["status"] == "error"
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert await pair.allocations(migration["uuid"]) == {}
    assert (await pair.h1.actions(uuid))[-1] == ("resize", "u", [("compute_resize_instance", "Error")])


async def test_resize_migrating_with_the_disks_gone_comes_back_from_them(pair: Pair) -> None:
    uuid, _ = await pair.move("resize_migrating", "migrating", guest="moved")
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    assert uuid in pair.h1.driver.guests and uuid not in pair.h1.driver.moved_away


async def test_resize_migrating_in_error_is_reverted_too(pair: Pair) -> None:
    """Nova's one exception to leaving ERROR instances alone."""
    uuid, migration = await pair.move("resize_migrating", "migrating", vm_state="error")
    await pair.restart1()
    assert (await pair.h1.states(uuid))[:2] == ("error", None)
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert (await pair.migration(migration["id"]))["status"] == "error"


async def test_resize_migrated_is_finished_on_the_destination(pair: Pair) -> None:
    uuid, migration = await pair.move("resize_migrated", "post-migrating", on="h2", guest="moved",
                                      system_metadata={"old_vm_state": "active"})
    await pair.restart2()
    assert await pair.h1.states(uuid) == ("resized", None, ps.RUNNING)
    row = await pair.h1.get(uuid)
    assert (row["host"], row["flavor"]["name"]) == ("h2", "new")
    assert (await pair.migration(migration["id"]))["status"] == "finished"
    assert await pair.allocations(uuid) == {"h2": NEW_USAGE}  # the move as it is: confirm or revert decide
    assert await pair.allocations(migration["uuid"]) == {"h1": OLD_USAGE}
    assert (await pair.h1.actions(uuid))[-1][2] == [("compute_finish_resize", "Success")]


async def test_a_source_back_after_the_hand_over_casts_finish_resize_again(pair: Pair) -> None:
    """The source died between its commit (``resize_migrated``) and its cast: the destination never heard."""
    uuid, migration = await pair.move("resize_migrated", "post-migrating", on="h2", guest="moved",
                                      system_metadata={"old_vm_state": "active"})
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("resized", None, ps.RUNNING)
    assert (await pair.migration(migration["id"]))["status"] == "finished"
    assert (await pair.h1.actions(uuid))[-1][2] == [("compute_finish_resize", "Success")]


async def test_both_hosts_back_after_the_hand_over_finish_the_resize_once(pair: Pair) -> None:
    uuid, _ = await pair.move("resize_migrated", "post-migrating", on="h2", guest="moved",
                              system_metadata={"old_vm_state": "active"})
    await pair.restart2()
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("resized", None, ps.RUNNING)
    assert pair.driver2.guests[uuid].boots == 1
    assert (await pair.h1.actions(uuid))[-1][2] == [("compute_finish_resize", "Success")]


async def test_resize_finish_is_reverted_to_the_source(pair: Pair) -> None:
    uuid, migration = await pair.move("resize_finish", "post-migrating", on="h2", guest="moved",
                                      events=("compute_finish_resize",),
                                      system_metadata={"old_vm_state": "active"})
    pair.driver2.guests[uuid] = _Guest(uuid, "vm", ps.NOSTATE, 2, 128)  # the half-started guest
    await pair.restart2()
    await pair.settle()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    row = await pair.h1.get(uuid)
    assert (row["host"], row["flavor"]["name"]) == ("h1", "old")
    assert uuid not in pair.driver2.guests and uuid in pair.h1.driver.guests
    assert (await pair.migration(migration["id"]))["status"] == "error"
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert await pair.allocations(migration["uuid"]) == {}
    assert await pair.h1.faults(uuid) == [interrupted(uuid, "resize_finish", "h2")]
    assert (await pair.h1.actions(uuid))[-1][2] == [("compute_finish_resize", "Error"),
                                                    ("compute_finish_revert_resize", "Success")]


async def test_both_hosts_restarting_revert_a_resize_finish_once(pair: Pair) -> None:
    uuid, migration = await pair.move("resize_finish", "post-migrating", on="h2", guest="moved",
                                      system_metadata={"old_vm_state": "active"})
    await pair.restart2()
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    assert pair.h1.driver.guests[uuid].boots == 1
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert (await pair.migration(migration["id"]))["status"] == "error"


async def test_revert_reverting_on_the_destination_is_carried_out(pair: Pair) -> None:
    uuid, migration = await pair.move("resize_reverting", "reverting", on="h2", vm_state="resized",
                                      guest="moved", action="revertResize",
                                      system_metadata={"old_vm_state": "active"})
    pair.driver2.guests[uuid] = _Guest(uuid, "vm", ps.RUNNING, 2, 128)
    await pair.restart2()
    await pair.settle()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    assert (await pair.h1.get(uuid))["host"] == "h1"
    assert uuid not in pair.driver2.guests
    assert (await pair.migration(migration["id"]))["status"] == "reverted"
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert await pair.allocations(migration["uuid"]) == {}
    assert (await pair.h1.actions(uuid))[-1] == ("revertResize", "u", [("compute_revert_resize", "Success"), (
        "compute_finish_revert_resize", "Success")])


async def test_revert_reverting_on_the_source_is_finished(pair: Pair) -> None:
    """The destination's part was done (the usage is the instance's on the source again): the source's remains."""
    uuid, migration = await pair.move("resize_reverting", "reverting", vm_state="resized", guest="moved",
                                      action="revertResize", handed_over=False, dest_claim=False,
                                      system_metadata={"old_vm_state": "stopped"})
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("stopped", None, ps.SHUTDOWN)
    assert (await pair.migration(migration["id"]))["status"] == "reverted"
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}


async def test_an_interrupted_confirm_is_carried_out_on_the_source(pair: Pair) -> None:
    uuid, migration = await pair.move(None, "confirming", on="h2", vm_state="resized", guest="moved",
                                      action="confirmResize")
    async with pair.h1.db.write() as conn:  # the destination's claim is the instance's own by now
        await placement.remove_allocations_on(conn, uuid, [await pair.provider("h1")])
    await pair.restart1()
    assert (await pair.h1.states(uuid))[:2] == ("active", None)
    assert uuid not in pair.h1.driver.moved_away
    assert (await pair.migration(migration["id"]))["status"] == "confirmed"
    assert await pair.allocations(uuid) == {"h2": NEW_USAGE}
    assert await pair.allocations(migration["uuid"]) == {}


# --- live migration -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["accepted", "queued", "preparing", "running"])
async def test_an_interrupted_live_migration_is_rolled_back_on_the_source(pair: Pair, status: str) -> None:
    """Nova's ``_reset_live_migration``: migration ``error``, task_state None, the guest still on the source;
    here also the destination's claim given back."""
    uuid, migration = await pair.move("migrating", status, kind=records.LIVE_MIGRATION, action="live-migration",
                                      events=("compute_live_migration",))
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    assert (await pair.h1.get(uuid))["host"] == "h1"
    assert pair.h1.driver.guests[uuid].boots == 1
    assert (await pair.migration(migration["id"]))["status"] == "error"
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert await pair.allocations(migration["uuid"]) == {}
    assert (await pair.h1.actions(uuid))[-1] == ("live-migration", "u", [("compute_live_migration", "Error")])


async def test_a_live_migration_past_the_hand_over_is_finished_on_the_destination(pair: Pair) -> None:
    uuid, migration = await pair.move("migrating", "post-migrating", kind=records.LIVE_MIGRATION, on="h2",
                                      action="live-migration", handed_over=False, guest=None)
    async with pair.h1.db.write() as conn:  # the source's usage went with the hand-over
        await placement.remove_allocations_on(conn, uuid, [await pair.provider("h1")])
    await pair.restart2()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    assert uuid in pair.driver2.guests
    assert (await pair.migration(migration["id"]))["status"] == "completed"
    assert await pair.allocations(uuid) == {"h2": OLD_USAGE}


# --- shelve and unshelve ------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["shelving", "shelving_image_pending_upload", "shelving_image_uploading"])
async def test_an_interrupted_shelve_puts_the_server_back(pair: Pair, task: str) -> None:
    uuid = await pair.h1.add(task_state=task, display_name="vm")
    pair.h1.driver.guests[uuid].power_state = ps.SHUTDOWN  # the shelve had powered it off
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)
    assert await pair.h1.faults(uuid) == [interrupted(uuid, task)]


async def test_an_interrupted_shelve_of_a_stopped_server_leaves_it_stopped(pair: Pair) -> None:
    uuid = await pair.h1.add(vm_state="stopped", task_state="shelving", power_state=ps.SHUTDOWN, guest=ps.SHUTDOWN)
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("stopped", None, ps.SHUTDOWN)


async def _assert_offloaded(pair: Pair, uuid: str) -> None:
    """Shelved and offloaded: no host, no guest left on h1, no claim."""
    row = await pair.h1.get(uuid)
    assert (row["vm_state"], row["task_state"], row["host"]) == ("shelved_offloaded", None, None)
    assert uuid not in pair.h1.driver.guests
    assert await pair.allocations(uuid) == {}


async def test_an_interrupted_offload_is_carried_out(pair: Pair) -> None:
    uuid = await pair.h1.add(vm_state="shelved", task_state="shelving_offloading", power_state=ps.SHUTDOWN,
                             guest=ps.SHUTDOWN)
    async with pair.h1.db.write() as conn:
        assert await placement.claim(conn, await pair.provider("h1"), uuid, "p", "u", OLD_USAGE)
    await pair.restart1()
    await _assert_offloaded(pair, uuid)


async def test_an_interrupted_unshelve_of_a_shelved_server_is_carried_out(pair: Pair) -> None:
    uuid = await pair.h1.add(vm_state="shelved", task_state="unshelving", power_state=ps.SHUTDOWN,
                             guest=ps.SHUTDOWN)
    await pair.restart1()
    assert await pair.h1.states(uuid) == ("active", None, ps.RUNNING)


async def test_an_interrupted_unshelve_spawn_leaves_the_server_offloaded(pair: Pair) -> None:
    """Not ERROR (Nova's interrupted build): as a failed unshelve, offloaded with no host and no claim."""
    uuid = await pair.h1.add(vm_state="shelved_offloaded", task_state="spawning", power_state=ps.NOSTATE)
    await _open(pair, uuid, "unshelve", "compute_unshelve_instance")
    async with pair.h1.db.write() as conn:
        assert await placement.claim(conn, await pair.provider("h1"), uuid, "p", "u", OLD_USAGE)
    await pair.restart1()
    await _assert_offloaded(pair, uuid)
    assert await pair.h1.faults(uuid) == [interrupted(uuid, "unshelving")]
    assert (await pair.h1.actions(uuid))[-1] == ("unshelve", "u", [("compute_unshelve_instance", "Error")])


async def _open(pair: Pair, uuid: str, action: str, event: str) -> None:
    ctx = context()
    async with pair.h1.db.write() as conn:
        await actions.action_start(conn, ctx, [uuid], action)
        await actions.event_start(conn, ctx, uuid, event, host="h1")


# --- evacuation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "task"), [("accepted", "rebuilding"), ("pre-migrating", "rebuild_spawning")])
async def test_a_source_back_while_it_is_evacuated_destroys_its_guest_and_cleans_up_after(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, status: str, task: str) -> None:
    """Nova's ``_destroy_evacuated_instances`` for evacuations under way: not ERROR (an interrupted rebuild), the
    guest here gone; once the destination is done, the usage the migration held here goes."""
    monkeypatch.setattr(startup_moves, "EVACUATION_POLL", 0.01)
    uuid, migration = await pair.move(task, status, kind=records.EVACUATION, action="evacuate")
    h1 = pair.h1
    await h1.manager.cleanup_host()  # a restart that does not wait for the watch (it ends with the evacuation)
    h1.manager = ComputeManager(h1.conf, h1.db, h1.transport, host="h1", driver=h1.driver, images=None)
    await h1.transport.listen("compute", h1.manager, server="h1")
    await h1.manager.init_host()
    assert await pair.h1.states(uuid) == ("active", task, ps.RUNNING)  # the evacuation's, untouched
    assert uuid not in pair.h1.driver.guests
    assert await pair.h1.faults(uuid) == []
    assert await pair.allocations(migration["uuid"]) == {"h1": OLD_USAGE}
    async with pair.h1.db.write() as conn:  # the destination finishes the evacuation
        await instances.update_instance(conn, uuid, {"host": "h2", "node": "h2", "task_state": None})
        await records.update_migration(conn, migration["id"], {"status": "done"})
    await pair.settle()
    assert (await pair.migration(migration["id"]))["status"] == "completed"
    assert await pair.allocations(migration["uuid"]) == {}
    assert await pair.allocations(uuid) == {"h2": OLD_USAGE}


@pytest.mark.parametrize(("status", "task"), [("accepted", "rebuilding"), ("pre-migrating", "rebuild_spawning")])
async def test_an_evacuation_to_a_restarted_destination_fails_cleanly(pair: Pair, status: str, task: str) -> None:
    uuid, migration = await pair.move(task, status, kind=records.EVACUATION, action="evacuate", guest=None,
                                      events=("compute_rebuild_instance",))
    pair.driver2.guests[uuid] = _Guest(uuid, "vm", ps.NOSTATE, 1, 64)  # what the spawn had made
    await pair.restart2()
    assert (await pair.h1.states(uuid))[:2] == ("error", None)
    assert (await pair.h1.get(uuid))["host"] == "h1"
    assert uuid not in pair.driver2.guests
    assert (await pair.migration(migration["id"]))["status"] == "failed"
    assert await pair.allocations(uuid) == {"h1": OLD_USAGE}
    assert await pair.allocations(migration["uuid"]) == {}
    assert await pair.h1.faults(uuid) == [interrupted(uuid, task, "h2")]
    assert (await pair.h1.actions(uuid))[-1] == ("evacuate", "u", [("compute_rebuild_instance", "Error")])
