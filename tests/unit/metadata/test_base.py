"""The metadata documents against Nova's documented shapes (doc/source/user/metadata.rst, nova/api/metadata)."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from stratus.metadata import base

UUID = "d8e02d56-2648-49a3-bf97-6be8f1204f38"
KEY = "ssh-rsa AAAAB3NzaC1yc2E test@stratus"


def instance(**extra: Any) -> dict[str, Any]:
    row = {"uuid": UUID, "id": 42, "display_name": "test", "hostname": "test", "launch_index": 0,
           "availability_zone": "nova", "project_id": "p1", "user_id": "u1", "reservation_id": "r-abcd1234",
           "key_name": "mykey", "key_data": KEY, "user_data": base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
           "image_ref": "3f0a1ad8-6cbc-4b4c-8f0c-2e9b5d6f0a11", "kernel_id": "", "ramdisk_id": "",
           "flavor": {"name": "m1.tiny"}, "metadata": {"role": "web"}, "system_metadata": {},
           "security_groups": ["default"], "root_device_name": None}
    return {**row, **extra}


def md(**extra: Any) -> base.InstanceMetadata:
    return base.InstanceMetadata(instance(**extra), keypair={"name": "mykey", "type": "ssh", "public_key": KEY},
                                 vendordata={"cloud": "stratus"})


def test_meta_data_json_every_version() -> None:
    m = md()
    first = json.loads(m.lookup("/openstack/2012-08-10/meta_data.json"))
    assert first == {"uuid": UUID, "meta": {"role": "web"}, "public_keys": {"mykey": KEY},
                     "keys": [{"name": "mykey", "type": "ssh", "data": KEY}], "hostname": "test.novalocal",
                     "name": "test", "launch_index": 0, "availability_zone": "nova"}
    assert m.mimetype == "application/json"
    added = {"2013-04-04": {"random_seed"}, "2015-10-15": {"project_id"}, "2016-06-30": {"devices"},
             "2020-10-14": {"dedicated_cpus"}}
    keys = set(first)
    for version in base.OPENSTACK_VERSIONS:
        keys |= added.get(version, set())
        doc = json.loads(m.lookup(f"/openstack/{version}/meta_data.json"))
        assert set(doc) == keys, version
    latest = json.loads(m.lookup("/openstack/latest/meta_data.json"))
    assert set(latest) == keys
    assert latest["project_id"] == "p1" and latest["devices"] == [] and latest["dedicated_cpus"] == []
    assert len(base64.b64decode(latest["random_seed"])) == 512


def test_key_type_from_the_key_pair_and_without_one() -> None:
    x509 = base.InstanceMetadata(instance(), keypair={"name": "mykey", "type": "x509", "public_key": KEY})
    assert json.loads(x509.lookup("openstack/latest/meta_data.json"))["keys"][0]["type"] == "x509"
    # the key pair was deleted (or replaced) since the boot: the instance's own copy of the key still counts
    gone = base.InstanceMetadata(instance(), keypair=None)
    assert json.loads(gone.lookup("openstack/latest/meta_data.json"))["public_keys"] == {"mykey": KEY}
    none = json.loads(md(key_name=None, key_data=None).lookup("openstack/latest/meta_data.json"))
    assert "public_keys" not in none and "keys" not in none


def test_openstack_listings_per_version() -> None:
    m = md()
    assert m.lookup("/openstack", today=datetime.date(2026, 1, 1)) == [*base.OPENSTACK_VERSIONS, "latest"]
    assert m.lookup("/openstack", today=datetime.date(2024, 1, 1)) == [*base.OPENSTACK_VERSIONS[:-1], "latest"]
    assert m.lookup("/openstack/2012-08-10") == ["meta_data.json", "user_data"]
    assert m.lookup("/openstack/latest/") == ["meta_data.json", "user_data", "password", "vendor_data.json",
                                              "network_data.json", "vendor_data2.json"]
    assert md(user_data=None).lookup("/openstack/2013-10-17") == ["meta_data.json", "password", "vendor_data.json"]


def test_openstack_documents() -> None:
    m = md()
    assert m.lookup("/openstack/latest/user_data") == b"#!/bin/sh\necho hi\n"
    assert m.lookup("/openstack/latest/network_data.json") == b"{}"
    assert m.lookup("/openstack/latest/vendor_data.json") == b'{"cloud": "stratus"}'
    assert m.lookup("/openstack/latest/vendor_data2.json") == b'{"static": {"cloud": "stratus"}}'
    assert m.lookup("/openstack/latest/password") is base.PASSWORD
    off = base.InstanceMetadata(instance(), vendordata={"cloud": "x"}, vendordata_providers=[])
    assert off.lookup("/openstack/latest/vendor_data.json") == b"{}"
    assert off.lookup("/openstack/latest/vendor_data2.json") == b"{}"
    for missing in ("/openstack/2012-08-10/password", "/openstack/2012-08-10/vendor_data.json",
                    "/openstack/2016-06-30/vendor_data2.json", "/openstack/2099-01-01/meta_data.json",
                    "/openstack/latest/nothing", "/openstack/content"):
        with pytest.raises(base.InvalidMetadataPath):
            m.lookup(missing)
    with pytest.raises(base.InvalidMetadataPath):
        md(user_data=None).lookup("/openstack/latest/user_data")


def test_ec2_tree() -> None:
    m = md()
    assert m.lookup("/") == [*base.VERSIONS, "latest"]
    data = m.lookup("/latest/meta-data")
    listing = base.ec2_md_print(data).decode().split("\n")
    assert listing == ["ami-id", "ami-launch-index", "ami-manifest-path", "block-device-mapping/", "hostname",
                       "instance-action", "instance-id", "instance-type", "local-hostname", "local-ipv4",
                       "placement/", "public-hostname", "public-ipv4", "public-keys/", "reservation-id",
                       "security-groups"]
    assert m.lookup("/latest/meta-data/instance-id") == "i-0000002a"
    assert m.lookup("/latest/meta-data/ami-id").startswith("ami-")
    assert m.lookup("/latest/meta-data/hostname") == "test.novalocal"
    assert m.lookup("/latest/meta-data/instance-type") == "m1.tiny"
    assert m.lookup("/latest/meta-data/placement/availability-zone") == "nova"
    assert m.lookup("/latest/meta-data/instance-action") == "none"
    assert base.ec2_md_print(m.lookup("/latest/meta-data/public-keys")) == b"0=mykey"
    assert base.ec2_md_print(m.lookup("/latest/meta-data/public-keys/0")) == b"openssh-key"
    assert m.lookup("/latest/meta-data/public-keys/0/openssh-key") == KEY
    assert base.ec2_md_print(m.lookup("/latest/meta-data/block-device-mapping")) == b"ami\nephemeral0\nroot\nswap"
    assert base.ec2_md_print(m.lookup("/latest/meta-data/security-groups")) == b"default"
    assert m.lookup("/latest/user-data") == b"#!/bin/sh\necho hi\n"
    assert base.ec2_md_print(m.lookup("/2009-04-04")) == b"meta-data/\nuser-data"
    with pytest.raises(base.InvalidMetadataPath):
        m.lookup("/2010-01-01/meta-data")
    with pytest.raises(base.InvalidMetadataPath):
        m.lookup("/latest/meta-data/security-groups/default")


def test_ec2_keys_per_version() -> None:
    m = md()
    first = set(m.get_ec2_metadata("1.0")["meta-data"])
    assert first == {"ami-id", "ami-launch-index", "ami-manifest-path", "instance-id", "hostname", "local-ipv4",
                     "reservation-id", "security-groups", "public-keys"}
    added = {"2007-01-19": {"local-hostname", "public-hostname", "public-ipv4"}, "2007-08-29": {"instance-type"},
             "2007-12-15": {"block-device-mapping"}, "2008-02-01": {"placement"}, "2008-09-01": {"instance-action"}}
    keys = set(first)
    for version in base.VERSIONS:
        keys |= added.get(version, set())
        assert set(m.get_ec2_metadata(version)["meta-data"]) == keys, version


def test_local_ipv4_is_the_requester_without_a_fixed_ip() -> None:
    m = base.InstanceMetadata(instance(), address="10.0.0.5")
    assert m.lookup("/latest/meta-data/local-ipv4") == "10.0.0.5"


def test_password_chunks() -> None:
    assert base.extract_password({}) is None
    stored = base.convert_password("x" * 600)
    assert [len(stored[f"password_{i}"]) for i in range(4)] == [255, 255, 90, 0]
    assert base.extract_password({**stored, "image_os": "linux"}) == "x" * 600
    assert md(system_metadata=stored).password == "x" * 600


def test_dhcp_domain_empty_is_the_bare_hostname() -> None:
    m = base.InstanceMetadata(instance(), dhcp_domain="")
    assert json.loads(m.lookup("openstack/latest/meta_data.json"))["hostname"] == "test"


def test_config_drive_files() -> None:
    m = md()
    files = dict(m.metadata_for_config_drive("1.0 2007-01-19 2007-03-01 2007-08-29 2007-10-10 2007-12-15 "
                                             "2008-02-01 2008-09-01".split(" ")))
    ec2 = {p for p in files if p.startswith("ec2/")}
    assert ec2 == {"ec2/2009-04-04/meta-data.json", "ec2/2009-04-04/user-data", "ec2/latest/meta-data.json",
                   "ec2/latest/user-data"}
    assert json.loads(files["ec2/latest/meta-data.json"])["public-keys"] == {"0": {"openssh-key": KEY}}
    for version in [*base.OPENSTACK_VERSIONS, "latest"]:
        assert json.loads(files[f"openstack/{version}/meta_data.json"])["uuid"] == UUID
        assert files[f"openstack/{version}/user_data"] == b"#!/bin/sh\necho hi\n"
    assert "openstack/2012-08-10/vendor_data.json" not in files
    assert files["openstack/2013-10-17/vendor_data.json"] == b'{"cloud": "stratus"}'
    assert "openstack/2013-10-17/network_data.json" not in files
    assert files["openstack/2015-10-15/network_data.json"] == b"{}"
    assert "openstack/2016-06-30/vendor_data2.json" not in files
    assert files["openstack/latest/vendor_data2.json"] == b'{"static": {"cloud": "stratus"}}'
    assert not any(p.endswith("password") for p in files)
    every = dict(m.metadata_for_config_drive([]))
    assert {p.split("/")[1] for p in every if p.startswith("ec2/")} == {*base.VERSIONS, "latest"}


def test_injected_files_and_extra_md_in_config_drive_order() -> None:
    """Nova's ``content``: each file is ``openstack/content/NNNN`` and listed in ``files``, which comes after
    ``meta`` and before the extra keys (``admin_pass``) in meta_data.json."""
    m = base.InstanceMetadata(instance(), content=[("/etc/a", b"A"), ("/etc/b", b"\x00B")],
                              extra_md={"admin_pass": "pw"})
    files = dict(m.metadata_for_config_drive([]))
    assert files["openstack/content/0000"] == b"A" and files["openstack/content/0001"] == b"\x00B"
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert list(meta)[:4] == ["uuid", "meta", "files", "admin_pass"]
    assert meta["files"] == [{"path": "/etc/a", "content_path": "/content/0000"},
                             {"path": "/etc/b", "content_path": "/content/0001"}]
    with pytest.raises(base.InvalidMetadataPath):
        m.lookup("/openstack/content/0000")  # the API never serves injected files
    assert "files" not in json.loads(base.InstanceMetadata(instance()).lookup("/openstack/latest/meta_data.json"))
