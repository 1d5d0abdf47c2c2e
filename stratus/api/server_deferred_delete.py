"""Server actions ``restore`` and ``forceDelete`` of a soft-deleted server (``[DEFAULT]
reclaim_instance_interval``), as Nova's ``os-deferred-delete``: both 202.

``restore`` (state soft-deleted) powers the server on again on its host: active, its claim kept all along.
``forceDelete`` deletes it now, as a delete without the interval does.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api.common import ActionHandler
from stratus.api.request import ApiRequest, empty_response
from stratus.api.server_state import host_action
from stratus.api.servers import delete_instance
from stratus.compute import api as compute_api
from stratus.objects import states
from stratus.objects.states import task_states

RESTORE = compute_api.PowerAction("restore", "restore_instance", task_states.RESTORING, (states.SOFT_DELETED,))


async def _force_delete(req: ApiRequest, body: dict[str, Any]) -> Response:
    await delete_instance(req, req.path["server_id"], "os_compute_api:os-deferred-delete:force")
    return empty_response(202)


ACTIONS: dict[str, ActionHandler] = {"restore": host_action("os_compute_api:os-deferred-delete:restore", RESTORE),
                                     "forceDelete": _force_delete}
