"""Server power actions and console output through the REST API (and openstacksdk) of a running all-in-one.

Each action's round trip (the task_state while the host works, the states after), the instance actions it
leaves, Nova's 409 for the wrong state, 400s for bad bodies, 404 for someone else's server, failures on the
host, and deleting a server in each power state. Responses are checked against tempest's schemas.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import servers as schema_21
from tempest.lib.api_schema.response.compute.v2_62 import servers as schema_262

from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check

OWNER = "pa-user:pa-proj"
ACCEPTED = schema_21.server_actions_common_schema
#: body, the task_states it may show while the host works (the API's, then the host's steps), then (status,
#: vm_state, power_state), and the instance action
ROUND_TRIP: list[tuple[dict[str, Any], tuple[str, ...], tuple[str, str, int], str]] = [
    ({"os-stop": None}, ("powering-off",), ("SHUTOFF", "stopped", 4), "stop"),
    ({"os-start": None}, ("powering-on",), ("ACTIVE", "active", 1), "start"),
    ({"reboot": {"type": "SOFT"}}, ("rebooting", "reboot_pending", "reboot_started"), ("ACTIVE", "active", 1),
     "reboot"),
    ({"reboot": {"type": "hard"}}, ("rebooting_hard", "reboot_pending_hard", "reboot_started_hard"),
     ("ACTIVE", "active", 1), "reboot"),
    ({"pause": None}, ("pausing",), ("PAUSED", "paused", 3), "pause"),
    ({"unpause": None}, ("unpausing",), ("ACTIVE", "active", 1), "unpause"),
    ({"suspend": None}, ("suspending",), ("SUSPENDED", "suspended", 7), "suspend"),
    ({"resume": None}, ("resuming",), ("ACTIVE", "active", 1), "resume"),
]


def _boot(client: httpx.Client, image_id: str, **extra: Any) -> str:
    resp = boot(client, image_id, **extra)
    assert resp.status_code == 202, resp.text
    server_id = str(resp.json()["server"]["id"])
    assert wait_for_status(client, server_id, {"ACTIVE", "ERROR"})["status"] == "ACTIVE"
    return server_id


def _act(client: httpx.Client, server_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/servers/{server_id}/action", json=body)


def _settled(client: httpx.Client, server_id: str, status: str) -> dict[str, Any]:
    """The server once in ``status`` with no task under way."""
    deadline = time.monotonic() + 30
    while True:
        server = wait_for_status(client, server_id, {status})
        if server["OS-EXT-STS:task_state"] is None:
            return server
        assert time.monotonic() < deadline, server
        time.sleep(0.05)


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as img:
        return upload_image(img)


@pytest.fixture(scope="module")
def slow_image(cloud: Cloud) -> dict[str, Any]:
    """Guests whose every power action takes 0.4 s on the fake hypervisor: long enough to see the task."""
    with cloud.image_client() as img:
        return upload_image(img, fake_power_action_time="0.4")


@pytest.fixture
def server(cloud: Cloud, image: dict[str, Any]) -> Iterator[str]:
    with cloud.client(token=OWNER) as c:
        server_id = _boot(c, image["id"])
        yield server_id
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


def test_each_action_round_trip_and_its_instance_action(cloud: Cloud, slow_image: dict[str, Any]) -> None:
    with cloud.client(token=OWNER) as c:
        server_id = _boot(c, slow_image["id"])
        for body, tasks, (status, vm_state, power), _action in ROUND_TRIP:
            check(ACCEPTED, _act(c, server_id, body))
            during = c.get(f"/servers/{server_id}").json()["server"]
            assert during["OS-EXT-STS:task_state"] in tasks, (body, during)
            after = _settled(c, server_id, status)
            assert (after["OS-EXT-STS:vm_state"], after["OS-EXT-STS:power_state"]) == (vm_state, power), body
            check(schema_21.get_server, c.get(f"/servers/{server_id}"))

    with cloud.client(token=OWNER, version="2.62") as c:
        listed = check(schema_262.list_instance_actions, c.get(f"/servers/{server_id}/os-instance-actions"))
        actions = listed["instanceActions"]
        assert [a["action"] for a in actions] == [a for *_, a in reversed(ROUND_TRIP)] + ["create"]
        assert all(a["message"] is None and a["user_id"] == "pa-user" for a in actions)
        for entry, (*_, name) in zip(actions, reversed(ROUND_TRIP), strict=False):
            shown = check(schema_262.show_instance_action,
                          c.get(f"/servers/{server_id}/os-instance-actions/{entry['request_id']}"))
            [event] = shown["instanceAction"]["events"]
            assert (event["event"], event["result"]) == (f"compute_{name}_instance", "Success")
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


def test_sdk_power_actions_and_console(cloud: Cloud, image: dict[str, Any]) -> None:
    conn = cloud.sdk(token=OWNER)
    server = conn.compute.create_server(name="pa-sdk", image_id=image["id"], flavor_id="1", networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=30, interval=0.1)
    for call, status in ((conn.compute.stop_server, "SHUTOFF"), (conn.compute.start_server, "ACTIVE"),
                         (conn.compute.pause_server, "PAUSED"), (conn.compute.unpause_server, "ACTIVE"),
                         (conn.compute.suspend_server, "SUSPENDED"), (conn.compute.resume_server, "ACTIVE")):
        call(server)
        server = conn.compute.wait_for_server(server, status=status, wait=30, interval=0.05)
    conn.compute.reboot_server(server, "HARD")
    conn.compute.wait_for_server(server, status="ACTIVE", wait=30, interval=0.05)
    output = conn.compute.get_server_console_output(server)["output"]
    assert output.count("login:") == 3  # booted, started again, rebooted
    assert "memory saved to disk" in output and "reboot (HARD)" in output
    tail = conn.compute.get_server_console_output(server, length=2)["output"]
    assert tail == output.split("\n")[-2] + "\n"  # Nova's tail: the last 2 newline-separated pieces
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=30, interval=0.1)


def test_console_output_lengths(cloud: Cloud, server: str) -> None:
    with cloud.client(token=OWNER) as c:
        def console(length: Any = "absent") -> str:
            body = {} if length == "absent" else {"length": length}
            return str(check(schema_21.get_console_output,
                             _act(c, server, {"os-getConsoleOutput": body}))["output"])

        full = console()
        lines = full.splitlines()
        assert full.endswith("\n") and lines[-1].endswith("login:") and "booting (boot 1)" in full
        assert console(None) == console(-1) == console("-1") == full
        assert console(0) == console("0") == ""
        assert console(1) == ""  # the piece after the last newline
        assert console(2) == console("2") == lines[-1] + "\n"
        assert console(100) == full
        assert console(2**63 - 1) == console(str(2**63 - 1)) == full
        for huge in (2**64, str(2**70)):  # past the 64-bit range every integer must fit
            assert fault(_act(c, server, {"os-getConsoleOutput": {"length": huge}}), 400, "badRequest") == (
                f"Invalid input for field/attribute length. Value: {huge}. {huge} is greater than the maximum of "
                "9223372036854775807")
        bad: Any
        for bad in (-2, "-3", "x", "1.5", 1.5, True, {}, []):
            fault(_act(c, server, {"os-getConsoleOutput": {"length": bad}}), 400, "badRequest")
        fault(_act(c, server, {"os-getConsoleOutput": {"lines": 1}}), 400, "badRequest")
        fault(_act(c, server, {"os-getConsoleOutput": None}), 400, "badRequest")


def test_wrong_states_are_novas_409(cloud: Cloud, server: str) -> None:
    with cloud.client(token=OWNER) as c:
        def conflict(body: dict[str, Any]) -> str:
            return fault(_act(c, server, body), 409, "conflictingRequest")

        body: dict[str, Any]
        for body, name in (({"os-start": None}, "start"), ({"unpause": None}, "unpause"),
                           ({"resume": None}, "resume")):
            assert conflict(body) == f"Cannot '{name}' instance {server} while it is in vm_state active"
        check(ACCEPTED, _act(c, server, {"os-stop": {}}))  # tempest sends {} for the empty actions
        _settled(c, server, "SHUTOFF")
        for body, name in (({"os-stop": None}, "stop"), ({"pause": None}, "pause"), ({"suspend": None}, "suspend"),
                           ({"reboot": {"type": "SOFT"}}, "reboot")):
            assert conflict(body) == f"Cannot '{name}' instance {server} while it is in vm_state stopped"
        check(ACCEPTED, _act(c, server, {"reboot": {"type": "HARD"}}))  # HARD reboot starts a stopped server
        server_body = _settled(c, server, "ACTIVE")
        assert server_body["OS-EXT-STS:power_state"] == 1


def test_task_under_way_is_a_409_and_only_one_of_concurrent_requests_wins(cloud: Cloud,
                                                                          slow_image: dict[str, Any]) -> None:
    with cloud.client(token=OWNER) as c:
        server_id = _boot(c, slow_image["id"])

        def stop() -> httpx.Response:
            with cloud.client(token=OWNER) as mine:
                return _act(mine, server_id, {"os-stop": None})

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = [f.result() for f in [pool.submit(stop) for _ in range(6)]]
        assert sorted(a.status_code for a in answers) == [202] + [409] * 5
        for a in answers:
            if a.status_code == 409:
                assert fault(a, 409, "conflictingRequest") in (
                    f"Cannot 'stop' instance {server_id} while it is in task_state powering-off",
                    f"Cannot 'stop' instance {server_id} while it is in vm_state stopped")
        message = fault(_act(c, server_id, {"reboot": {"type": "SOFT"}}), 409, "conflictingRequest")
        assert message in (f"Cannot 'reboot' instance {server_id} while it is in task_state powering-off",
                           f"Cannot 'reboot' instance {server_id} while it is in vm_state stopped")
        _settled(c, server_id, "SHUTOFF")
        stops = [a for a in c.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]
                 if a["action"] == "stop"]
        assert len(stops) == 1
        # a HARD reboot may take over from a SOFT one under way, as in Nova
        check(ACCEPTED, _act(c, server_id, {"os-start": None}))
        _settled(c, server_id, "ACTIVE")
        check(ACCEPTED, _act(c, server_id, {"reboot": {"type": "SOFT"}}))
        check(ACCEPTED, _act(c, server_id, {"reboot": {"type": "HARD"}}))
        assert _settled(c, server_id, "ACTIVE")["OS-EXT-STS:power_state"] == 1
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


def test_bad_bodies_are_400(cloud: Cloud, server: str) -> None:
    with cloud.client(token=OWNER) as c:
        cases: list[tuple[Any, str]] = [
            # Nova names the field by the last element of its path
            ({"reboot": {"type": "WARM"}}, "Invalid input for field/attribute type. Value: WARM. 'WARM' is not "
                                           "one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"),
            ({"reboot": {}}, "'type' is a required property"),
            ({"reboot": None}, "None is not of type 'object'"),
            ({"reboot": {"type": "SOFT", "force": True}}, "Additional properties are not allowed ('force' was "
                                                          "unexpected)"),
            ({"frobnicate": None}, "There is no such action: frobnicate"),
            ({"os-stop": None, "os-start": None}, "Malformed request body"),
        ]
        for body, message in cases:
            assert message in fault(_act(c, server, body), 400, "badRequest"), body
        resp = c.post(f"/servers/{server}/action", content=b"not json", headers={"Content-Type": "application/json"})
        fault(resp, 400, "badRequest")
        # the body is checked before the server is looked up, as Nova's schema decorator does
        fault(_act(c, "no-such-server", {"reboot": {"type": "WARM"}}), 400, "badRequest")


def test_someone_elses_or_a_missing_server_is_404(cloud: Cloud, server: str) -> None:
    body: dict[str, Any]
    with cloud.client(token="pa-other:pa-elsewhere") as other, cloud.client(token=OWNER) as c:
        for body in ({"os-stop": None}, {"reboot": {"type": "HARD"}}, {"pause": None},
                     {"os-getConsoleOutput": {}}):
            assert fault(_act(other, server, body), 404, "itemNotFound") == f"Instance {server} could not be found."
            assert fault(_act(c, "nope", body), 404, "itemNotFound") == "Instance nope could not be found."
        assert c.get(f"/servers/{server}").json()["server"]["status"] == "ACTIVE"
    with cloud.client() as admin:  # an admin may act on any project's server
        check(ACCEPTED, _act(admin, server, {"pause": None}))
        _settled(admin, server, "PAUSED")


def test_servers_in_each_power_state_can_be_deleted(cloud: Cloud, image: dict[str, Any]) -> None:
    with cloud.client(token=OWNER) as c:
        for body, status in (({"os-stop": None}, "SHUTOFF"), ({"pause": None}, "PAUSED"),
                             ({"suspend": None}, "SUSPENDED")):
            server_id = _boot(c, image["id"])
            check(ACCEPTED, _act(c, server_id, body))
            _settled(c, server_id, status)
            assert c.delete(f"/servers/{server_id}").status_code == 204
            wait_gone(c, server_id)


def test_host_failures_revert_the_task_or_error_the_server(cloud: Cloud) -> None:
    """The fake hypervisor fails pause and reboot for this image: a failed pause leaves the server as it was, a
    failed reboot of a running guest too; a failed reboot whose guest is off puts the server in ERROR."""
    with cloud.image_client() as img:
        image = upload_image(img, fake_fail_power_actions="pause,reboot")
    with cloud.client(token=OWNER) as c, cloud.client() as admin:
        server_id = _boot(c, image["id"])
        check(ACCEPTED, _act(c, server_id, {"pause": None}))
        assert _settled(c, server_id, "ACTIVE")["OS-EXT-STS:power_state"] == 1
        check(ACCEPTED, _act(c, server_id, {"reboot": {"type": "SOFT"}}))
        _settled(c, server_id, "ACTIVE")
        check(ACCEPTED, _act(c, server_id, {"os-stop": None}))
        _settled(c, server_id, "SHUTOFF")
        check(ACCEPTED, _act(c, server_id, {"reboot": {"type": "HARD"}}))
        failed = _settled(c, server_id, "ERROR")
        assert failed["OS-EXT-STS:power_state"] == 4
        assert failed["fault"]["message"].startswith("Simulated reboot failure on compute-")
        actions = admin.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]
        assert [(a["action"], a["message"]) for a in actions] == [
            ("reboot", "Error"), ("stop", None), ("reboot", "Error"), ("pause", "Error"), ("create", None)]
        pause = admin.get(f"/servers/{server_id}/os-instance-actions/{actions[3]['request_id']}").json()
        [event] = pause["instanceAction"]["events"]
        assert event["event"] == "compute_pause_instance" and event["result"] == "Error"
        assert "Simulated pause failure" in event["traceback"]
        # ERROR allows stop (Nova), and its HARD reboot
        check(ACCEPTED, _act(c, server_id, {"os-stop": None}))
        assert _settled(c, server_id, "SHUTOFF")["OS-EXT-STS:vm_state"] == "stopped"
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


def test_servers_without_a_host_or_never_launched_are_409(cloud: Cloud) -> None:
    with cloud.image_client() as img:
        everywhere = upload_image(img, fake_fail_on_hosts="compute-1,compute-2,compute-3,compute-4")
        refused = upload_image(img, fake_fail_permanently="true")
    with cloud.client(token=OWNER) as c:
        no_host = boot(c, everywhere["id"]).json()["server"]["id"]
        never_launched = boot(c, refused["id"]).json()["server"]["id"]
        wait_for_status(c, no_host, {"ERROR"})
        wait_for_status(c, never_launched, {"ERROR"})
        assert fault(_act(c, no_host, {"os-stop": None}), 409, "conflictingRequest") == \
            f"Instance {no_host} is not ready"
        assert fault(_act(c, no_host, {"os-getConsoleOutput": {}}), 409, "conflictingRequest") == \
            f"Instance {no_host} is not ready"
        assert fault(_act(c, no_host, {"reboot": {"type": "HARD"}}), 409, "conflictingRequest") == \
            f"Instance {no_host} is in an invalid state for 'reboot'"  # never launched
        assert fault(_act(c, never_launched, {"os-stop": None}), 409, "conflictingRequest") == \
            f"Instance {never_launched} is in an invalid state for 'stop'"
        for server_id in (no_host, never_launched):
            c.delete(f"/servers/{server_id}")
            wait_gone(c, server_id)


def test_lock_refuses_the_owners_changes_until_unlocked(cloud: Cloud, server: str) -> None:
    """os-lock-server: the owner's stop and delete are 409 while locked (an admin's are not); a lock an admin
    took is the admin's to lift (unlock_override); ``locked`` shows from 2.9; both are instance actions."""
    with cloud.client(token=OWNER, version="2.9") as c, cloud.client(version="2.9") as admin:
        check(ACCEPTED, _act(c, server, {"lock": None}))
        assert c.get(f"/servers/{server}").json()["server"]["locked"] is True
        assert fault(_act(c, server, {"os-stop": None}), 409, "conflictingRequest") == \
            f"Instance {server} is locked"
        assert fault(c.delete(f"/servers/{server}"), 409, "conflictingRequest") == f"Instance {server} is locked"
        assert fault(c.put(f"/servers/{server}/metadata/k", json={"meta": {"k": "v"}}), 409,
                     "conflictingRequest") == f"Instance {server} is locked"
        assert fault(c.delete(f"/servers/{server}/metadata/k"), 409, "conflictingRequest") == \
            f"Instance {server} is locked"
        assert c.get(f"/servers/{server}/metadata").json()["metadata"] == {}  # nothing written
        assert c.get("/servers/detail", params={"locked": "true"}).json()["servers"][0]["id"] == server
        check(ACCEPTED, _act(c, server, {"unlock": None}))
        assert c.get(f"/servers/{server}").json()["server"]["locked"] is False
        check(ACCEPTED, _act(admin, server, {"lock": None}))  # locked by an admin
        assert fault(_act(c, server, {"unlock": None}), 403, "forbidden") == \
            "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed."
        check(ACCEPTED, _act(admin, server, {"os-stop": None}))  # admins are not held by a lock
        _settled(admin, server, "SHUTOFF")
        check(ACCEPTED, _act(admin, server, {"unlock": None}))
        actions = [a["action"] for a in c.get(f"/servers/{server}/os-instance-actions").json()["instanceActions"]]
        assert actions[:4] == ["unlock", "stop", "lock", "unlock"]
    with cloud.client(token="pa-other:pa-elsewhere") as other:
        assert fault(_act(other, server, {"lock": None}), 404, "itemNotFound") == \
            f"Instance {server} could not be found."
