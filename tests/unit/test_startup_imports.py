"""A started all-in-one imports nothing it does not use: alembic (and mako) only when the schema needs an upgrade,
keystoneauth1 only when a real Keystone, Neutron or Nova is configured (or a token is first asked for), cryptography
only at the first key pair request, SQLAlchemy's ORM (under its asyncio extension) only on PostgreSQL, httpx's
command-line client (rich, pygments) never. Together some 30 MiB of the process's memory (stratus/db/migrate.py,
stratus/keystoneauth_options.py, stratus/__init__.py, stratus/db/engine.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from stratus import conf as conf_mod
from stratus import service
from stratus.local_cloud import free_port
from stratus.network.server import nova

#: requests is not among them: oslo.policy imports it (for its http: rule checks), whatever the deployment
HEAVY = ("alembic", "mako", "pygments", "keystoneauth1", "rich", "cryptography", "sqlalchemy.orm")

#: starts the all-in-one's services in this process as ``stratus all-in-one`` does, prints the heavy modules loaded
PROBE = textwrap.dedent("""\
    import asyncio, json, sys
    from stratus import cli, service

    run = cli.prepare(sys.argv[2:])
    services = service.Services(run.conf, set(run.roles), run.hosts)

    async def main():
        try:
            await services.start()
            await services.wait_started()
        finally:
            await services.stop()

    asyncio.run(main())
    print(json.dumps(sorted(name for name in sys.argv[1].split(",") if name in sys.modules)))
    """)


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "stratus.conf"
    path.write_text(textwrap.dedent(f"""\
        [DEFAULT]
        state_path = {tmp_path / 'data'}
        osapi_compute_listen_port = {free_port()}
        metadata_listen_port = {free_port()}
        [api]
        auth_strategy = noauth2
        [image_store]
        listen_port = {free_port()}
        [identity]
        listen_port = {free_port()}
        [network_server]
        listen_port = {free_port()}
        [fake_driver]
        host_count = 2
        """) + textwrap.dedent(extra))
    return path


def _heavy_after_start(config: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), "--config-file", str(config), "all-in-one"],
                         capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_started_all_in_one_imports_no_heavy_module(tmp_path: Path) -> None:
    config = _config(tmp_path)
    subprocess.run([sys.executable, "-m", "stratus.cli", "--config-file", str(config), "db", "sync"],
                   capture_output=True, timeout=120, check=True)
    assert _heavy_after_start(config) == []


def test_schema_to_upgrade_imports_alembic(tmp_path: Path) -> None:
    """The same start on an empty database does migrate, with alembic: the probe above sees what it should."""
    assert "alembic" in _heavy_after_start(_config(tmp_path))


def test_a_configured_nova_plugin_is_still_loaded(tmp_path: Path) -> None:
    """[nova] auth_type set: the notifier posts through keystoneauth's session of that plugin, as before; unset, it
    posts as the deployment's own admin (noauth2's here)."""
    ini = tmp_path / "nova.conf"
    ini.write_text(textwrap.dedent("""\
        [nova]
        auth_type = password
        auth_url = http://127.0.0.1:9/v3
        username = neutron
        password = secret
        project_name = service
        user_domain_name = Default
        project_domain_name = Default
        """))
    overrides = {"DEFAULT": {"state_path": str(tmp_path)}, "api": {"auth_strategy": "noauth2"}}
    roles = {"api", "network"}
    notifiers = []
    for files in ([str(ini)], []):
        services = service.Services(conf_mod.load(files, overrides), roles)
        notifiers.append(nova.NovaNotifier.from_conf(services.conf, services._nova_fallback()))
    with_plugin, without = notifiers
    assert isinstance(with_plugin.post, nova.EventPoster) and isinstance(with_plugin.post.target, nova.SessionTarget)
    assert type(with_plugin.post.target.session.auth).__module__.startswith("keystoneauth1.")
    assert isinstance(without.post, nova.EventPoster) and isinstance(without.post.target, nova.NoAuthTarget)
