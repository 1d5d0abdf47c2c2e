"""Wiring: build each service from the configuration, and run them alone or all in one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import uvicorn
from oslo_config import cfg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import url as sa_url

from stratus import conf as conf_mod
from stratus import sizelimit
from stratus.db import migrate
from stratus.db.engine import Database, make_private_dir
from stratus.http_protocol import CoalescingHttpToolsProtocol
from stratus.priority import API_FIRST
from stratus.rpc.transport import Transport, TransportError, get_transport

if TYPE_CHECKING:
    from stratus.identity.auth import Authenticator

LOG = logging.getLogger(__name__)


class StartupError(Exception):
    """The configuration asks for something this process cannot do; the message says what to change."""


def setup_logging(conf: cfg.ConfigOpts) -> None:
    level = logging.DEBUG if conf.debug else getattr(logging, conf.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING if level > logging.DEBUG else level)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # httpx logs every request at INFO: the calls to the Networking and image services, one line each
    logging.getLogger("httpx").setLevel(logging.WARNING if level > logging.DEBUG else level)
    # aiormq logs each failed connection attempt at ERROR; aio-pika's own warning says the same, and at start-up
    # the StartupError line says it once
    logging.getLogger("aiormq").setLevel(logging.CRITICAL if level > logging.DEBUG else level)


def state_dir_mode(conf: cfg.ConfigOpts) -> int:
    """0700 for ``state_path``: it holds the database and the admin password. 0711 when the libvirt driver keeps
    the instances' disks inside it, since the hypervisor's processes (another user under a system libvirtd) must
    pass through it to reach them; they can still not list it, and its secrets are 0600 files."""
    instances = os.path.abspath(conf.instances_path or os.path.join(conf.state_path, "instances"))
    inside = os.path.commonpath([instances, os.path.abspath(conf.state_path)]) == os.path.abspath(conf.state_path)
    return 0o711 if inside and conf.compute_driver.startswith("libvirt.") else 0o700


async def open_database(conf: cfg.ConfigOpts, sync_schema: bool = True) -> Database:
    """The database of ``[database] connection``, its schema brought to head. A URL that names no database this
    process can reach is a StartupError saying so in one line (the password left out); an error of the
    migrations themselves is not, it goes up whole."""
    make_private_dir(conf.state_path, state_dir_mode(conf))
    url = conf_mod.database_url(conf)
    try:
        shown = sa_url.make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError as exc:
        raise StartupError(f"[database] connection: {exc}") from None
    try:
        db = Database(url, pool_size=conf.database.max_pool_size)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError, TypeError) as exc:
        raise StartupError(f"[database] connection {shown}: {exc}") from None
    try:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except (sa_exc.DBAPIError, OSError, TimeoutError) as exc:
        await db.dispose()
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise StartupError(f"[database] connection {shown}: cannot connect: {reason}") from None
    if sync_schema:
        await migrate.sync(db)
    return db


async def open_transport(conf: cfg.ConfigOpts) -> Transport:
    """The transport of ``[DEFAULT] transport_url``, connected; StartupError (one line) when it cannot be."""
    try:
        transport = get_transport(conf)
        await transport.start()
    except TransportError as exc:
        raise StartupError(str(exc)) from None
    return transport


class Services:
    """The parts of a Stratus process; ``start`` brings up those named in ``roles``."""

    def __init__(self, conf: cfg.ConfigOpts, roles: set[str], compute_hosts: list[str] | None = None,
                 admin_password: str | None = None,
                 sockets: dict[tuple[str, int], socket.socket] | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.conf = conf
        #: listening sockets bound by a supervising parent (API workers), by (host, port): served instead of binding
        self.sockets = sockets or {}
        self.on_ready = on_ready  # told once every server of this process serves
        self.admin_password = admin_password  # the identity bootstrap's (--admin-password)
        self.roles = roles
        self.compute_hosts = compute_hosts or []
        self.db: Database | None = None
        self.transport: Transport | None = None
        self.computes: list[Any] = []
        self.conductor: Any = None
        self.service_ids: list[int] = []  # services rows of this process other than its compute hosts
        self.image_store: Any = None
        self.network_api: Any = None  # Nova's network API (stratus/network/neutron.py) when a Networking service is set
        self.network: Any = None  # the Networking API's services (NetworkServices) when this process serves it
        self.noop_agents: Any = None  # the fake driver hosts' networking agents
        self.dataplane_agents: Any = None  # the libvirt hosts' (linuxbridge, DHCP, L3)
        self.http_servers: list[uvicorn.Server] = []
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        conf = self.conf
        keystone = None  # auth_token first: a [keystone_authtoken] it cannot work with stops the start at once
        if self.roles & {"api", "image", "identity", "network"} and conf.api.auth_strategy == "keystone":
            keystone = self._keystone()
        # the transport first: a broker that cannot be reached stops the start before migrations run
        self.transport = transport = await open_transport(conf)
        self.db = db = await open_database(conf)

        from stratus.image import embedded

        try:
            self.image_store = embedded.ImageStore(conf, db)
        except ValueError as exc:  # [image_store] enabled_backends / default_backend the stores cannot be made of
            raise StartupError(str(exc)) from exc
        images = embedded.client_for(conf, self.image_store)
        self.network_api = network = self._network_api()

        if "scheduler" in self.roles:
            from stratus.scheduler.manager import SchedulerManager

            scheduler = SchedulerManager(conf, db)
            await scheduler.host_manager.sync()
            await transport.listen("scheduler", scheduler)
            await self._register("nova-scheduler", "scheduler")
            self._tasks.append(asyncio.create_task(scheduler.run_periodic()))
        if "conductor" in self.roles:
            from stratus.conductor.manager import ConductorManager

            await self._register("nova-conductor", "conductor")
            self.conductor = ConductorManager(conf, db, transport, service_id=self.service_ids[-1], network=network)
            await transport.listen("conductor", self.conductor)
        if "compute" in self.roles:
            from stratus.compute import config_drive
            from stratus.compute.manager import ComputeManager
            from stratus.virt import loader

            try:
                config_drive.check_options(conf)
            except ValueError as exc:
                raise StartupError(str(exc)) from exc

            for host in self.compute_hosts:
                driver = loader.load_driver(conf, host, images)
                manager = ComputeManager(conf, db, transport, host=host, driver=driver, images=images,
                                         network=network)
                await manager.init_host()
                await transport.listen("compute", manager, server=host)
                self.computes.append(manager)
        if self.conductor is not None:  # after this process's compute hosts: a build scheduled again may go to them
            await self._recover_builds()
        if self.service_ids or self.computes:
            self._tasks.append(asyncio.create_task(self._heartbeats()))
            self._tasks.append(asyncio.create_task(self._periodic()))
        if self.roles & {"api", "image", "identity", "network"}:
            auth = keystone or await self._identity()
        if "api" in self.roles:
            from stratus.api.app import create_app
            from stratus.api.services import ApiServices
            from stratus.db import flavors

            async with db.write() as conn:
                await flavors.ensure_defaults(conn)
            api_services = ApiServices(conf=conf, db=db, transport=transport, auth=auth, images=images,
                                       network=network)
            # its requests before the builds on this process's loop (stratus/priority.py)
            compute_app = API_FIRST.wrap(auth.wrap(create_app(api_services)))
            if "network" in self.roles:  # the Networking service's events to Nova go to it in-process
                from stratus.network import in_process

                in_process.register(conf.osapi_compute_listen, conf.osapi_compute_listen_port, compute_app)
            self._serve(compute_app, conf.osapi_compute_listen, conf.osapi_compute_listen_port)
        if "metadata" in self.roles:
            self._serve_metadata()
        if "image" in self.roles:
            from stratus.image.api import create_app as create_image_app

            self._serve(API_FIRST.wrap(auth.wrap(create_image_app(self.image_store, auth))), conf.image_store.listen,
                        conf.image_store.listen_port)

        if "network" in self.roles:
            await self._serve_network(auth)
        if "compute" in self.roles and conf.compute_driver.startswith("fake"):
            from stratus.network.agent.noop import NoopAgents

            # after the networking server listens, so that the first reports reach it
            self.noop_agents = NoopAgents(transport, self.compute_hosts, conf.agent.report_interval,
                                          conf.default_availability_zone)
            await self.noop_agents.start()
        elif "compute" in self.roles and conf.compute_driver.startswith("libvirt"):
            await self._start_dataplane_agents()

    async def _start_dataplane_agents(self) -> None:
        """The real data plane of libvirt hosts (docs/networking-dataplane.md): a Linux bridge agent per compute
        host, and the DHCP and L3 agents when this process also serves the Networking API. Only as root: without
        it no namespace can be made, and guests get no network (logged once)."""
        if os.geteuid() != 0:
            LOG.warning("not root: no network data plane for the libvirt hosts %s (their ports stay DOWN)",
                        ", ".join(self.compute_hosts))
            return
        from stratus.network.agent.dataplane_agents import DataplaneAgents

        assert self.transport is not None
        network_host = self.compute_hosts[0] if "network" in self.roles and self.compute_hosts else None
        self.dataplane_agents = DataplaneAgents(self.transport, self.compute_hosts, network_host,
                                                self.conf.state_path, report_interval=self.conf.agent.report_interval,
                                                conf=self.conf if "metadata" in self.roles else None)
        await self.dataplane_agents.start()

    async def _serve_network(self, auth: Authenticator) -> None:
        """The embedded Networking API (Neutron v2.0 subset) on ``[network_server] listen_port`` (9696), and the
        server's side of the agents' RPC (topic ``network_server``)."""
        from stratus.network.agent_rpc import SERVER_TOPIC, AgentNotifyAPI
        from stratus.network.server.app import create_app as create_network_app
        from stratus.network.server.notify import Notifier
        from stratus.network.server.nova import NovaNotifier
        from stratus.network.server.options import check_options
        from stratus.network.server.policy import NetworkPolicy
        from stratus.network.server.resource import NetworkServices
        from stratus.network.server.rpc import NetworkServerEndpoint

        assert self.db is not None and self.transport is not None
        conf, options = self.conf, self.conf.network_server
        try:
            check_options(conf)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        nova = NovaNotifier.from_conf(conf, self._nova_fallback())
        notifier = Notifier(self.db, AgentNotifyAPI(self.transport), nova, list(options.default_availability_zones))
        self.network = NetworkServices(conf=conf, db=self.db, policy=NetworkPolicy(conf), notifier=notifier)
        await self.transport.listen(SERVER_TOPIC, NetworkServerEndpoint(self.db, notifier,
                                                                        conf.default_availability_zone, options))
        self._serve(sizelimit.wrap(auth.wrap(create_network_app(self.network, auth)), conf), options.listen,
                    options.listen_port)

    def _network_api(self) -> Any:
        """Nova's network API on the Networking service of ``[neutron]`` (by default, in a process that serves the
        embedded one, that one), or None when none is configured (servers then get no ports); options keystoneauth
        cannot work with stop the start."""
        from stratus.network import neutron, neutron_client

        if not self.roles & {"api", "compute", "conductor"}:
            return None
        if not neutron_client.configured(self.conf) and "network" in self.roles:
            # the all-in-one (and `stratus api`) serve the Networking API themselves: Nova's side talks to it
            options = self.conf.network_server
            host = "127.0.0.1" if options.listen in ("0.0.0.0", "::", "") else options.listen
            host = f"[{host}]" if ":" in host else host
            self.conf.set_override("endpoint_override", f"http://{host}:{options.listen_port}", group="neutron")
        if not neutron_client.configured(self.conf):
            return None
        try:
            return neutron.API(self.conf)
        except (neutron_client.NeutronUnavailable, cfg.Error) as exc:
            raise StartupError(f"[neutron]: {exc}") from exc
        except Exception as exc:
            # keystoneauth's own errors: only a configured [neutron] plugin imports it, so it is imported here only
            # when something went wrong
            from keystoneauth1 import exceptions as ks_exceptions

            if isinstance(exc, ks_exceptions.ClientException):
                raise StartupError(f"[neutron]: {exc}") from exc
            raise

    def _nova_fallback(self) -> Callable[[list[dict[str, Any]]], Awaitable[int]] | None:
        """Without ``[nova]`` auth options: this deployment's own admin and compute API (the embedded identity's
        admin and the catalog, or noauth2's admin), as the all-in-one's networking service talks to its Nova: in
        this process when it serves that compute API too (``nova.EventPoster``), else over HTTP."""
        from stratus.network.server import nova

        conf = self.conf
        if conf.api.auth_strategy == "keystone":
            return None  # a real Keystone: only [nova]'s own credentials can be used
        if conf.api.auth_strategy == "noauth2":
            host = conf.osapi_compute_listen if conf.osapi_compute_listen not in ("0.0.0.0", "::") else "127.0.0.1"
            return nova.noauth_post(f"http://{host}:{conf.osapi_compute_listen_port}/v2.1")
        from stratus.identity import catalog

        password = self.admin_password
        return nova.password_post(catalog.identity_url(catalog.build(conf)), "admin",
                                  lambda: password or nova.read_secret(conf.state_path, "admin-password"),
                                  conf.nova.endpoint_type, conf.nova.region_name)

    def _serve_metadata(self) -> None:
        """Nova's metadata API for guests on ``[DEFAULT] metadata_listen_port`` (8775); no token: it names the
        instance from the proxy's signed headers or the requester's fixed IP."""
        from stratus.metadata import handler, vendordata

        try:
            static = vendordata.load_static(self.conf)
        except (vendordata.VendorDataError, cfg.Error) as exc:
            raise StartupError(str(exc)) from exc
        assert self.db is not None
        self._serve(handler.create_app(self.conf, self.db, static), self.conf.metadata_listen,
                    self.conf.metadata_listen_port)

    async def _identity(self) -> Authenticator:
        """The authenticator of the compute and image APIs for ``[api] auth_strategy``; with ``embedded``, the
        identity service too (bootstrapped, and served when this process has the identity role). ``keystone`` is
        ``_keystone``: the real Keystone of ``[keystone_authtoken]`` is the identity service, none is served here."""
        from stratus.identity.api import create_app as create_identity_app
        from stratus.identity.auth import NoAuth2

        conf = self.conf
        strategy = conf.api.auth_strategy
        if strategy == "noauth2":
            if "identity" in self.roles:
                self._serve(sizelimit.wrap(create_identity_app(), conf), conf.identity.listen,
                            conf.identity.listen_port)
            return NoAuth2()
        from stratus.identity import bootstrap, catalog
        from stratus.identity.auth import TokenAuth
        from stratus.identity.common import IdentityServices
        from stratus.identity.passwords import Hasher
        from stratus.identity.tokens import TokenStore

        assert self.db is not None
        tokens = TokenStore(self.db, conf.identity.token_expiration, conf.identity.token_cache_time)
        services = IdentityServices(conf=conf, db=self.db, tokens=tokens,
                                    hasher=Hasher(conf.identity.password_hash_rounds), catalog=catalog.build(conf))
        if "identity" in self.roles:
            await bootstrap.bootstrap(services, self.admin_password)
            self._serve(API_FIRST.wrap(sizelimit.wrap(create_identity_app(services), conf)), conf.identity.listen,
                        conf.identity.listen_port)
        return TokenAuth(tokens, catalog.identity_url(services.catalog).removesuffix("/v3"))

    def _keystone(self) -> Authenticator:
        """keystonemiddleware's auth_token on ``[keystone_authtoken]``, refusing a configuration it cannot work
        with (it would only fail at the first request)."""
        from keystonemiddleware import exceptions as ksm_exceptions

        from stratus.identity.keystone import GROUP, KeystoneAuth

        try:
            auth = KeystoneAuth(self.conf)
        except (ksm_exceptions.ConfigurationError, cfg.Error) as exc:
            raise StartupError(f"[{GROUP}]: {exc}") from exc
        options = self.conf[GROUP]
        if not options.auth_type:
            raise StartupError(f"[api] auth_strategy = keystone needs [{GROUP}] auth_type (password) with auth_url, "
                               "username, password, project_name, user_domain_name and project_domain_name: the "
                               "service user auth_token validates tokens as")
        return auth

    def _serve(self, app: Any, host: str, port: int) -> None:
        # each response written to its socket once (stratus/http_protocol.py)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, loop="none",
                                lifespan="off", timeout_graceful_shutdown=2, http=CoalescingHttpToolsProtocol)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.http_servers.append(server)
        inherited = self.sockets.get((host, port))
        self._tasks.append(asyncio.create_task(server.serve(sockets=[inherited] if inherited else None)))

    async def _register(self, binary: str, topic: str) -> None:
        """The services row of a scheduler or conductor on ``[DEFAULT] host``, beaten with the others."""
        from stratus.db import services as services_db

        assert self.db is not None
        async with self.db.write() as conn:
            self.service_ids.append((await services_db.register(conn, self.conf.host, binary, topic))["id"])

    async def _recover_builds(self) -> None:
        """The conductor's first recovery pass, at start: builds its previous run (or a dead conductor) left
        without a host are scheduled again. A failure is logged; the periodic passes try again."""
        try:
            await self.conductor.periodic_tasks()
        except Exception:
            LOG.exception("the conductor's start-up recovery pass failed")

    async def _heartbeats(self) -> None:
        """Heartbeats of every service of this process in one write (a simulated fleet of 10,000 hosts costs one
        statement per interval). A loop of its own: a long recovery pass or periodic task must not make a busy
        but live service look down to the others (who would then take its builds over)."""
        from stratus.db import services as services_db

        interval = max(1, self.conf.report_interval)
        while True:
            await asyncio.sleep(interval)
            assert self.db is not None
            try:
                async with self.db.write() as conn:
                    await services_db.heartbeat(conn, [*self.service_ids, *(m.service_id for m in self.computes)])
            except Exception:
                LOG.exception("heartbeat of %d services failed", len(self.service_ids) + len(self.computes))

    async def _periodic(self) -> None:
        """The conductor's recovery pass when due, then each compute host's periodic tasks: each manager keeps its
        own next-run times (resources, power-state sync, guests of deleted instances, build timeouts) and does
        only what is due, so a beat where nothing is due costs no query."""
        interval = max(1, self.conf.report_interval)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if self.conductor is not None:
                try:
                    await self.conductor.periodic_tasks(now)
                except Exception:
                    LOG.exception("the conductor's recovery pass failed")
            for manager in self.computes:
                try:
                    await manager.periodic_tasks(now)
                except Exception:
                    LOG.exception("periodic tasks of %s failed", manager.host)

    async def wait_started(self) -> None:
        while not all(s.started for s in self.http_servers):
            for task in self._tasks:
                if task.done():
                    task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        for server in self.http_servers:
            server.should_exit = True
        await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.noop_agents is not None:
            await self.noop_agents.stop()
        if self.dataplane_agents is not None:
            await self.dataplane_agents.stop()
        if self.network is not None and self.network.notifier is not None:
            await self.network.notifier.nova.drain()
        if self.transport is not None:
            await self.transport.stop()
        for manager in self.computes:
            await manager.cleanup_host()
        if self.network_api is not None:
            await self.network_api.aclose()
        if self.db is not None:
            await self.db.dispose()


#: the collector's first threshold: objects allocated (net) before a young collection. Python's 700 makes a
#: page of a thousand servers (rows, views, their dicts) run dozens of collections, each walking every young
#: object; the older generations keep Python's ratios
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """What the process has allocated by now (modules, the schema, the policy rules, the routes) lives as long as
    it does: ``gc.freeze`` takes it out of every later full collection, which otherwise walks it all again; and
    young collections run less often (``GC_GEN0_THRESHOLD``). Reference counting frees nearly everything at
    once anyway; the collector only finds cycles."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def run(services: Services) -> None:
    """Start, then serve until cancelled (Ctrl-C or SIGTERM)."""
    await services.start()
    await services.wait_started()
    tune_gc()
    LOG.info("stratus ready: roles %s", ", ".join(sorted(services.roles)))
    if services.on_ready is not None:
        services.on_ready()
    try:
        await asyncio.Event().wait()
    finally:
        await services.stop()
