"""API workers: how many (``[api] workers``, Nova's ``osapi_compute_workers``, the CPUs by default on a shared
transport), refused on the in-process transport, and an address already taken is a one-line start-up error."""

from __future__ import annotations

import os
import socket

import pytest

from stratus import cli, workers
from stratus import conf as conf_mod
from stratus.service import StartupError

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"


def _conf(**sections: dict[str, object]) -> conf_mod.cfg.ConfigOpts:
    return conf_mod.load(overrides=sections)


def test_default_is_the_cpus_on_a_shared_transport_and_one_in_process() -> None:
    assert workers.worker_count(_conf(DEFAULT={"transport_url": RABBIT})) == (os.cpu_count() or 1)
    assert workers.worker_count(_conf()) == 1


def test_api_workers_wins_over_novas_name() -> None:
    assert workers.worker_count(_conf(DEFAULT={"transport_url": RABBIT, "osapi_compute_workers": 3})) == 3
    assert workers.worker_count(_conf(DEFAULT={"transport_url": RABBIT, "osapi_compute_workers": 3},
                                      api={"workers": 5})) == 5


def test_more_than_one_worker_on_the_in_process_transport_is_refused() -> None:
    assert workers.worker_count(_conf(api={"workers": 1})) == 1
    with pytest.raises(StartupError, match=r"\[api\] workers = 2 needs a shared transport_url"):
        workers.worker_count(_conf(api={"workers": 2}))


def test_stratus_api_refuses_it_in_one_line(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    config = f"{tmp_path}/api.conf"
    with open(config, "w") as f:
        f.write(f"[DEFAULT]\nstate_path = {tmp_path}\n[DEFAULT]\nosapi_compute_workers = 4\n")
    assert cli.main(["--config-file", config, "api"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["stratus: [api] workers = 4 needs a shared transport_url (rabbit://...): with local:// each "
                   "worker's casts would reach no conductor; set workers = 1"]


def test_addresses_leave_out_identity_under_keystone() -> None:
    conf = _conf(api={"auth_strategy": "keystone"})
    roles = cli.ROLES["api"]
    assert workers.addresses(conf, roles) == [("127.0.0.1", 8774), ("127.0.0.1", 9292), ("127.0.0.1", 9696)]
    assert len(workers.addresses(_conf(), roles)) == 4


def test_a_taken_address_is_a_startup_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            workers.bind("127.0.0.1", port)


def _supervisor(write_fd: int) -> None:
    """Stands for the API's parent: forks a worker that follows its death and tells its pid, then waits."""
    import time

    if os.fork() == 0:
        workers._die_with_parent(os.getppid())
        os.write(write_fd, str(os.getpid()).encode())  # only now: following the parent's death is set up
        time.sleep(60)
        os._exit(0)
    time.sleep(60)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_does_not_outlive_its_parent_killed_by_sigkill() -> None:
    """The supervisor SIGKILLed (a test's or an operator's last resort): its worker is killed too instead of
    serving on alone."""
    import multiprocessing
    import signal
    import time

    read_fd, write_fd = os.pipe()
    supervisor = multiprocessing.get_context("fork").Process(target=_supervisor, args=(write_fd,))
    supervisor.start()
    worker = int(os.read(read_fd, 32))
    assert _alive(worker)
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.join(10)
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, "the worker outlived its parent"
        time.sleep(0.05)
    os.close(read_fd)
    os.close(write_fd)
