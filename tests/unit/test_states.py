from __future__ import annotations

from stratus.objects.states import states_from_status, status_from_state, task_states


def test_status_from_state() -> None:
    assert status_from_state("building", "scheduling") == "BUILD"
    assert status_from_state("active", None) == "ACTIVE"
    assert status_from_state("active", task_states.REBOOTING_HARD) == "HARD_REBOOT"
    assert status_from_state("active", task_states.DELETING) == "ACTIVE"
    assert status_from_state("stopped", None) == "SHUTOFF"
    assert status_from_state("error", None) == "ERROR"
    assert status_from_state("deleted", None) == "DELETED"
    assert status_from_state("nonsense", None) == "UNKNOWN"


def test_states_from_status() -> None:
    assert states_from_status("ACTIVE") == (["active"], None)
    vms, tasks = states_from_status("reboot")
    assert vms == ["active"] and set(tasks or []) == {"rebooting", "reboot_pending", "reboot_started"}
    assert states_from_status("bogus") == ([], [])
