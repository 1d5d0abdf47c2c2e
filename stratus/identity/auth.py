"""Who is calling: the seam where noauth2 now, and Keystone tokens later, turn headers into a context."""

from __future__ import annotations

import abc
from collections.abc import Mapping

from stratus.api.errors import Fault
from stratus.context import RequestContext, generate_request_id


class Authenticator(abc.ABC):
    @abc.abstractmethod
    def authenticate(self, headers: Mapping[str, str]) -> RequestContext:
        """The caller's context, or a 401 Fault."""


class NoAuth2(Authenticator):
    """Nova's ``noauth2``: the token ``user:project`` names the caller; user ``admin`` is an admin.

    For tests, benchmarks and a private all-in-one; never for a cloud others can reach.
    """

    def authenticate(self, headers: Mapping[str, str]) -> RequestContext:
        token = headers.get("x-auth-token") or headers.get("x-auth-user")
        if not token:
            raise Fault(401, "Authentication required")
        user_id, _, project_id = token.partition(":")
        if not project_id:
            project_id = user_id
        is_admin = user_id == "admin"
        roles = ["admin", "member", "reader"] if is_admin else ["member", "reader"]
        request_id = headers.get("x-openstack-request-id") or generate_request_id()
        return RequestContext(user_id=user_id, project_id=project_id, is_admin=is_admin, roles=roles,
                              request_id=request_id if request_id.startswith("req-") else generate_request_id(),
                              auth_token=token)
