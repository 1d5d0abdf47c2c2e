"""docs/multinode.md: every INI block loads with the options as the code defines them, and keeps no `# comment`
after a value (oslo.config would keep it in the value)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stratus import conf as conf_mod
from stratus.rpc import url

DOC = Path(__file__).parents[2] / "docs" / "multinode.md"
BLOCKS = re.findall(r"```ini\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_ini_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS)
def test_ini_block_loads(block: str, tmp_path: Path) -> None:
    assert not [line for line in block.splitlines() if "#" in line and not line.lstrip().startswith("#")]
    path = tmp_path / "stratus.conf"
    path.write_text(block)
    conf = conf_mod.load([str(path)])
    for line in block.splitlines():
        if "=" in line:
            name = line.split("=", 1)[0].strip()
            group = next(g for g, opts in conf_mod.GROUPS.items() if any(o.name == name for o in opts))
            value = conf[name] if group == "DEFAULT" else conf[group][name]
            assert value is not None
    if conf.transport_url.startswith("rabbit:"):
        url.parse(conf.transport_url)
