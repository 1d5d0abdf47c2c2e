"""The libvirt QEMU/KVM driver (``[DEFAULT] compute_driver = libvirt.LibvirtDriver``).

The binding (libvirt-python) is imported only when the driver is, so the domain XML builder and the rest of
Stratus work on hosts without it.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "LibvirtDriver":
        from stratus.virt.libvirt.driver import LibvirtDriver

        return LibvirtDriver
    raise AttributeError(name)
