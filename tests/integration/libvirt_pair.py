"""Two real libvirt compute hosts on this one machine, for the tests of moves between hosts (resize, cold and live
migration, evacuate, unshelve elsewhere).

Each host is a private libvirtd of its own (scripts/libvirt.sh in a directory of its own, with a host UUID of its
own, so libvirt sees two hosts) and a ``stratus compute --host NAME`` process of its own with its own
``instances_path``: the hosts share no file system for their guests, as two machines would not. The rest of the
cloud (``stratus api``, ``conductor``, ``scheduler``) runs as separate processes on a RabbitMQ and a PostgreSQL
(tests/integration/cluster.py). ``[libvirt] live_migration_uri`` is the template that names a host's libvirtd
from its host name (``qemu+unix:///system?socket=<parent>/%s/run/libvirt-sock``), as ``qemu+tcp://%s/system``
does between machines.

With ``netns`` the pair has the network data plane too (docs/networking-dataplane.md): each libvirtd runs in its
host's namespace ``stratus-host-<host>`` (so its guests' taps are on that host's bridges), each compute process
runs that host's Linux bridge agent, and a third host, the network node, runs a DHCP agent (a process of its
own: ``python -m tests.integration.libvirt_pair dhcp-agent CONFIG HOST``). The hosts' namespaces reach each
other only through the fabric (VXLAN underlay), so a live migration's QEMU stream goes to the destination's
underlay address (``[libvirt] live_migration_inbound_addr``), as it goes over a management network between
machines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from stratus.local_cloud import stop_processes
from stratus.network.dataplane import cleanup, fabric
from stratus.network.dataplane import names as netns_names
from tests.integration.cluster import Cluster
from tests.integration.conftest import SCRIPTS, RabbitMQ
from tests.integration.guest import GuestImages, upload_guest

#: what every process of the pair's cloud is given (INI, after the cluster's own)
COMMON_CONF = """
[DEFAULT]
compute_driver = libvirt.LibvirtDriver
report_interval = 1
service_down_time = 6
shutdown_timeout = 10
sync_power_state_interval = 2
update_resources_interval = 1
reserved_host_memory_mb = 256
rpc_response_timeout = 60
[scheduler]
host_state_sync_interval = 0.5
[libvirt]
virt_type = qemu
live_migration_uri = {uri_template}
"""


@dataclasses.dataclass(frozen=True)
class LibvirtHost:
    """One compute host: its name (the compute service's and the hypervisor's), its libvirtd and its files."""

    name: str
    directory: Path  # scripts/libvirt.sh's DIR
    uri: str
    instances_path: Path

    @property
    def host_uuid(self) -> str:
        return (self.directory / "host-uuid").read_text().strip()

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        import libvirt

        conn = libvirt.open(self.uri)
        try:
            yield conn
        finally:
            conn.close()

    def domains(self) -> dict[str, int]:
        """Every domain this libvirtd has (defined or running), by uuid: its libvirt state."""
        with self.connect() as conn:
            return {d.UUIDString(): int(d.state()[0]) for d in conn.listAllDomains()}

    def running(self) -> set[str]:
        import libvirt

        return {u for u, state in self.domains().items() if state == libvirt.VIR_DOMAIN_RUNNING}

    def domain_xml(self, server_id: str) -> ET.Element:
        with self.connect() as conn:
            return ET.fromstring(conn.lookupByUUIDString(server_id).XMLDesc(0))


@dataclasses.dataclass
class LibvirtPair:
    """The cloud (``cluster``: its API client at ``cluster.api``, processes ``api``, ``conductor``, ``scheduler``
    and one per host, named as the host) and its two hosts."""

    cluster: Cluster
    hosts: tuple[LibvirtHost, LibvirtHost]
    network_node: str = ""  # with the data plane: the host of the DHCP agent (no compute service)

    def host(self, name: str) -> LibvirtHost:
        return next(h for h in self.hosts if h.name == name)

    def other(self, name: str) -> LibvirtHost:
        return next(h for h in self.hosts if h.name != name)

    def client(self, version: str) -> httpx.Client:
        """An admin client of the compute API at ``version``."""
        return httpx.Client(base_url=self.cluster.compute_url, timeout=60,
                            headers={"X-Auth-Token": "admin:admin", "OpenStack-API-Version": f"compute {version}"})

    def network_client(self) -> httpx.Client:
        """An admin client of the embedded Networking API (``/v2.0`` paths are relative to it)."""
        return httpx.Client(base_url=f"{_network_url(self.cluster)}/v2.0", headers={"X-Auth-Token": "admin:admin"},
                            timeout=30)

    def image_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.cluster.image_url, headers={"X-Auth-Token": "admin:admin"}, timeout=120)

    def upload_test_guest(self, guest_dir: Path) -> GuestImages:
        with self.image_client() as client:
            return upload_guest(client, guest_dir)

    def where(self, server_id: str) -> list[str]:
        """The hosts whose libvirtd has a domain for this server (defined or running)."""
        return [h.name for h in self.hosts if server_id in h.domains()]

    def restart_compute(self, name: str, wait_up: bool = True) -> None:
        """The host's compute process killed (SIGKILL) and started again; with ``wait_up``, returns once its
        start-up is over and both services are up (a service forced down never is)."""
        self.cluster.kill(name)
        offset = self.cluster.restart(name)
        if wait_up:
            self.cluster.wait_ready(name, offset)
            self.wait_services_up()

    def wait_services_up(self, seconds: float = 90) -> None:
        def up() -> bool:
            found = {s["host"]: s for s in self.cluster.api.get("/os-services", params={"binary": "nova-compute"})
                     .json()["services"]}
            return all(h.name in found and found[h.name]["state"] == "up" for h in self.hosts)

        self.cluster.wait(up, seconds, "both compute services up")
        self.cluster.wait_hypervisors(2, seconds)


def _network_url(cluster: Cluster) -> str:
    """Where the cloud's api process serves the Networking API."""
    import configparser

    config = configparser.ConfigParser(interpolation=None)
    config.read(cluster.config)
    return f"http://127.0.0.1:{config['network_server']['listen_port']}"


def _start_libvirtd(directory: Path, namespace: str | None = None) -> str:
    proc = subprocess.run([str(SCRIPTS / "libvirt.sh"), "start", str(directory), *([namespace] if namespace else [])],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"libvirt.sh failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def libvirt_pair(rabbitmq: RabbitMQ, postgres_url: str, tmp_path: Path, conf: str = "", netns: bool = False
                 ) -> Iterator[LibvirtPair]:
    """Start the two libvirtds and the cloud; ``conf`` (INI) is added to every process's configuration; with
    ``netns``, the network data plane too (see the module's docstring). Stops everything after (the daemons with
    their guests, the processes, the hosts' network namespaces)."""
    # short: each daemon's socket path must stay under 108 bytes
    parent = Path(tempfile.mkdtemp(prefix="lvp", dir="/tmp"))
    suffix = uuid.uuid4().hex[:6]
    host_names = (f"lva{suffix}", f"lvb{suffix}")  # unique: the hosts' network namespaces are named after them
    network_node = f"lvn{suffix}" if netns else ""
    started: list[Path] = []
    cluster: Cluster | None = None
    dhcp: subprocess.Popen[bytes] | None = None
    try:
        hosts, inbound = [], {}
        for name in host_names:
            directory = parent / name
            started.append(directory)
            if netns:  # the host's namespace on the fabric first: its underlay address is the migration's
                inbound[name] = fabric.join(name)
            uri = _start_libvirtd(directory, netns_names.host_namespace(name) if netns else None)
            instances = tmp_path / name / "instances"
            instances.mkdir(parents=True)
            hosts.append(LibvirtHost(name=name, directory=directory, uri=uri, instances_path=instances))
        template = f"qemu+unix:///system?socket={parent}/%s/run/libvirt-sock"
        cluster = Cluster(tmp_path, rabbitmq, postgres_url, COMMON_CONF.format(uri_template=template) + conf)
        # with the data plane, the computes and the conductor name the api process's Networking API (noauth2)
        neutron = (f"[neutron]\nendpoint_override = {_network_url(cluster)}\n[agent]\nreport_interval = 2\n"
                   if netns else "")
        cluster.start("api", "api")
        cluster.start("conductor", "conductor", conf=f"[DEFAULT]\nhost = conductor-1\n{neutron}")
        cluster.start("scheduler", "scheduler", conf="[DEFAULT]\nhost = scheduler-1\n")
        for host in hosts:
            extra = f"live_migration_inbound_addr = {inbound[host.name]}\n" if netns else ""
            cluster.start(host.name, "compute", "--host", host.name,
                          conf=f"[DEFAULT]\ninstances_path = {host.instances_path}\n"
                               f"[libvirt]\nconnection_uri = {host.uri}\n{extra}{neutron}")
        pair = LibvirtPair(cluster=cluster, hosts=(hosts[0], hosts[1]), network_node=network_node)
        pair.wait_services_up(120)
        if netns:  # once the Networking API's server listens (its agents' RPC too)
            with open(tmp_path / "dhcp-agent.log", "ab") as log:
                dhcp = subprocess.Popen([sys.executable, "-m", "tests.integration.libvirt_pair", "dhcp-agent",
                                         str(cluster.config), network_node], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=Path(__file__).resolve().parents[2])
            with pair.network_client() as net:
                def alive() -> bool:  # a port binds only to a host whose agent is alive
                    found = {(a["host"], a["agent_type"]) for a in net.get("/agents").json().get("agents", [])
                             if a["alive"]}
                    return {(network_node, "DHCP agent"), *((h, "Linux bridge agent") for h in host_names)} <= found

                cluster.wait(alive, 90, "the agents of the hosts and the network node alive")
        yield pair
    finally:
        if dhcp is not None:
            stop_processes([dhcp], timeout=30)
        if cluster is not None:
            cluster.stop()
            if os.environ.get("STRATUS_SHOW_LOG"):
                print(cluster.logs(20000))
        for directory in started:
            subprocess.run([str(SCRIPTS / "libvirt.sh"), "stop", str(directory)], check=False, timeout=120)
        if os.geteuid() == 0:
            # the fabric too: removed once no host is left on it (another test's hosts keep it)
            ours = {netns_names.host_namespace(n) for n in (*host_names, network_node) if n}
            ours.add(netns_names.FABRIC_NAMESPACE)
            served = tmp_path / "data" / f"dhcp-{network_node}"  # the networks the DHCP agent served
            if network_node and served.is_dir():
                ours |= {netns_names.dhcp_namespace(p.name) for p in served.iterdir()}
            with contextlib.suppress(Exception):
                cleanup.remove_all(only=lambda ns: ns in ours)
        shutil.rmtree(parent, ignore_errors=True)


def _dhcp_agent(config: str, host: str) -> None:
    """A DHCP agent for ``host`` on the cloud of ``config`` until SIGTERM (Neutron's ``neutron-dhcp-agent`` on a
    network node; the deployment's own processes run one only beside an all-in-one's compute)."""
    import asyncio
    import signal

    from stratus import conf as conf_mod
    from stratus import service
    from stratus.network.agent.dhcp import DhcpAgent

    conf = conf_mod.load([config])
    service.setup_logging(conf)

    async def run() -> None:
        transport = await service.open_transport(conf)
        agent = DhcpAgent(transport, host, os.path.join(conf.state_path, f"dhcp-{host}"), report_interval=1,
                          resync_interval=2)
        await agent.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await agent.stop()
        await transport.stop()

    asyncio.run(run())


if __name__ == "__main__":
    if sys.argv[1:2] == ["dhcp-agent"] and len(sys.argv) == 4:
        _dhcp_agent(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python -m tests.integration.libvirt_pair dhcp-agent CONFIG HOST")
