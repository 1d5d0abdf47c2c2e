"""The ``[neutron]`` keystoneauth options written out in stratus/keystoneauth_options.py are keystoneauth's own:
the same names, types, defaults, deprecated names, secrecy and help as ``keystoneauth1.loading`` gives."""

from __future__ import annotations

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from stratus import conf as conf_mod
from stratus import keystoneauth_options


def _from_keystoneauth(service_type: str) -> list[cfg.Opt]:
    """As Nova registers ``[neutron]``: the auth, session, adapter and ``password`` plugin options, each once, none
    required, the adapter's service type and interfaces defaulted for the service."""
    adapter = ks_loading.get_adapter_conf_options(include_deprecated=False)
    for opt in adapter:
        if opt.dest == "service_type":
            opt.default = service_type
        elif opt.dest == "valid_interfaces":
            opt.default = ["internal", "public"]
    seen: set[str] = set()
    out: list[cfg.Opt] = []
    for opt in (ks_loading.get_auth_common_conf_options() + ks_loading.get_session_conf_options() + adapter
                + ks_loading.get_auth_plugin_conf_options("password")):
        if opt.dest not in seen:
            seen.add(opt.dest)
            opt.required = False
            out.append(opt)
    return out


def test_written_out_options_are_keystoneauths() -> None:
    ours = keystoneauth_options.client_opts("network")
    theirs = _from_keystoneauth("network")
    assert [o.dest for o in ours] == [o.dest for o in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert type(mine) is type(reference), mine.name
        assert vars(mine) == vars(reference), mine.name  # oslo.config's own equality of options


def test_written_out_options_register_beside_keystoneauths() -> None:
    """keystoneauth registering its copy of an option already registered (``auth_type`` of a plugin loaded later)
    finds it equal, as oslo.config requires, rather than a duplicate."""
    conf = cfg.ConfigOpts()
    conf.register_opts(keystoneauth_options.client_opts("network"), group="neutron")
    ks_loading.register_auth_conf_options(conf, "neutron")
    ks_loading.register_session_conf_options(conf, "neutron")
    conf(args=[])
    assert conf.neutron.service_type == "network"


def test_nova_group_auth_options_are_keystoneauths() -> None:
    """[nova]'s auth_type and auth_section, registered with the configuration, are those keystoneauth registers
    when the notifier loads its plugin."""
    conf = conf_mod.load()
    ks_loading.register_auth_conf_options(conf, "nova")
    assert conf.nova.auth_type is None and conf.nova.auth_section is None
