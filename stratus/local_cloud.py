"""Run a whole Stratus cloud in a subprocess on free ports, for tests, benchmarks and demos.

The child is the real ``stratus all-in-one`` command with a generated config file, reached over HTTP like any
user would reach it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cloud:
    """A running ``stratus all-in-one``: its URLs, data directory and log."""

    def __init__(self, state_path: Path, compute_port: int, image_port: int, identity_port: int,
                 proc: subprocess.Popen[bytes], log_path: Path, config_file: Path, auth_strategy: str = "noauth2",
                 clouds_yaml_path: Path | None = None, metadata_port: int | None = None,
                 network_port: int | None = None) -> None:
        self.state_path = state_path
        self.compute_url = f"http://127.0.0.1:{compute_port}/v2.1"
        self.image_url = f"http://127.0.0.1:{image_port}"
        self.identity_url = f"http://127.0.0.1:{identity_port}/v3"
        self.metadata_url = f"http://127.0.0.1:{metadata_port}" if metadata_port else ""
        self.network_url = f"http://127.0.0.1:{network_port}" if network_port else ""
        self.proc = proc
        self.log_path = log_path
        self.config_file = config_file
        self.auth_strategy = auth_strategy
        self.clouds_yaml_path = clouds_yaml_path  # embedded: the clouds.yaml the cloud wrote (entry 'stratus')

    @property
    def admin_password(self) -> str:
        """embedded: the bootstrap admin's password, generated at the first start."""
        return (self.state_path / "admin-password").read_text().strip()

    def connect(self, username: str = "admin", password: str | None = None, project_name: str | None = None,
                **extra: Any) -> Any:
        """embedded: an openstacksdk connection logged in with a password and the auth URL only (the endpoints
        come from the token's catalog)."""
        import openstack

        return openstack.connect(
            auth_url=self.identity_url, username=username,
            password=self.admin_password if password is None else password,
            project_name=project_name or username, user_domain_name="Default", project_domain_name="Default",
            region_name="RegionOne", identity_api_version="3", load_yaml_config=False, load_envvars=False, **extra)

    def connect_application_credential(self, credential_id: str, secret: str) -> Any:
        """embedded: an openstacksdk connection logged in with an application credential."""
        import openstack

        return openstack.connect(
            auth_type="v3applicationcredential", auth_url=self.identity_url,
            application_credential_id=credential_id, application_credential_secret=secret,
            region_name="RegionOne", identity_api_version="3", load_yaml_config=False, load_envvars=False)

    def client(self, token: str = "admin:admin", version: str | None = None) -> httpx.Client:
        headers = {"X-Auth-Token": token}
        if version:
            headers["OpenStack-API-Version"] = f"compute {version}"
        return httpx.Client(base_url=self.compute_url, headers=headers, timeout=30)

    def image_client(self, token: str = "admin:admin") -> httpx.Client:
        return httpx.Client(base_url=self.image_url, headers={"X-Auth-Token": token}, timeout=30)

    def network_client(self, token: str = "admin:admin") -> httpx.Client:
        """The Networking API (``/v2.0`` paths are relative to it)."""
        return httpx.Client(base_url=self.network_url + "/v2.0", headers={"X-Auth-Token": token}, timeout=30)

    def sdk(self, token: str = "admin:admin") -> Any:
        import openstack

        return openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": self.compute_url, "token": token},
            compute_endpoint_override=self.compute_url,
            image_endpoint_override=self.image_url,
            network_endpoint_override=self.network_url,
            identity_endpoint_override=self.identity_url,
            identity_api_version="3",
            load_yaml_config=False,
            load_envvars=False,
        )

    def clouds_yaml(self, path: Path, token: str = "admin:admin") -> Path:
        path.write_text(textwrap.dedent(f"""\
            clouds:
              stratus:
                auth_type: admin_token
                auth:
                  endpoint: {self.compute_url}
                  token: "{token}"
                compute_endpoint_override: {self.compute_url}
                image_endpoint_override: {self.image_url}
                network_endpoint_override: {self.network_url}
                identity_endpoint_override: {self.identity_url}
                identity_api_version: '3'
            """))
        return path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_cloud(tmp: Path, extra_conf: str = "", python: str = sys.executable, auth_strategy: str = "noauth2",
                env: dict[str, str] | None = None) -> Cloud:
    """Start ``stratus all-in-one`` in ``tmp`` with ``extra_conf`` (INI) added to its config file.

    Started again in the same ``tmp`` it runs on the same data (the log goes on in the same file); ``env`` is added
    to the child's environment (``STRATUS_FAILPOINTS`` for crash tests: stratus/failpoints.py).

    ``auth_strategy`` is noauth2 unless asked (every test and benchmark speaks ``user:project`` tokens);
    ``embedded`` runs the identity service, with the admin password in ``Cloud.admin_password`` and the
    clouds.yaml it writes at ``Cloud.clouds_yaml_path``; ``keystone`` serves no identity API (``extra_conf`` names
    the real Keystone in ``[keystone_authtoken]``), so ``Cloud.identity_url`` is not served either.

    The ports are picked free just before the start; should another process take one in between (an outgoing
    connection's ephemeral port: a race with the machine, not an error of the cloud), it is started again on
    other ports, up to three times."""
    for attempt in range(3):
        log_path = tmp / "stratus.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            return _start_once(tmp, extra_conf, python, auth_strategy, env)
        except RuntimeError:
            started = log_path.read_bytes()[offset:] if log_path.exists() else b""
            if b"address already in use" not in started or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start_once(tmp: Path, extra_conf: str, python: str, auth_strategy: str,
                env: dict[str, str] | None) -> Cloud:
    compute_port, image_port, identity_port, metadata_port = free_port(), free_port(), free_port(), free_port()
    network_port = free_port()
    config_file = tmp / "stratus.conf"
    clouds_yaml = tmp / "clouds.yaml"
    identity = "" if auth_strategy == "keystone" else f"""\
        [identity]
        listen_port = {identity_port}
        clouds_yaml = {clouds_yaml}
        """
    config_file.write_text(textwrap.dedent(f"""\
        [DEFAULT]
        state_path = {tmp / 'data'}
        osapi_compute_listen_port = {compute_port}
        metadata_listen_port = {metadata_port}
        report_interval = 1
        [api]
        auth_strategy = {auth_strategy}
        [image_store]
        listen_port = {image_port}
        [network_server]
        listen_port = {network_port}
        """) + textwrap.dedent(identity) + textwrap.dedent(extra_conf))
    log_path = tmp / "stratus.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen([python, "-m", "stratus.cli", "--config-file", str(config_file),
                             "all-in-one"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                            env={**os.environ, **env} if env else None)
    cloud = Cloud(tmp / "data", compute_port, image_port, identity_port, proc, log_path, config_file,
                  auth_strategy, clouds_yaml if auth_strategy == "embedded" else None, metadata_port, network_port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stratus all-in-one exited {proc.returncode}:\n{cloud.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if (httpx.get(cloud.compute_url + "/", timeout=1).status_code == 200
                    and httpx.get(cloud.image_url + "/versions", timeout=1).status_code == 200
                    and httpx.get(cloud.metadata_url + "/", timeout=1).status_code == 200
                    and httpx.get(cloud.network_url + "/", timeout=1).status_code == 200
                    and (auth_strategy == "keystone" or httpx.get(cloud.identity_url, timeout=1).status_code == 200)):
                return cloud
        time.sleep(0.1)
    stop_cloud(cloud)
    raise RuntimeError(f"stratus all-in-one did not start in 60 s:\n{cloud.log()}")


def stop_processes(procs: list[subprocess.Popen[Any]], timeout: float = 15) -> None:
    """SIGTERM to each process still running, all at once (each stops gracefully meanwhile), then SIGKILL to any
    not gone within ``timeout`` seconds."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        proc.send_signal(signal.SIGTERM)
    for proc in live:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_cloud(cloud: Cloud) -> None:
    stop_processes([cloud.proc])
