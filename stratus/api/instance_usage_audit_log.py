"""``/os-instance_usage_audit_log`` and ``/os-instance_usage_audit_log/{before_timestamp}`` (admins), as Nova's.

Nova's compute hosts run an audit of instance usage once per audit period when ``[DEFAULT]
instance_usage_audit`` is on (off by default) and record it in a task log; this API summarises that log for the
last completed period (Nova's default period, the month: from the first of the previous month to the first of
this one, or of the month before ``before_timestamp``). Stratus's compute hosts run no such audit, so every
compute host is reported as not run, with no instances and no errors: the answer Nova gives with the audit off.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import select
from starlette.responses import Response

from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db.models import services
from stratus.identity.policy import authorize
from stratus.utils import utcnow


def last_completed_month(before: datetime.datetime | None = None) -> tuple[datetime.datetime, datetime.datetime]:
    """Nova's ``last_completed_audit_period`` for the ``month`` unit: the last month that ended before ``before``
    (now by default)."""
    now = before or utcnow()
    end = datetime.datetime(now.year, now.month, 1)
    if end >= now:
        end = _month_before(end)
    return _month_before(end), end


def _month_before(first: datetime.datetime) -> datetime.datetime:
    return datetime.datetime(first.year - 1, 12, 1) if first.month == 1 else datetime.datetime(
        first.year, first.month - 1, 1)


async def _log(req: ApiRequest, before: datetime.datetime | None = None) -> dict[str, Any]:
    begin, end = last_completed_month(before)
    async with req.services.db.read() as conn:
        rows = await conn.execute(select(services.c.host).where(services.c.binary == "nova-compute").distinct())
        hosts = sorted(row[0] for row in rows)
    done = 0  # no audit task logs: see the module's docstring
    return {"period_beginning": str(begin), "period_ending": str(end), "num_hosts": len(hosts),
            "num_hosts_done": done, "num_hosts_running": 0, "num_hosts_not_run": len(hosts),
            "hosts_not_run": hosts, "total_instances": 0, "total_errors": 0,
            "overall_status": f"{'ALL' if done == len(hosts) else f'{done} of {len(hosts)}'} hosts done. 0 errors.",
            "log": {}}


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-instance-usage-audit-log:list", {})
    return json_response({"instance_usage_audit_logs": await _log(req)})


async def show(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-instance-usage-audit-log:show", {})
    text = req.path["before_timestamp"]
    try:
        before = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Fault(400, f"Invalid timestamp for date {text}") from None
    return json_response({"instance_usage_audit_log": await _log(req, before)})


ROUTES: list[Route] = [
    Route("/os-instance_usage_audit_log", "GET", index),
    Route("/os-instance_usage_audit_log/{before_timestamp}", "GET", show),
]
