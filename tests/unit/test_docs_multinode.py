"""docs/multinode.md: its INI blocks keep no `# comment` after a value (oslo.config would keep it in the value)
and each transport URL parses; that each option exists with a valid value (keystoneauth's included) is checked
for every doc by test_config_docs."""

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
    if conf.transport_url.startswith("rabbit:"):
        url.parse(conf.transport_url)
