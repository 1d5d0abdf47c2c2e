"""First-start set-up of the embedded identity service, as ``keystone-manage bootstrap`` does it, and the clouds.yaml
entry that lets the ``openstack`` CLI and openstacksdk log in straight away.

Ensured at every start (level-triggered, idempotent): the ``default`` domain, the roles ``admin`` ⊇ ``manager`` ⊇
``member`` ⊇ ``reader`` and ``service`` (implying none), as Keystone's bootstrap since 2024.1 (a cloud bootstrapped
before, with ``admin`` implying ``member`` directly, is moved to the chain), the project ``admin``, the user
``admin`` with the ``admin`` role on it. The admin password comes from ``--admin-password`` or
``STRATUS_ADMIN_PASSWORD`` (and is then set, as keystone-manage does), else it is generated at the first start and
stored in ``state_path/admin-password`` (mode 0600). The start says where it is; it prints the password itself only
on a terminal, so it does not end up in a log or a service manager's journal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import sys
import tempfile
from typing import Any, TextIO

import yaml
from sqlalchemy.exc import IntegrityError

from stratus.db import identity as db
from stratus.db.engine import make_private_dir
from stratus.identity import catalog
from stratus.identity.common import IdentityServices
from stratus.identity.passwords import generate_secret

LOG = logging.getLogger(__name__)
ADMIN = "admin"
ROLE_CHAIN = ("admin", "manager", "member", "reader")  # each implies the next
#: roles that imply none and no other implies: Nova's service-to-service APIs (``rule:service_api``)
STANDALONE_ROLES = ("service",)
CLOUD_NAME = "stratus"


@dataclasses.dataclass
class Bootstrapped:
    password: str | None  # None: not known to this process (changed through the API since it was stored)
    generated: bool
    password_file: str
    clouds_yaml: str | None


async def bootstrap(services: IdentityServices, admin_password: str | None = None, out: TextIO | None = None
                    ) -> Bootstrapped:
    conf = services.conf
    password_file = os.path.join(conf.state_path, "admin-password")
    stored = _read(password_file)
    for attempt in range(2):  # a concurrent bootstrap (two API processes) may win a name first
        try:
            result = await _ensure(services, admin_password, stored, password_file)
            break
        except (db.Duplicate, IntegrityError):
            if attempt:
                raise
    result.clouds_yaml = write_clouds_yaml(conf, services.catalog, result.password)
    if result.generated:
        announce(result, sys.stdout if out is None else out)
    return result


def announce(result: Bootstrapped, out: TextIO) -> None:
    """Tell where the generated admin password is: the password itself only if ``out`` is a terminal."""
    where = f"; clouds.yaml entry '{CLOUD_NAME}' in {result.clouds_yaml}" if result.clouds_yaml else ""
    if out.isatty():
        text = f"password {result.password} (saved in {result.password_file}{where})"
    else:
        text = f"password saved in {result.password_file}{where}"
    print(f"stratus: identity admin user 'admin', project 'admin', {text}", file=out, flush=True)


async def _ensure(services: IdentityServices, given: str | None, stored: str | None,
                  password_file: str) -> Bootstrapped:
    async with services.db.read() as conn:
        admin = await db.find_user(conn, ADMIN, db.DEFAULT_DOMAIN_ID)
    generated = False
    password = given or stored
    new_hash: str | None = None
    if admin is None:
        if password is None:
            password, generated = generate_secret(18), True
        new_hash = await services.hasher.hash(password)
    elif password is not None and not await services.hasher.check(password, admin["password_hash"]):
        if given:
            new_hash = await services.hasher.hash(given)  # keystone-manage bootstrap resets it too
        else:
            LOG.warning("the admin password in %s no longer matches (changed through the API?); clouds.yaml "
                        "keeps its password", password_file)
            password = None
    async with services.db.write() as conn:
        if await db.get_domain(conn, db.DEFAULT_DOMAIN_ID) is None:
            await db.create_domain(conn, domain_id=db.DEFAULT_DOMAIN_ID, name="Default",
                                   description="The default domain")
        role_ids = []
        for name in ROLE_CHAIN:
            role = await db.find_role(conn, name) or await db.create_role(conn, name=name)
            role_ids.append(role["id"])
        for prior, implied in itertools.pairwise(role_ids):
            await db.imply_role(conn, prior, implied)
        await db.unimply_role(conn, role_ids[0], role_ids[2])  # admin -> member, before manager sat between
        for name in STANDALONE_ROLES:
            await db.find_role(conn, name) or await db.create_role(conn, name=name)
        project = (await db.find_project(conn, ADMIN, db.DEFAULT_DOMAIN_ID)
                   or await db.create_project(conn, name=ADMIN, domain_id=db.DEFAULT_DOMAIN_ID,
                                              description="Bootstrap project for the cloud administrator"))
        user = await db.find_user(conn, ADMIN, db.DEFAULT_DOMAIN_ID)
        if user is None:
            user = await db.create_user(conn, name=ADMIN, domain_id=db.DEFAULT_DOMAIN_ID, password_hash=new_hash,
                                        default_project_id=project["id"])
        elif new_hash is not None:
            user = await db.update_user(conn, user, {"password_hash": new_hash, "enabled": True})
        await db.assign(conn, user["id"], db.PROJECT, project["id"], role_ids[0])
    if generated:
        _write_private(password_file, f"{password}\n")
    return Bootstrapped(password=password, generated=generated, password_file=password_file, clouds_yaml=None)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def _write_private(path: str, text: str) -> None:
    """Write ``text`` readable by the owner only, atomically (a reader never sees half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        make_private_dir(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def clouds_entry(conf: Any, services: list[catalog.Service], password: str | None) -> dict[str, Any]:
    auth: dict[str, Any] = {"auth_url": catalog.identity_url(services), "username": ADMIN, "project_name": ADMIN,
                            "user_domain_name": "Default", "project_domain_name": "Default"}
    if password is not None:
        auth["password"] = password
    return {"auth_type": "password", "auth": auth, "region_name": conf.identity.region_name,
            "identity_api_version": 3}


def write_clouds_yaml(conf: Any, services: list[catalog.Service], password: str | None) -> str | None:
    """Put the entry ``stratus`` into ``[identity] clouds_yaml``, keeping the file's other entries (and the old
    password when this process does not know the current one). Returns the path, or None when not written."""
    if not conf.identity.clouds_yaml:
        return None
    path = os.path.abspath(conf.identity.clouds_yaml)
    data: Any = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            LOG.warning("not writing %s: it cannot be read as YAML (%s)", path, exc)
            return None
    if not isinstance(data, dict) or not isinstance(data.setdefault("clouds", {}), dict):
        LOG.warning("not writing %s: it has no 'clouds' mapping", path)
        return None
    entry = clouds_entry(conf, services, password)
    old = data["clouds"].get(CLOUD_NAME)
    if password is None and isinstance(old, dict) and isinstance(old.get("auth"), dict) and "password" in old["auth"]:
        entry["auth"]["password"] = old["auth"]["password"]
    data["clouds"][CLOUD_NAME] = entry
    _write_private(path, yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
    LOG.info("clouds.yaml entry '%s' written to %s", CLOUD_NAME, path)
    return path
