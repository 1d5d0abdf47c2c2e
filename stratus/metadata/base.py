"""Nova's instance metadata: the documents a guest reads from the metadata API and from its config drive.

A pure builder over plain data (the instance record, its key pair, vendor data, network info), so every version's
shape is unit-tested without a server. The versions, keys and the tree the API walks are Nova's
(``nova/api/metadata/base.py``): OpenStack format (``openstack/<version>/meta_data.json``, ``user_data``,
``network_data.json``, ``vendor_data.json``, ``vendor_data2.json``, ``password``) and EC2 format
(``<version>/meta-data/...``, ``<version>/user-data``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os
import posixpath
import zlib
from collections.abc import Iterator
from typing import Any

from stratus.metadata import network_data

#: EC2 versions, oldest first (Nova's ``VERSIONS``)
VERSIONS = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
            "2008-09-01", "2009-04-04"]

# OpenStack versions: each bundles what one release added to the documents
FOLSOM = "2012-08-10"  # meta_data.json, user_data
GRIZZLY = "2013-04-04"  # random_seed, password
HAVANA = "2013-10-17"  # vendor_data.json
LIBERTY = "2015-10-15"  # project_id, network_data.json
NEWTON_ONE = "2016-06-30"  # devices
NEWTON_TWO = "2016-10-06"  # vendor_data2.json
OCATA = "2017-02-22"  # vlan of tagged NICs
ROCKY = "2018-08-27"  # vf_trusted of NICs
VICTORIA = "2020-10-14"  # dedicated_cpus
EPOXY = "2025-04-04"  # share devices
OPENSTACK_VERSIONS = [FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY, VICTORIA, EPOXY]

MD_JSON_NAME = "meta_data.json"
VD_JSON_NAME = "vendor_data.json"
VD2_JSON_NAME = "vendor_data2.json"
NW_JSON_NAME = "network_data.json"
UD_NAME = "user_data"
PASS_NAME = "password"
CONTENT_DIR = "content"
MIME_TYPE_TEXT_PLAIN = "text/plain"
MIME_TYPE_APPLICATION_JSON = "application/json"

#: Nova's block device mapping of an instance without a root device name (``block_device._DEFAULT_MAPPINGS``)
DEFAULT_MAPPINGS = {"ami": "sda1", "ephemeral0": "sda2", "root": "/dev/sda1", "swap": "sda3"}

#: Nova's password chunks in system metadata (``password_0``..``password_3``, 255 characters each)
PASSWORD_CHUNKS = 4
PASSWORD_CHUNK_LENGTH = 255
PASSWORD_MAX_SIZE = PASSWORD_CHUNKS * PASSWORD_CHUNK_LENGTH


class InvalidMetadataPath(Exception):
    """No document at that path (or a version Nova does not know): the API's 404."""


class PasswordHandler:
    """What ``openstack/<version>/password`` resolves to: the handler reads or sets it (GET and POST)."""


PASSWORD = PasswordHandler()


def _dumps(data: Any) -> bytes:
    """``jsonutils.dump_as_bytes``: json.dumps with its default separators, keys in insertion order."""
    return json.dumps(data).encode()


def ec2_id(number: int, template: str = "i-%08x") -> str:
    return template % number


def image_ec2_id(image_id: str | None, template: str = "ami-%08x") -> str | None:
    """An image's EC2 id. Nova numbers images in an S3 mapping table; Stratus derives the number from the image
    id (CRC-32, 31 bits), so it is stable across services without a table."""
    if not image_id:
        return None
    return template % (zlib.crc32(image_id.encode()) & 0x7FFFFFFF)


def extract_password(system_metadata: dict[str, Any]) -> str | None:
    """Nova's ``extract_password``: the ``password_N`` chunks the guest posted, joined, or None."""
    out = "".join(str(system_metadata[k]) for k in sorted(system_metadata) if k.startswith("password_"))
    return out or None


def convert_password(password: str) -> dict[str, str]:
    """Nova's ``convert_password``: the password as ``password_0``..``password_3`` system metadata items."""
    out = {}
    for index in range(PASSWORD_CHUNKS):
        out[f"password_{index}"] = password[:PASSWORD_CHUNK_LENGTH]
        password = password[PASSWORD_CHUNK_LENGTH:]
    return out


def _newer(required: str, requested: str, versions: list[str]) -> bool:
    return versions.index(requested) >= versions.index(required)


@dataclasses.dataclass
class InstanceMetadata:
    """Everything a guest may learn about itself, gathered once (the API caches it per instance).

    ``instance``: the instance row with its ``metadata`` (user key/values), ``system_metadata``, ``flavor`` and
    ``security_groups``. ``keypair``: the key pair named by ``key_name`` (name, type, public_key) or None.
    ``network_info``: Nova's network info model (a list of VIFs); empty until Stratus has guest networking.
    ``extra_md``: more keys for meta_data.json (Nova's config drive passes ``admin_pass`` there).
    ``content``: injected files (path in the guest, decoded content), only the config drive's: each becomes
    ``openstack/content/<NNNN>``, listed in meta_data.json's ``files`` (Nova's ``content``).
    ``address``: the requester's address (the API's), shown as ``local-ipv4`` when the guest has no fixed IP."""

    instance: dict[str, Any]
    keypair: dict[str, Any] | None = None
    network_info: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    vendordata: dict[str, Any] = dataclasses.field(default_factory=dict)
    vendordata_providers: list[str] = dataclasses.field(default_factory=lambda: ["StaticJSON"])
    dhcp_domain: str = "novalocal"
    address: str | None = None
    extra_md: dict[str, Any] = dataclasses.field(default_factory=dict)
    content: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)
    mimetype: str = MIME_TYPE_TEXT_PLAIN

    def __post_init__(self) -> None:
        inst = self.instance
        self.uuid: str = inst["uuid"]
        raw = inst.get("user_data")
        self.userdata_raw: bytes | None = None if raw is None else base64.b64decode(raw)
        self.password = extract_password(inst.get("system_metadata") or {})
        self.launch_metadata: dict[str, str] = dict(inst.get("metadata") or {})
        self.network_metadata = network_data.network_metadata(self.network_info) or {}
        self.fixed_ips, self.floating_ips = network_data.ec2_ip_info(self.network_info)
        self.files: list[dict[str, str]] = []
        self.content_files: dict[str, bytes] = {}
        for path, data in self.content:
            key = f"{len(self.content_files):04d}"
            self.files.append({"path": path, "content_path": f"/{CONTENT_DIR}/{key}"})
            self.content_files[key] = data

    # --- EC2 ---------------------------------------------------------------------------------------------
    def hostname(self) -> str:
        host = str(self.instance.get("hostname") or "")
        return f"{host}.{self.dhcp_domain}" if self.dhcp_domain else host

    def block_device_mapping(self) -> dict[str, str]:
        """Nova's ``instance_block_mapping`` for an instance booted from an image (no volumes yet)."""
        root = self.instance.get("root_device_name")
        if not root:
            return dict(DEFAULT_MAPPINGS)
        out = {"ami": root.removeprefix("/dev/"), "root": root}
        for key, name in (("ephemeral0", "default_ephemeral_device"), ("swap", "default_swap_device")):
            if self.instance.get(name):
                out[key] = self.instance[name]
        return out

    def get_ec2_metadata(self, version: str) -> dict[str, Any]:
        if version == "latest":
            version = VERSIONS[-1]
        if version not in VERSIONS:
            raise InvalidMetadataPath(version)
        inst = self.instance
        hostname = self.hostname()
        meta: dict[str, Any] = {
            "ami-id": image_ec2_id(inst.get("image_ref")),
            "ami-launch-index": inst.get("launch_index", 0),
            "ami-manifest-path": "FIXME",
            "instance-id": ec2_id(int(inst["id"])),
            "hostname": hostname,
            "local-ipv4": (self.fixed_ips[0] if self.fixed_ips else "") or self.address,
            "reservation-id": inst.get("reservation_id"),
            "security-groups": [str(g) for g in inst.get("security_groups") or []],
        }
        if inst.get("key_name"):
            # 'public-keys/' lists '0=<name>', whose own listing is 'openssh-key'
            meta["public-keys"] = {"0": {"_name": f"0={inst['key_name']}", "openssh-key": inst.get("key_data")}}
        if _newer("2007-01-19", version, VERSIONS):
            meta["local-hostname"] = hostname
            meta["public-hostname"] = hostname
            meta["public-ipv4"] = self.floating_ips[0] if self.floating_ips else ""
        if _newer("2007-08-29", version, VERSIONS):
            meta["instance-type"] = (inst.get("flavor") or {}).get("name")
        if _newer("2007-12-15", version, VERSIONS):
            meta["block-device-mapping"] = self.block_device_mapping()
            if inst.get("kernel_id"):
                meta["kernel-id"] = image_ec2_id(inst["kernel_id"], "aki-%08x")
            if inst.get("ramdisk_id"):
                meta["ramdisk-id"] = image_ec2_id(inst["ramdisk_id"], "ari-%08x")
        if _newer("2008-02-01", version, VERSIONS):
            meta["placement"] = {"availability-zone": inst.get("availability_zone")}
        if _newer("2008-09-01", version, VERSIONS):
            meta["instance-action"] = "none"
        data: dict[str, Any] = {"meta-data": meta}
        if self.userdata_raw is not None:
            data["user-data"] = self.userdata_raw
        return data

    # --- OpenStack ---------------------------------------------------------------------------------------
    def metadata_as_json(self, version: str) -> bytes:
        inst = self.instance
        out: dict[str, Any] = {"uuid": self.uuid}
        if self.launch_metadata:
            out["meta"] = self.launch_metadata
        if self.files:
            out["files"] = self.files
        out.update(self.extra_md)
        if inst.get("key_name") and inst.get("key_data"):
            name = str(inst["key_name"])
            key_type = "ssh"
            if self.keypair is not None and self.keypair.get("public_key") == inst["key_data"]:
                key_type = str(self.keypair.get("type") or "ssh")
            out["public_keys"] = {name: inst["key_data"]}
            out["keys"] = [{"name": name, "type": key_type, "data": inst["key_data"]}]
        out["hostname"] = self.hostname()
        out["name"] = inst.get("display_name")
        out["launch_index"] = inst.get("launch_index", 0)
        out["availability_zone"] = inst.get("availability_zone")
        if _newer(GRIZZLY, version, OPENSTACK_VERSIONS):
            out["random_seed"] = base64.b64encode(os.urandom(512)).decode()
        if _newer(LIBERTY, version, OPENSTACK_VERSIONS):
            out["project_id"] = inst.get("project_id")
        if _newer(NEWTON_ONE, version, OPENSTACK_VERSIONS):
            out["devices"] = []  # tagged devices: none until NICs and volumes carry tags
        if _newer(VICTORIA, version, OPENSTACK_VERSIONS):
            out["dedicated_cpus"] = []  # no pinned CPUs: hw:cpu_policy dedicated is refused at spawn
        return _dumps(out)

    def openstack_listing(self, version: str) -> list[str]:
        out = [MD_JSON_NAME]
        if self.userdata_raw is not None:
            out.append(UD_NAME)
        if _newer(GRIZZLY, version, OPENSTACK_VERSIONS):
            out.append(PASS_NAME)
        if _newer(HAVANA, version, OPENSTACK_VERSIONS):
            out.append(VD_JSON_NAME)
        if _newer(LIBERTY, version, OPENSTACK_VERSIONS):
            out.append(NW_JSON_NAME)
        if _newer(NEWTON_TWO, version, OPENSTACK_VERSIONS):
            out.append(VD2_JSON_NAME)
        return out

    def vendor_data(self) -> bytes:
        return _dumps(self.vendordata if "StaticJSON" in self.vendordata_providers else {})

    def vendor_data2(self) -> bytes:
        return _dumps({"static": self.vendordata} if "StaticJSON" in self.vendordata_providers else {})

    def get_openstack_item(self, tokens: list[str]) -> Any:
        version = OPENSTACK_VERSIONS[-1] if tokens[0] == "latest" else tokens[0]
        if version not in OPENSTACK_VERSIONS:
            raise InvalidMetadataPath(tokens[0])
        name = "/".join(tokens[1:])
        if not name:
            return self.openstack_listing(version)
        if name == MD_JSON_NAME:
            self.mimetype = MIME_TYPE_APPLICATION_JSON
            return self.metadata_as_json(version)
        if name == UD_NAME and self.userdata_raw is not None:
            return self.userdata_raw
        if name == NW_JSON_NAME:  # listed from Liberty on, but Nova serves it for every version (as text/plain)
            return _dumps(self.network_metadata)
        if name == PASS_NAME and _newer(GRIZZLY, version, OPENSTACK_VERSIONS):
            return PASSWORD
        if name == VD_JSON_NAME and _newer(HAVANA, version, OPENSTACK_VERSIONS):
            self.mimetype = MIME_TYPE_APPLICATION_JSON
            return self.vendor_data()
        if name == VD2_JSON_NAME and _newer(NEWTON_TWO, version, OPENSTACK_VERSIONS):
            self.mimetype = MIME_TYPE_APPLICATION_JSON
            return self.vendor_data2()
        raise InvalidMetadataPath(name)

    def lookup(self, path: str, today: datetime.date | None = None) -> Any:
        """Nova's ``lookup``: the data at ``path`` (a list, a dict tree, bytes or ``PASSWORD``); sets
        ``mimetype``. Paths that are not ``/openstack...`` are EC2's (``/latest/meta-data`` is
        ``/ec2/latest/meta-data``). Raises InvalidMetadataPath."""
        path = posixpath.normpath("/" + path if not path.startswith("/") else path)
        self.mimetype = MIME_TYPE_TEXT_PLAIN
        tokens = path.split("/")[1:]
        if tokens[0] not in ("ec2", "openstack"):
            tokens = ["ec2"] if tokens[0] == "" else ["ec2", *tokens]
        if len(tokens) == 1:
            if tokens[0] == "openstack":  # versions dated in the future are hidden from the listing
                day = (today or datetime.datetime.now(datetime.UTC).date()).isoformat()
                return [v for v in OPENSTACK_VERSIONS if v <= day] + ["latest"]
            return [*VERSIONS, "latest"]
        if tokens[0] == "openstack":
            return self.get_openstack_item(tokens[1:])
        data = self.get_ec2_metadata(tokens[1])
        return find_path_in_tree(data, tokens[2:])

    def metadata_for_config_drive(self, skip_versions: list[str]) -> Iterator[tuple[str, bytes]]:
        """Nova's ``metadata_for_config_drive``: (path, content) of every file of the drive: EC2 versions not in
        ``skip_versions`` (``[api] config_drive_skip_versions``) and latest, the injected files
        (``openstack/content/<NNNN>``), then every OpenStack version."""
        for version in [*VERSIONS, "latest"]:
            if version in skip_versions:
                continue
            data = self.get_ec2_metadata(version)
            if "user-data" in data:
                yield f"ec2/{version}/user-data", data.pop("user-data")
            keys = data["meta-data"].get("public-keys")
            if keys:
                keys["0"].pop("_name", None)
            yield f"ec2/{version}/meta-data.json", _dumps(data["meta-data"])
        for key, data in self.content_files.items():
            yield f"openstack/{CONTENT_DIR}/{key}", data
        every = [*OPENSTACK_VERSIONS, "latest"]
        for version in every:
            yield f"openstack/{version}/{MD_JSON_NAME}", self.lookup(f"openstack/{version}/{MD_JSON_NAME}")
            if self.userdata_raw is not None:
                yield f"openstack/{version}/{UD_NAME}", self.userdata_raw
            if _newer(HAVANA, version, every):
                yield f"openstack/{version}/{VD_JSON_NAME}", self.vendor_data()
            if _newer(LIBERTY, version, every):
                yield f"openstack/{version}/{NW_JSON_NAME}", _dumps(self.network_metadata)
            if _newer(NEWTON_TWO, version, every):
                yield f"openstack/{version}/{VD2_JSON_NAME}", self.vendor_data2()


def ec2_md_print(data: Any) -> bytes:
    """Nova's ``ec2_md_print``: a dict is a listing (sub-trees end in ``/``, or show their ``_name``), a list one
    item a line, anything else itself."""
    if isinstance(data, dict):
        lines = []
        for key in sorted(data):
            if key == "_name":
                continue
            value = data[key]
            if isinstance(value, dict):
                lines.append(str(value["_name"]) if "_name" in value else f"{key}/")
            else:
                lines.append(key)
        return "\n".join(lines).encode()
    if isinstance(data, list):
        return "\n".join(str(v) for v in data).encode()
    if isinstance(data, bytes):
        return data
    return str(data).encode()


def find_path_in_tree(data: Any, tokens: list[str]) -> Any:
    for index, token in enumerate(tokens):
        if isinstance(data, dict) and token in data:
            data = data[token]
        else:  # Nova fails with a 500 below a list or a leaf; a 404 says the same without the traceback
            raise InvalidMetadataPath("/".join(tokens[:index]))
    return data
