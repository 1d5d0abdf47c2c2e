"""The keystoneauth options of a service client's group (``[neutron]``), as Nova registers them: the session's
(TLS, timeout), the adapter's (service type, interfaces, region, endpoint_override) and the ``password`` plugin's
(the plugin named by ``auth_type`` registers its own when it is loaded; these are the usual one's), none
``required`` (so a deployment without them starts; a plugin checks its own as it is loaded).

They are written out here rather than asked of ``keystoneauth1.loading`` when the configuration is loaded: that
import brings keystoneauth (and requests, which the all-in-one imports anyway for oslo.policy; 2.4 MiB of its memory
without it) into every process, also the many that never talk to a real Keystone or a Neutron.
tests/unit/test_keystoneauth_options.py keeps them equal to keystoneauth's own (oslo.config adds the underscore
spelling of each dashed deprecated name itself, as it does for keystoneauth's).
"""

from __future__ import annotations

from oslo_config import cfg, types


def auth_opts() -> list[cfg.Opt]:
    """``auth_type`` and ``auth_section``, as ``keystoneauth1.loading.register_auth_conf_options`` registers them:
    registered beforehand in a group, they say whether it names a plugin at all without importing keystoneauth."""
    return [
        cfg.Opt("auth_type", type=str, deprecated_opts=[cfg.DeprecatedOpt("auth_plugin")],
                help="Authentication type to load"),
        cfg.Opt("auth_section", type=str, help="Config Section from which to load plugin specific options"),
    ]


def client_opts(service_type: str) -> list[cfg.Opt]:
    """The options of a client of ``service_type``, its default ``service_type`` and ``valid_interfaces``
    internal then public (Nova's for ``[neutron]``)."""
    return [
        *auth_opts(),
        cfg.StrOpt("cafile", help="PEM encoded Certificate Authority to use when verifying HTTPs connections."),
        cfg.StrOpt("certfile", help="PEM encoded client certificate cert file"),
        cfg.StrOpt("keyfile", help="PEM encoded client certificate key file"),
        cfg.BoolOpt("insecure", default=False, help="Verify HTTPS connections."),
        cfg.FloatOpt("timeout", help="Timeout value for http requests"),
        cfg.BoolOpt("collect-timing", default=False, help="Collect per-API call timing information."),
        cfg.BoolOpt("split-loggers", default=False, help="Log requests to multiple loggers."),
        cfg.StrOpt("tls-ciphers",
                help="An OpenSSL cipher string to set the allowed ciphers for TLS connections. If not specified, "
                     "the default ciphers from the underlying OpenSSL library are used."),
        cfg.StrOpt("tls-min-version", choices=[
            (None, "None - the absence of a setting, defers to the system cryptographic policy"),
            ("1.2", "TLS 1.2 - enforce minimum TLS version 1.2"),
            ("1.3", "TLS 1.3 - enforce minimum TLS version 1.3"),
        ], help="The minimum TLS version to require for TLS connections. When not specified, the behavior is "
                "undefined and defers to the system cryptographic policy."),
        cfg.StrOpt("service-type", default=service_type, help="The default service_type for endpoint URL discovery."),
        cfg.StrOpt("service-name", help="The default service_name for endpoint URL discovery."),
        cfg.ListOpt("valid-interfaces", default=["internal", "public"],
                help="List of interfaces, in order of preference, for endpoint URL."),
        cfg.StrOpt("region-name", help="The default region_name for endpoint URL discovery."),
        cfg.StrOpt("endpoint-override",
                help="Always use this endpoint URL for requests for this client. NOTE: The unversioned endpoint "
                     "should be specified here; to request a particular API version, use the `version`, "
                     "`min-version`, and/or `max-version` options."),
        cfg.StrOpt("version",
                help="Minimum Major API version within a given Major API version for endpoint URL discovery. "
                     "Mutually exclusive with min_version and max_version"),
        cfg.StrOpt("min-version",
                help="The minimum major version of a given API, intended to be used as the lower bound of a range "
                     "with max_version. Mutually exclusive with version. If min_version is given with no "
                     'max_version it is as if max version is "latest".'),
        cfg.StrOpt("max-version",
                help="The maximum major version of a given API, intended to be used as the upper bound of a range "
                     "with min_version. Mutually exclusive with version."),
        cfg.IntOpt("connect-retries",
                help="The maximum number of retries that should be attempted for connection errors."),
        cfg.FloatOpt("connect-retry-delay",
                help="Delay (in seconds) between two retries for connection errors. If not set, exponential retry "
                     "starting with 0.5 seconds up to a maximum of 60 seconds is used."),
        cfg.IntOpt("status-code-retries",
                help="The maximum number of retries that should be attempted for retriable HTTP status codes."),
        cfg.FloatOpt("status-code-retry-delay",
                help="Delay (in seconds) between two retries for retriable status codes. If not set, exponential "
                     "retry starting with 0.5 seconds up to a maximum of 60 seconds is used."),
        cfg.ListOpt("retriable-status-codes", item_type=types.Integer(),
                help="List of retriable HTTP status codes that should be retried. If not set default to `[503]`"),
        cfg.Opt("auth-url", type=str, help="Authentication URL"),
        cfg.Opt("system-scope", type=str, help="Scope for system operations"),
        cfg.Opt("domain-id", type=str, help="Domain ID to scope to"),
        cfg.Opt("domain-name", type=str, help="Domain name to scope to"),
        cfg.Opt("project-id", type=str,
                deprecated_opts=[cfg.DeprecatedOpt("tenant-id")],
                help="Project ID to scope to"),
        cfg.Opt("project-name", type=str,
                deprecated_opts=[cfg.DeprecatedOpt("tenant-name")],
                help="Project name to scope to"),
        cfg.Opt("project-domain-id", type=str, help="Domain ID containing project"),
        cfg.Opt("project-domain-name", type=str, help="Domain name containing project"),
        cfg.Opt("trust-id", type=str, help="ID of the trust to use as a trustee use"),
        cfg.Opt("default-domain-id", type=str,
                help="Optional domain ID to use with v3 and v2 parameters. It will be used for both the user and "
                     "project domain in v3 and ignored in v2 authentication."),
        cfg.Opt("default-domain-name", type=str,
                help="Optional domain name to use with v3 API and v2 parameters. It will be used for both the user"
                     " and project domain in v3 and ignored in v2 authentication."),
        cfg.Opt("user-id", type=str, help="User id"),
        cfg.Opt("username", type=str, deprecated_opts=[cfg.DeprecatedOpt("user-name")],
                help="Username"),
        cfg.Opt("user-domain-id", type=str, help="User's domain id"),
        cfg.Opt("user-domain-name", type=str, help="User's domain name"),
        cfg.Opt("password", type=str, secret=True, help="User's password"),
    ]
