"""Key pairs: ``/os-keypairs`` list, create or import, show, delete; per user, as Nova's.

Versions: 2.2 adds ``type`` (ssh or x509) and moves create to 201 and delete to 204; 2.10 lets admins act on
another user's key pairs with ``user_id``; 2.35 pages the list with ``limit`` and ``marker``. Name rules are
Nova's before 2.92 (letters, digits, ``_``, ``-`` and spaces).

Fingerprints are Nova's, so the same key shows the same fingerprint on both clouds: ssh keys the MD5 of the
key blob, x509 certificates the SHA-1 of the DER certificate, both as colon-separated hex.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import hashlib
from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import collection_links, limit_and_marker
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.db import keypairs as db
from stratus.db import quotas
from stratus.identity.policy import authorize
from stratus.utils import isotime_usec

_V22 = APIVersion.parse("2.2")    # key type; create 201, delete 204
_V210 = APIVersion.parse("2.10")  # user_id for admins
_V235 = APIVersion.parse("2.35")  # list pagination
_V292 = APIVersion.parse("2.92")  # import only (public_key required); names may have '@' and '.'

CREATE_SCHEMA_V21: dict[str, Any] = {
    "type": "object",
    "properties": {
        "keypair": {
            "type": "object",
            "properties": {"name": validation.name, "public_key": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["keypair"],
    "additionalProperties": False,
}
CREATE_SCHEMA_V22 = copy.deepcopy(CREATE_SCHEMA_V21)
CREATE_SCHEMA_V22["properties"]["keypair"]["properties"]["type"] = {"type": "string", "enum": ["ssh", "x509"]}
CREATE_SCHEMA_V210 = copy.deepcopy(CREATE_SCHEMA_V22)
# Nova's request schema takes any string here; its response schemas promise parameter_types.user_id, and a user id
# outside it (a NUL, CR/LF, a megabyte) makes a key pair no request can name again to delete it: refused up front.
CREATE_SCHEMA_V210["properties"]["keypair"]["properties"]["user_id"] = validation.user_id

_SAFE_CHARS = frozenset("_- 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
CREATE_SCHEMA_V292 = copy.deepcopy(CREATE_SCHEMA_V210)
CREATE_SCHEMA_V292["properties"]["keypair"]["properties"]["name"] = {"allOf": [
    validation.name, {"type": "string", "pattern": r"^[_\-\@\. a-zA-Z0-9]+$", "minLength": 1, "maxLength": 255}]}
CREATE_SCHEMA_V292["properties"]["keypair"]["required"] = ["name", "public_key"]
_UPN_OID = "1.3.6.1.4.1.311.20.2.3"  # Microsoft user principal name, for WinRM

# cryptography is imported by the functions that use it: it is 7 MiB of the process's memory, and only key pair
# requests (not the other requests, not the builds) need it


class InvalidKeypair(ValueError):
    """Key material that is not what its type says; the message is Nova's reason."""


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def ssh_fingerprint(public_key: str) -> str:
    """MD5 of the decoded key blob, after checking the whole line parses as an OpenSSH public key."""
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_public_key(public_key.encode("utf-8"))
        blob = base64.b64decode(public_key.split(" ")[1])
    except Exception:
        raise InvalidKeypair("failed to generate fingerprint") from None
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).digest())


def x509_fingerprint(pem: str) -> str:
    """SHA-1 of a PEM certificate's DER form."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise InvalidKeypair(f"failed to generate X509 fingerprint. Error message: {exc}") from None
    return _colon_hex(cert.fingerprint(hashes.SHA1()))  # an identifier, as Nova uses it


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == "x509" else ssh_fingerprint(public_key)


def _der_utf8(text: str) -> bytes:
    """A DER UTF8String: the encoding an otherName's value must carry."""
    data = text.encode("utf-8")
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + data


def generate_ssh() -> tuple[str, str, str]:
    """A 2048-bit RSA pair: (PEM private key, OpenSSH public key line, fingerprint), as Nova generates."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode("ascii")
    public_blob = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode("ascii")
    public = f"{public_blob} Generated-by-Nova"
    return private, public, ssh_fingerprint(public)


#: X.509's upper bound of a common name (ub-common-name), which cryptography counts in UTF-8 bytes
_CN_MAX_BYTES = 64


def common_name(user_id: str) -> str:
    """The certificate's CN for ``user_id``: the longest prefix of whole characters within 64 UTF-8 bytes (a token's
    user id can be longer, or multibyte); the full id stays in the UPN."""
    data = user_id.encode("utf-8")[:_CN_MAX_BYTES]
    return data.decode("utf-8", "ignore") or "user"


def generate_x509(user_id: str) -> tuple[str, str, str]:
    """Nova's WinRM client certificate: (base64 PKCS#12 without password, PEM certificate, fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name(user_id))])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.OtherName(x509.ObjectIdentifier(_UPN_OID), _der_utf8(f"{user_id}@localhost"))]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    bundle = pkcs12.serialize_key_and_certificates(None, key, cert, None, serialization.NoEncryption())
    return base64.b64encode(bundle).decode("ascii"), pem, x509_fingerprint(pem)


def generate(key_type: str, user_id: str) -> tuple[str, str, str]:
    return generate_x509(user_id) if key_type == "x509" else generate_ssh()


def _create_schema(req: ApiRequest) -> dict[str, Any]:
    if req.at_least(_V292):
        return CREATE_SCHEMA_V292
    if req.at_least(_V210):
        return CREATE_SCHEMA_V210
    return CREATE_SCHEMA_V22 if req.at_least(_V22) else CREATE_SCHEMA_V21


def _target_user(req: ApiRequest, from_body: str | None = None) -> str:
    """The user acted on: from 2.10 the body's or query's ``user_id`` (policy keeps it to admins)."""
    if req.at_least(_V210):
        wanted = from_body or next(iter(req.query.getlist("user_id")), None)
        if wanted:
            return wanted
    return req.context.user_id


def _check_name(name: str) -> None:
    if not set(name) <= _SAFE_CHARS:
        raise Fault(400, "Keypair data is invalid: Keypair name contains unsafe characters")
    if not 1 <= len(name) <= 255:
        raise Fault(400, "Keypair data is invalid: Keypair name must be string and between 1 and 255 "
                         "characters long")


async def _check_quota(req: ApiRequest, conn: Any, user_id: str) -> None:
    """Nova's check: the owner's key pairs plus one within the caller's project and user limits."""
    ctx = req.context
    try:
        await quotas.limit_check(conn, req.services.conf, ctx.project_id, ctx.user_id,
                                 {"key_pairs": await db.count(conn, user_id) + 1})
    except quotas.OverQuota:
        raise Fault(403, "Quota exceeded, too many key pairs.") from None


def _view(keypair: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: keypair[f] for f in fields}


async def create(req: ApiRequest) -> Response:
    """Import ``public_key`` if given, else (before 2.92) generate a pair and return its private key once."""
    body = await req.json()
    validation.validate(_create_schema(req), body)
    params = body["keypair"]
    name = params["name"].strip()
    key_type = params.get("type", "ssh")
    user_id = _target_user(req, params.get("user_id"))
    authorize(req.context, "os_compute_api:os-keypairs:create", {"user_id": user_id})
    if not req.at_least(_V292):  # from 2.92 the schema checks the name
        _check_name(name)
    async with req.services.db.read() as conn:
        await _check_quota(req, conn, user_id)

    private_key = None
    try:
        if "public_key" in params:
            public_key = params["public_key"]
            key_fingerprint = fingerprint(public_key, key_type)
        else:
            private_key, public_key, key_fingerprint = await asyncio.to_thread(generate, key_type, user_id)
    except InvalidKeypair as exc:
        raise Fault(400, f"Keypair data is invalid: {exc}") from None

    try:
        async with req.services.db.write() as conn:
            await quotas.lock_user(conn, user_id)
            await _check_quota(req, conn, user_id)  # again, now holding the owner's quota lock
            keypair = await db.create(conn, user_id=user_id, name=name, public_key=public_key,
                                      fingerprint=key_fingerprint, key_type=key_type)
    except db.KeyPairExists:
        raise Fault(409, f"Key pair '{name}' already exists.") from None

    fields = ("name", "public_key", "fingerprint", "user_id") + (("type",) if req.at_least(_V22) else ())
    out = _view(keypair, fields)
    if private_key is not None:
        out["private_key"] = private_key
    return json_response({"keypair": out}, status=201 if req.at_least(_V22) else 200)


async def index(req: ApiRequest) -> Response:
    user_id = _target_user(req)
    authorize(req.context, "os_compute_api:os-keypairs:index", {"user_id": user_id})
    paged = req.at_least(_V235)
    limit, marker = limit_and_marker(req) if paged else (None, None)
    try:
        async with req.services.db.read() as conn:
            items = await db.list_by_user(conn, user_id, limit=limit, marker=marker)
    except db.MarkerNotFound:
        raise Fault(400, f"Marker {marker} could not be found.") from None
    fields = ("name", "public_key", "fingerprint") + (("type",) if req.at_least(_V22) else ())
    body: dict[str, Any] = {"keypairs": [{"keypair": _view(k, fields)} for k in items]}
    if paged and limit is not None and (links := collection_links(req, "os-keypairs", items, limit, "name")):
        body["keypairs_links"] = links
    return json_response(body)


async def show(req: ApiRequest) -> Response:
    user_id = _target_user(req)
    authorize(req.context, "os_compute_api:os-keypairs:show", {"user_id": user_id})
    name = req.path["keypair_name"]
    async with req.services.db.read() as conn:
        keypair = await db.get(conn, user_id, name)
    if keypair is None:
        raise Fault(404, f"Keypair {name} not found for user {user_id}")
    fields = ("name", "public_key", "fingerprint", "user_id", "deleted", "deleted_at", "id", "updated_at")
    out = _view(keypair, fields + (("type",) if req.at_least(_V22) else ()))
    out["created_at"] = isotime_usec(keypair["created_at"])
    out["updated_at"] = isotime_usec(keypair["updated_at"])
    return json_response({"keypair": out})


async def delete(req: ApiRequest) -> Response:
    user_id = _target_user(req)
    authorize(req.context, "os_compute_api:os-keypairs:delete", {"user_id": user_id})
    name = req.path["keypair_name"]
    async with req.services.db.write() as conn:
        deleted = await db.delete_keypair(conn, user_id, name)
    if not deleted:
        raise Fault(404, f"Keypair {name} not found for user {user_id}")
    return empty_response(204 if req.at_least(_V22) else 202)


ROUTES: list[Route] = [
    Route("/os-keypairs", "GET", index),
    Route("/os-keypairs", "POST", create),
    Route("/os-keypairs/{keypair_name}", "GET", show),
    Route("/os-keypairs/{keypair_name}", "DELETE", delete),
]
