"""The config drive volume (read back with pycdlib, as a guest's mount would) and when one is built."""

from __future__ import annotations

from pathlib import Path

import pycdlib

from stratus import conf as conf_mod
from stratus.compute import config_drive
from stratus.metadata import configdrive


def test_volume_label_names_and_content(tmp_path: Path) -> None:
    path = str(tmp_path / "disk.config")
    files = [("openstack/latest/meta_data.json", b'{"uuid": "u"}'), ("openstack/2012-08-10/user_data", b"hi"),
             ("ec2/2009-04-04/meta-data.json", b"{}")]
    configdrive.make_drive(path, files)
    label, found = configdrive.read_drive(path)
    assert label == "config-2"
    assert found == dict(files)
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:  # Joliet and Rock Ridge both there, with the same lower-case names
        assert iso.has_joliet() and iso.has_rock_ridge()
        names = {c.file_identifier().decode("utf-16-be") for c in iso.list_children(joliet_path="/openstack/latest")}
        assert "meta_data.json" in names
    finally:
        iso.close()
    assert not Path(path + ".part").exists()


def test_required_by() -> None:
    conf = conf_mod.load()
    assert not config_drive.required_by(conf, {"config_drive": ""}, {})
    assert config_drive.required_by(conf, {"config_drive": "True"}, {})
    assert config_drive.required_by(conf, {"config_drive": ""}, {"img_config_drive": "mandatory"})
    assert config_drive.required_by(conf, {"config_drive": ""}, {"properties": {"img_config_drive": "mandatory"}})
    assert not config_drive.required_by(conf, {"config_drive": ""}, {"img_config_drive": "optional"})
    forced = conf_mod.load(overrides={"DEFAULT": {"force_config_drive": True}})
    assert config_drive.required_by(forced, {"config_drive": "", "launched_at": None}, {})
    # an instance launched before the option was set keeps going without one (Nova's rule)
    assert not config_drive.required_by(forced, {"config_drive": "", "launched_at": "2026-01-01"}, {})
