"""The messaging options, with oslo.messaging's names: ``[DEFAULT] control_exchange`` and the
``[oslo_messaging_rabbit]`` options the AMQP transport implements (only those; see docs/multinode.md)."""

from __future__ import annotations

from oslo_config import cfg

DEFAULT_OPTS = [
    cfg.StrOpt("control_exchange", default="stratus",
               help="The AMQP topic exchange every service's queues are bound to (oslo.messaging's option; Nova "
                    "sets it to nova, Stratus to stratus, so a Stratus cloud never shares one with a Nova on the "
                    "same virtual host)."),
]

RABBIT_OPTS = [
    cfg.BoolOpt("amqp_durable_queues", default=True,
                help="Durable topic queues and exchange, persistent messages: a cast or call the broker "
                     "confirmed survives a broker restart. oslo.messaging's default is False (a restart drops what "
                     "was queued); Stratus defaults to True because a lost build cast leaves a server in BUILD. "
                     "Changing it on a broker that already has the queues is refused by the broker "
                     "(PRECONDITION_FAILED): delete them first."),
    cfg.FloatOpt("rabbit_retry_interval", default=1.0, min=0.1,
                 help="Seconds between two attempts to connect to the broker (at start-up, between rounds over "
                      "the transport_url's hosts, and when a connection was lost)."),
    cfg.IntOpt("heartbeat_timeout_threshold", default=60, min=0,
               help="AMQP heartbeat: a broker connection silent for this many seconds is taken as dead and "
                    "reconnected (0 disables heartbeats)."),
    cfg.IntOpt("rabbit_qos_prefetch_count", default=0, min=0,
               help="Messages a consumer takes before acknowledging earlier ones (0: no limit). Each message is "
                    "acknowledged after its handler returns."),
]
