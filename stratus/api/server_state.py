"""What every server action that checks the server's states shares: Nova's 409s and the handler of an action
the server's host carries out.

A request that finds the server in a state the action does not take answers Nova's
``raise_http_conflict_for_instance_invalid_state`` message; a locked server (for its owner) or one with no host
yet is a 409 with the exception's own message. ``host_action`` is the whole handler of an action that needs
nothing but that: policy, the state check and the compare-and-swap claim into the action's task_state, the cast to
the host, 202 with no body (the power actions, ``restore``, ``unrescue``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api import validation
from stratus.api.common import ActionHandler
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response
from stratus.api.servers import load_instance
from stratus.compute import api as compute_api


def conflict(exc: compute_api.InstanceInvalidState, action: str, server_id: str) -> Fault:
    """Nova's ``raise_http_conflict_for_instance_invalid_state``."""
    attr, state = exc.kwargs.get("attr"), exc.kwargs.get("state")
    if attr is not None and state is not None:
        return Fault(409, f"Cannot '{action}' instance {server_id} while it is in {attr} {state}")
    return Fault(409, f"Instance {server_id} is in an invalid state for '{action}'")


@contextlib.contextmanager
def state_conflicts(action: str, server_id: str, *also: type[exception.StratusException]) -> Iterator[None]:
    """Turns what ``compute_api``'s checks raise into Nova's 409s: a wrong state (Nova's wording, naming
    ``action``), a locked server, a server not on a host yet, and the exceptions of ``also`` (their message)."""
    try:
        yield
    except compute_api.InstanceInvalidState as exc:
        raise conflict(exc, action, server_id) from None
    except (compute_api.InstanceNotReady, compute_api.InstanceIsLocked, *also) as exc:
        raise Fault(409, exc.message) from None


def host_action(rule: str, action: compute_api.PowerAction, schema: dict[str, Any] | None = None
                ) -> ActionHandler:
    """The handler of an action the server's host carries out with no arguments: the body checked against
    ``schema`` (None: any body, as Nova's power actions), policy ``rule``, the state check and claim, the cast."""

    async def handler(req: ApiRequest, body: dict[str, Any]) -> Response:
        if schema is not None:
            validation.validate(schema, body)
        server_id = req.path["server_id"]
        inst = await load_instance(req, server_id, rule)
        with state_conflicts(action.name, server_id):
            await compute_api.request(req.services.db, req.services.transport, req.context.to_dict(),
                                      inst["uuid"], action, is_admin=req.context.is_admin)
        return empty_response(202)

    return handler
