"""The domain XML a flavor and an image give: parsed back and checked element by element."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from stratus.virt.libvirt import config

UUID = "6f1a2b1c-0d4e-4f5a-9b8c-7d6e5f4a3b2c"


def _guest(**kw: object) -> config.GuestConfig:
    values: dict[str, object] = dict(
        uuid=UUID, name="instance-00000001", virt_type="qemu", memory_mb=256, vcpus=2,
        disks=[config.Disk(path="/i/disk", driver_format="qcow2", target_dev="vda")],
        console_log="/i/console.log", host="compute-a",
        metadata={"display_name": "web", "user_id": "u", "project_id": "p",
                  "flavor": {"name": "m1.tiny", "memory": 256, "disk": 1, "vcpus": 2}})
    values.update(kw)
    return config.GuestConfig(**values)  # type: ignore[arg-type]


def test_basic_domain() -> None:
    dom = ET.fromstring(_guest().to_xml())
    assert dom.get("type") == "qemu"
    assert dom.findtext("uuid") == UUID and dom.findtext("name") == "instance-00000001"
    assert dom.findtext("memory") == str(256 * 1024) and dom.find("memory").get("unit") == "KiB"
    assert dom.findtext("vcpu") == "2"
    assert dom.find("os/boot").get("dev") == "hd" and dom.find("os/kernel") is None
    assert dom.find("features/acpi") is not None
    assert dom.find("cpu") is None  # TCG without a topology: qemu's default CPU
    disk = dom.find("devices/disk")
    assert disk.find("source").get("file") == "/i/disk"
    assert disk.find("driver").get("type") == "qcow2"
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    log = dom.find("devices/serial/log")
    assert log.attrib == {"file": "/i/console.log", "append": "on"}  # append: the log survives restarts
    assert dom.find("devices/interface") is None  # no VIF, no NIC (as Nova: a server booted with networks none)
    ns = {"nova": config.NOVA_NS}
    assert dom.findtext("metadata/nova:instance/nova:host", namespaces=ns) == "compute-a"
    assert dom.findtext("metadata/nova:instance/nova:name", namespaces=ns) == "web"
    assert dom.find("metadata/nova:instance/nova:flavor", namespaces=ns).get("name") == "m1.tiny"


def test_kernel_boot_and_cpu_mode() -> None:
    dom = ET.fromstring(_guest(virt_type="kvm", cpu_mode="host-model", kernel="/i/kernel", ramdisk="/i/ramdisk",
                               cmdline="console=ttyS0").to_xml())
    assert dom.get("type") == "kvm"
    assert dom.findtext("os/kernel") == "/i/kernel" and dom.findtext("os/initrd") == "/i/ramdisk"
    assert dom.findtext("os/cmdline") == "console=ttyS0" and dom.find("os/boot") is None
    assert dom.find("cpu").get("mode") == "host-model"
    default = ET.fromstring(_guest(kernel="/i/kernel").to_xml())
    assert default.findtext("os/cmdline") == config.DEFAULT_CMDLINE and default.find("os/initrd") is None


VIF = {"id": "a6b0c3d4-1111-2222-3333-444455556666", "address": "fa:16:3e:12:34:56", "type": "bridge",
       "details": {"port_filter": True, "connectivity": "l2", "bridge_name": "brq0b1c2d3e-4f"},
       "devname": "tapa6b0c3d4-11", "vnic_type": "normal", "active": False, "preserve_on_delete": False,
       "profile": {}, "network": {"id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "bridge": "brq0b1c2d3e-4f",
                                  "label": "private", "meta": {"tenant_id": "p", "mtu": 1450, "injected": False},
                                  "subnets": []}}


def test_a_bridge_interface_per_vif() -> None:
    second = {**VIF, "id": "b7", "address": "fa:16:3e:00:00:02", "devname": "tapb7"}
    dom = ET.fromstring(_guest(vifs=[VIF, second], vif_model="e1000").to_xml())
    nics = dom.findall("devices/interface")
    assert [n.get("type") for n in nics] == ["bridge", "bridge"]
    assert nics[0].find("source").attrib == {"bridge": "brq0b1c2d3e-4f"}
    assert nics[0].find("target").attrib == {"dev": "tapa6b0c3d4-11"}
    assert nics[0].find("mac").get("address") == "fa:16:3e:12:34:56"
    assert nics[0].find("model").get("type") == "e1000" and nics[0].find("mtu").get("size") == "1450"
    assert nics[1].find("mac").get("address") == "fa:16:3e:00:00:02"


def test_a_vif_that_failed_to_bind_is_refused() -> None:
    from stratus.virt.libvirt import vif

    with pytest.raises(vif.UnsupportedVIFType):
        _guest(vifs=[{**VIF, "type": "binding_failed"}]).to_xml()


@pytest.mark.parametrize(("specs", "props", "want"), [
    ({}, {}, None),
    ({"hw:cpu_sockets": "2"}, {}, (2, 2, 1)),
    ({"hw:cpu_cores": "4"}, {}, (1, 4, 1)),
    ({"hw:cpu_sockets": "1", "hw:cpu_cores": "2", "hw:cpu_threads": "2"}, {}, (1, 2, 2)),
    ({}, {"hw_cpu_threads": "2"}, (2, 1, 2)),
])
def test_cpu_topology(specs: dict[str, str], props: dict[str, str], want: tuple[int, int, int] | None) -> None:
    assert config.cpu_topology(4, specs, props) == want


@pytest.mark.parametrize("specs", [{"hw:cpu_sockets": "3"}, {"hw:cpu_cores": "x"}, {"hw:cpu_threads": "0"},
                                   {"hw:cpu_cores": "-2"}])
def test_bad_cpu_topology(specs: dict[str, str]) -> None:
    with pytest.raises(config.InvalidGuestConfig):
        config.cpu_topology(4, specs, {})


def test_topology_and_cputune_in_xml() -> None:
    dom = ET.fromstring(_guest(cpu_topology=(1, 2, 1), cputune={"shares": 2048, "quota": 50000}).to_xml())
    assert dom.find("cpu/topology").attrib == {"sockets": "1", "cores": "2", "threads": "1"}
    assert dom.findtext("cputune/shares") == "2048" and dom.findtext("cputune/quota") == "50000"
    assert config.cputune({"quota:cpu_shares": "2048", "quota:cpu_period": "100000"}) == {
        "shares": 2048, "period": 100000}


def test_image_properties() -> None:
    assert config.disk_bus({}) == ("virtio", "vd")
    assert config.disk_bus({"hw_disk_bus": "ide"}) == ("ide", "hd")
    assert config.vif_model({"hw_vif_model": "e1000"}) == "e1000"
    with pytest.raises(config.InvalidGuestConfig, match="hw_disk_bus"):
        config.disk_bus({"hw_disk_bus": "floppy"})
    with pytest.raises(config.InvalidGuestConfig, match="hw_vif_model"):
        config.vif_model({"hw_vif_model": "tulip"})


def test_dedicated_cpus_refused() -> None:
    config.check_cpu_policy({"hw:cpu_policy": "shared"}, {})
    with pytest.raises(config.InvalidGuestConfig, match="dedicated"):
        config.check_cpu_policy({"hw:cpu_policy": "dedicated"}, {})


@pytest.mark.parametrize("auth", [False, True])
def test_rbd_network_disk(auth: bool) -> None:
    """images_type = rbd: the root disk is libvirt's network disk naming pool/image and every monitor; with
    rbd_user and rbd_secret_uuid, an <auth> naming the libvirt secret (cephx)."""
    source = config.NetworkSource("rbd", f"vms/{UUID}_disk", (("127.0.0.1", "6789"), ("10.0.0.2", "6789")),
                                  "nova" if auth else None, "2a5b08e4-1111-4b8e-9a52-1c2d3e4f5a6b" if auth else None)
    disk = config.Disk(path=f"vms/{UUID}_disk", driver_format="raw", target_dev="vda", network=source)
    el = ET.fromstring(_guest(disks=[disk]).to_xml()).find("devices/disk")
    assert el.get("type") == "network"
    assert el.find("driver").get("type") == "raw"
    src = el.find("source")
    assert src.attrib == {"protocol": "rbd", "name": f"vms/{UUID}_disk"}
    assert [h.attrib for h in src.findall("host")] == [{"name": "127.0.0.1", "port": "6789"},
                                                        {"name": "10.0.0.2", "port": "6789"}]
    if auth:
        assert el.find("auth").get("username") == "nova"
        assert el.find("auth/secret").attrib == {"type": "ceph", "uuid": "2a5b08e4-1111-4b8e-9a52-1c2d3e4f5a6b"}
    else:
        assert el.find("auth") is None
