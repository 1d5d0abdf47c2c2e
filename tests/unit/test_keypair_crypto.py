"""Key pair fingerprints and key checks, against values OpenSSH and OpenSSL computed for the same keys."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from stratus.api import keypairs

# `ssh-keygen -l -E md5 -f KEY.pub` printed these fingerprints.
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO6qKIecJX6EK7mNPJ3SLLU0s/v2G0tAuwDf5OFUKpZn test@stratus"
ED25519_FP = "56:96:6d:21:c8:1d:ca:ba:50:0e:9c:b6:0e:be:52:77"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDGiqzeOG+A7BYF9mNfPqR6GoCJgk7YzlVmBm+E0FTJvyIVd9xix4P8DD9hc/+6P6Em"
       "xVoK6DSQG8jqNKSzI3R84pDj01kDqeeHKnaXZGk2TapO+DmZ4qTY8AfCHB66S2rHGFUT5Rmd3v20Cq0Xhly9tJpw4vK7+jMEJkAomaWRFQ=="
       " rsa@stratus")
RSA_FP = "a7:f8:fc:d5:51:18:8d:de:fa:22:c5:e5:81:00:7c:f9"

# `openssl x509 -noout -fingerprint -sha1` printed this one.
CERT = """-----BEGIN CERTIFICATE-----
MIICDDCCAXWgAwIBAgIUI/g2Ud8es7Wl8wITvUOqpHTf+GIwDQYJKoZIhvcNAQEL
BQAwFzEVMBMGA1UEAwwMc3RyYXR1cy10ZXN0MCAXDTI2MTEyMzE4MzA0NloYDzIx
MjYxMDMwMTgzMDQ2WjAXMRUwEwYDVQQDDAxzdHJhdHVzLXRlc3QwgZ8wDQYJKoZI
hvcNAQEBBQADgY0AMIGJAoGBAOl7f5L8pWG/0G1umdIPoVCI3faTilqOJqEQFB/h
6X2gwbtdlmBuMVDYi982fIxy30tfq30auQ+kGeViHeBp1A86jDOwfPsU6q2Et+ow
UNoYIKhg/yGyELPKrGeAK9JS6oDMsSqEiD6RYjOBgUXpQNN8RbxAPMtqwIycFzsh
0IadAgMBAAGjUzBRMB0GA1UdDgQWBBTGjsE0Uy9e+tg9SABcXX/DEQCekDAfBgNV
HSMEGDAWgBTGjsE0Uy9e+tg9SABcXX/DEQCekDAPBgNVHRMBAf8EBTADAQH/MA0G
CSqGSIb3DQEBCwUAA4GBACDSiQy6L4D/WCik4vIodb0n070xcRgSsyqOgcxmLdA2
otHLVOqAYzANrKfuuyVbk7YOrVRAA3vGfvTEZAg9bLIwJV5MDideeY0kKRmWNbnY
OL7I60SvKUy09AT0+S5yHHiOYFBlziLcLKARvbT39xyNKGZmAfzh9sOrs11AkHd5
-----END CERTIFICATE-----
"""
CERT_FP = "dd:ad:5b:99:85:6b:d8:fe:53:4b:94:fc:a1:cd:b1:c3:83:8b:4c:c8"


@pytest.mark.parametrize(("key", "expected"), [(ED25519, ED25519_FP), (RSA, RSA_FP)])
def test_ssh_fingerprint_matches_openssh(key: str, expected: str) -> None:
    assert keypairs.fingerprint(key, "ssh") == expected


def test_ssh_fingerprint_without_comment() -> None:
    assert keypairs.ssh_fingerprint(RSA.rsplit(" ", 1)[0]) == RSA_FP


def test_x509_fingerprint_matches_openssl() -> None:
    assert keypairs.fingerprint(CERT, "x509") == CERT_FP


@pytest.mark.parametrize("key", ["", "ssh-rsa", "ssh-rsa foo", "ssh-rsa AAAA bar", "not a key at all",
                                 RSA.replace("ssh-rsa", "ssh-dsa"), CERT])
def test_bad_ssh_keys(key: str) -> None:
    with pytest.raises(keypairs.InvalidKeypair, match="failed to generate fingerprint"):
        keypairs.fingerprint(key, "ssh")


@pytest.mark.parametrize("pem", ["", RSA, CERT.replace("MIIC", "XXXX"), "-----BEGIN CERTIFICATE-----\n"])
def test_bad_certificates(pem: str) -> None:
    with pytest.raises(keypairs.InvalidKeypair, match="failed to generate X509 fingerprint"):
        keypairs.fingerprint(pem, "x509")


def test_generated_ssh_pair_is_consistent() -> None:
    private, public, fp = keypairs.generate("ssh", "alice")
    assert private.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert public.startswith("ssh-rsa ") and public.endswith(" Generated-by-Nova")
    key = serialization.load_pem_private_key(private.encode(), password=None)
    derived = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert public.split(" ")[1] == derived.decode().split(" ")[1]
    assert fp == keypairs.ssh_fingerprint(public) and len(fp.split(":")) == 16


def test_generated_x509_is_a_winrm_client_certificate() -> None:
    bundle, pem, fp = keypairs.generate("x509", "alice")
    assert fp == keypairs.x509_fingerprint(pem)
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(bundle), None)
    assert key is not None and cert is not None
    assert cert.public_bytes(serialization.Encoding.PEM).decode() == pem
    assert cert.subject.rfc4514_string() == "CN=alice"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usage
    other = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.OtherName)
    assert other[0].value == b"\x0c\x0falice@localhost"


def test_der_utf8_long_form() -> None:
    assert keypairs._der_utf8("a" * 200) == b"\x0c\x81\xc8" + b"a" * 200


@pytest.mark.parametrize("user_id", ["é" * 64, "a" * 300, "€" * 22, "a" * 63 + "é"])
def test_x509_common_name_fits_64_utf8_bytes(user_id: str) -> None:
    """A user id of more than 64 UTF-8 bytes (a token's, multibyte or long) still gets a certificate: its CN is the
    longest prefix of whole characters that fits, the UPN keeps the whole id."""
    bundle, pem, _ = keypairs.generate_x509(user_id)
    cert = x509.load_pem_x509_certificate(pem.encode())
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str) and user_id.startswith(cn) and len(cn.encode()) <= 64
    assert len((cn + user_id[len(cn)]).encode()) > 64
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{user_id}@localhost".encode() in san[0].value
    assert pkcs12.load_key_and_certificates(base64.b64decode(bundle), None)[1] == cert
