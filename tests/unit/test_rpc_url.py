"""transport_url parsing (Nova's rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost) and transport choice."""

from __future__ import annotations

import pytest

from stratus import conf as conf_mod
from stratus.rpc import url
from stratus.rpc.amqp import AmqpTransport
from stratus.rpc.local import LocalTransport
from stratus.rpc.transport import TransportError, get_transport


def test_every_host_is_kept_with_its_credentials() -> None:
    parsed = url.parse("rabbit://nova:s%40cret@mq1:5673,other:pw@[::1]:5674,mq3/nova%2Fprod")
    assert parsed.hosts == (url.BrokerHost("mq1", 5673, "nova", "s@cret"), url.BrokerHost("::1", 5674, "other", "pw"),
                            url.BrokerHost("mq3", 5672, "guest", "guest"))
    assert parsed.virtual_host == "nova/prod"
    assert parsed.hosts[0].amqp_url(parsed.virtual_host) == "amqp://nova:s%40cret@mq1:5673/nova%2Fprod"
    assert "s@cret" not in str(parsed) and "pw" not in str(parsed)


def test_empty_virtual_host_is_the_default_one() -> None:
    parsed = url.parse("rabbit://guest:guest@127.0.0.1:5672/")
    assert parsed.virtual_host == "/"
    assert parsed.hosts[0].amqp_url("/") == "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.mark.parametrize(("value", "message"), [
    ("rabbit://guest:guest@/", "a host is missing"),
    ("rabbit:///vhost", "no host"),
    ("rabbit://u:p@h:56x2/", "port '56x2' of h is not a number"),
    ("rabbit://u:p@h:70000/", "port 70000 of h is out of range"),
    ("rabbit://u:p@h/?ssl=1", "query options are not supported"),
    ("amqp://u:p@h/", "scheme 'amqp' is not rabbit"),
])
def test_bad_urls_are_refused_without_the_password(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        url.parse(value)
    assert ":p@" not in str(info.value)


def test_get_transport_picks_by_scheme() -> None:
    def conf(value: str) -> conf_mod.cfg.ConfigOpts:
        return conf_mod.load(overrides={"DEFAULT": {"transport_url": value}})

    assert isinstance(get_transport(conf("local://")), LocalTransport)
    amqp = get_transport(conf("rabbit://a:b@h1,a:b@h2:5673/v"))
    assert isinstance(amqp, AmqpTransport)
    assert [h.host for h in amqp.url.hosts] == ["h1", "h2"] and amqp.exchange_name == "stratus"
    with pytest.raises(TransportError, match=r"transport_url kafka://u:\*\*\*@h/: no transport for scheme 'kafka'"):
        get_transport(conf("kafka://u:secret@h/"))
    with pytest.raises(TransportError, match="no transport for scheme ''"):
        get_transport(conf("not a url"))
    with pytest.raises(TransportError, match="port 'x' of h is not a number"):
        get_transport(conf("rabbit://h:x/"))
