"""The ``stratus`` command line: common options before or after the subcommand, and the hosts a compute serves
(scripts/all-in-one.sh passing them on: test_scripts.py).

``cli.prepare`` parses and loads the configuration exactly as ``stratus`` does, without starting anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus import cli


def _conf_file(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("command", ["all-in-one", "api", "conductor", "scheduler", "compute"])
def test_common_options_after_the_subcommand(command: str, tmp_path: Path) -> None:
    conf_file = _conf_file(tmp_path / "a.conf", "[DEFAULT]\nhost = from-file\n[scheduler]\nmax_attempts = 7\n")
    run = cli.prepare([command, "--config-file", conf_file, "--state-path", str(tmp_path / "d"), "--debug"])
    assert run.command == command
    assert run.conf.host == "from-file"
    assert run.conf.scheduler.max_attempts == 7
    assert run.conf.state_path == str(tmp_path / "d")
    assert run.conf.debug is True


def test_db_sync_takes_them_too(tmp_path: Path) -> None:
    conf_file = _conf_file(tmp_path / "a.conf", "[DEFAULT]\nhost = h\n")
    run = cli.prepare(["db", "sync", "--config-file", conf_file])
    assert (run.command, run.conf.host) == ("db", "h")


def test_options_before_and_after_combine(tmp_path: Path) -> None:
    first = _conf_file(tmp_path / "first.conf", "[DEFAULT]\nhost = first\n[scheduler]\nmax_attempts = 5\n")
    second = _conf_file(tmp_path / "second.conf", "[DEFAULT]\nhost = second\n")
    run = cli.prepare(["--config-file", first, "--state-path", str(tmp_path / "before"),
                       "compute", "--config-file", second, "--state-path", str(tmp_path / "after")])
    assert run.conf.host == "second"  # files append: the one after the subcommand comes last and wins
    assert run.conf.scheduler.max_attempts == 5  # and what only the first sets stays
    assert run.conf.state_path == str(tmp_path / "after")  # the later --state-path wins
    assert run.conf.debug is False
    assert cli.prepare(["--debug", "compute"]).conf.debug is True
    args = cli.parse_args(["--config-file", first, "all-in-one", "--config-file", second])
    assert args.config_file == [first, second]
    assert not any(name.startswith("sub_") for name in vars(args))


def test_compute_with_the_fake_driver_runs_exactly_the_host_it_is_given(tmp_path: Path) -> None:
    assert cli.prepare(["compute", "--host", "hostA"]).hosts == ["hostA"]
    many = _conf_file(tmp_path / "many.conf", "[fake_driver]\nhost_count = 3\n")
    # host_count is the all-in-one's fleet; a compute agent started for one host is that host
    assert cli.prepare(["compute", "--config-file", many, "--host", "hostA"]).hosts == ["hostA"]
    named = _conf_file(tmp_path / "named.conf", "[DEFAULT]\nhost = box\n")
    assert cli.prepare(["compute", "--config-file", named]).hosts == ["box"]
    assert cli.prepare(["compute", "--host", "hostA", "--fake-hosts", "3"]).hosts == ["hostA-1", "hostA-2", "hostA-3"]
    assert cli.prepare(["all-in-one"]).hosts == ["compute-1", "compute-2", "compute-3", "compute-4"]
    assert cli.prepare(["all-in-one", "--config-file", many]).hosts == ["compute-1", "compute-2", "compute-3"]
    assert cli.prepare(["all-in-one", "--fake-hosts", "2"]).hosts == ["compute-1", "compute-2"]
    assert cli.prepare(["conductor"]).hosts is None


def test_a_missing_or_broken_config_file_is_a_clear_error(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.conf")
    assert cli.main(["all-in-one", "--config-file", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stratus: Failed to find some config files: ") and missing in err
    broken = _conf_file(tmp_path / "broken.conf", "host = no section\n")
    assert cli.main(["compute", "--config-file", broken]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stratus: ") and broken in err and "Traceback" not in err
