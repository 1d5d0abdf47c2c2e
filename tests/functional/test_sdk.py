"""openstacksdk, unchanged, against a running all-in-one: the flow a Python user writes."""

from __future__ import annotations

from tests.conftest import Cloud


def test_sdk_boot_list_show_delete(cloud: Cloud) -> None:
    conn = cloud.sdk(token="sdkuser:sdk-project")
    image = conn.image.create_image(name="sdk-image", data=b"\0" * 8192, disk_format="raw",
                                    container_format="bare", allow_duplicates=True)
    flavor = conn.compute.find_flavor("m1.nano")
    keypair = conn.compute.create_keypair(name="sdk-key")
    assert keypair.private_key
    server = conn.compute.create_server(name="sdk-vm", image_id=image.id, flavor_id=flavor.id,
                                        key_name="sdk-key", networks="none", metadata={"a": "b"})
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=30, interval=0.1)
    assert server.status == "ACTIVE"
    assert server.metadata == {"a": "b"}
    assert any(s.id == server.id for s in conn.compute.servers())
    details = {s.id: s for s in conn.compute.servers(details=True)}
    assert details[server.id].flavor["original_name"] == "m1.nano"
    assert conn.compute.get_server(server.id).key_name == "sdk-key"
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=30, interval=0.1)
    assert conn.compute.find_server(server.id) is None
    conn.compute.delete_keypair(keypair)
    conn.image.delete_image(image)
