"""The README's description of the first command matches the parser and the defaults it describes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from stratus import cli, conf

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def _paragraph(starting: str) -> str:
    start = README.index(starting)
    return README[start:README.index("\n\n", start)]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text))


def test_the_all_in_one_flags_the_readme_lists_exist() -> None:
    listed = _flags(_paragraph("Arguments after the command go to `stratus all-in-one`"))
    assert {"--fake-hosts", "--listen", "--admin-password", "--config-file"} <= listed
    aio = _subparsers()["all-in-one"]
    assert listed <= set(aio._option_string_actions), listed - set(aio._option_string_actions)
    script = (ROOT / "scripts" / "all-in-one.sh").read_text()
    header = " ".join(line for line in script.splitlines() if line.startswith("#"))
    assert _flags(header) <= set(aio._option_string_actions), _flags(header) - set(aio._option_string_actions)


def test_the_common_options_work_on_every_subcommand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paragraph = _paragraph("Every `stratus` subcommand takes")
    common = _flags(re.split(r"\s+before or after its name", paragraph)[0])
    assert common == {"--config-file", "--state-path", "--debug"}
    for name, sub in _subparsers().items():
        assert common <= set(sub._option_string_actions), name
    example = re.search(r"`(stratus [^`]+)`", paragraph)
    assert example is not None
    words = example.group(1).split()[1:]
    monkeypatch.chdir(tmp_path)
    for word in words:
        if word.endswith(".conf"):
            (tmp_path / word).write_text(f"[DEFAULT]\nhost = from-{word}\n")
    run = cli.prepare(words)  # the example, as written, reads both files (the later one wins)
    assert run.command == "compute" and run.hosts == ["h1"] and run.conf.host == "from-b.conf"


def test_the_defaults_table_is_the_defaults() -> None:
    defaults = conf.load()
    table = README[README.index("| part | where |"):README.index("\n\n", README.index("| part | where |"))]
    assert f"http://127.0.0.1:{defaults.identity.listen_port}/v3" in table
    assert f"http://127.0.0.1:{defaults.osapi_compute_listen_port}/v2.1" in table
    assert f"http://127.0.0.1:{defaults.image_store.listen_port}`" in table
    assert f"http://127.0.0.1:{defaults.metadata_listen_port}`" in table
    hosts = cli.prepare(["all-in-one"]).hosts
    assert hosts is not None
    assert f"{len(hosts)} simulated hosts `{hosts[0]}`..`{hosts[-1]}`" in table
    assert "SQLite file `./data/stratus.sqlite`" in table and defaults.database.connection is None
    assert 'exec .venv/bin/stratus --state-path "${STRATUS_STATE_PATH:-$PWD/data}"' in \
        (ROOT / "scripts" / "all-in-one.sh").read_text()
