"""Nova's ``transport_url`` for RabbitMQ: ``rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost``.

Every host is kept (the transport connects to the first that answers and fails over to the others); a host
without credentials is RabbitMQ's ``guest:guest``, without a port 5672; an empty virtual host is ``/``.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote, unquote, urlsplit

DEFAULT_PORT = 5672


@dataclasses.dataclass(frozen=True)
class BrokerHost:
    host: str
    port: int = DEFAULT_PORT
    username: str = "guest"
    password: str = "guest"

    def amqp_url(self, virtual_host: str, query: str = "") -> str:
        """The URL aio-pika connects to (``amqp://``; the virtual host percent-encoded, ``/`` as ``%2F``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        return f"amqp://{userinfo}@{host}:{self.port}/{quote(virtual_host, safe='')}" + (f"?{query}" if query else "")

    def __str__(self) -> str:  # for messages: never the password
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.username}@{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class TransportURL:
    hosts: tuple[BrokerHost, ...]
    virtual_host: str

    def __str__(self) -> str:
        return f"rabbit://{','.join(str(h) for h in self.hosts)}/{self.virtual_host.removeprefix('/')}"


def _host(part: str, url: str) -> BrokerHost:
    creds, _, hostport = part.rpartition("@")
    username, password = "guest", "guest"
    if creds:
        user, sep, secret = creds.partition(":")
        username, password = unquote(user), (unquote(secret) if sep else "")
    if hostport.startswith("["):  # [IPv6]:port
        host, _, rest = hostport[1:].partition("]")
        port_text = rest.removeprefix(":")
        if rest and not rest.startswith(":"):
            raise ValueError(f"transport_url {url}: bad host {hostport!r}")
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise ValueError(f"transport_url {url}: a host is missing (rabbit://user:pass@host:5672/)")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"transport_url {url}: port {port_text!r} of {host} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"transport_url {url}: port {port} of {host} is out of range")
    return BrokerHost(host=host, port=port, username=username, password=password)


def parse(url: str) -> TransportURL:
    """Parse a ``rabbit://`` URL; a ValueError says what is wrong (without the passwords)."""
    shown = redact(url)
    parts = urlsplit(url)
    if parts.scheme != "rabbit":
        raise ValueError(f"transport_url {shown}: scheme {parts.scheme!r} is not rabbit")
    if parts.query or parts.fragment:
        raise ValueError(f"transport_url {shown}: query options are not supported; set them in "
                         "[oslo_messaging_rabbit]")
    if not parts.netloc:
        raise ValueError(f"transport_url {shown}: no host (rabbit://user:pass@host:5672/vhost)")
    hosts = tuple(_host(part, shown) for part in parts.netloc.split(","))
    path = parts.path.removeprefix("/")
    return TransportURL(hosts=hosts, virtual_host=unquote(path) or "/")


def redact(url: str) -> str:
    """``url`` with every password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    hosts = []
    for part in netloc.split(","):
        creds, at, hostport = part.rpartition("@")
        if at and ":" in creds:
            part = f"{creds.split(':', 1)[0]}:***@{hostport}"
        hosts.append(part)
    return f"{scheme}://{','.join(hosts)}{slash}{path}"
