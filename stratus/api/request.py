"""What a handler sees: the caller, the negotiated version, path and query, the body, and the services."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.context import RequestContext

if TYPE_CHECKING:
    from stratus.api.services import ApiServices


@dataclasses.dataclass(slots=True)
class ApiRequest:
    raw: Request
    context: RequestContext
    version: APIVersion
    services: ApiServices
    path: dict[str, str]
    url_project_id: str | None

    @property
    def query(self) -> QueryParams:
        return self.raw.query_params

    def at_least(self, version: APIVersion) -> bool:
        return self.version >= version

    async def json(self) -> Any:
        """The JSON body; an empty or malformed one is a 400, as in Nova."""
        data = await self.raw.body()
        if not data:
            raise Fault(400, "The request body is empty or malformed.")
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise Fault(400, "Malformed request body") from None

    def link_prefix(self) -> tuple[str, str]:
        """(self, bookmark) URL prefixes for resource links, the way Nova builds them."""
        conf_prefix = self.services.conf.api.compute_link_prefix
        base = (conf_prefix or str(self.raw.base_url)).rstrip("/")
        project = f"/{self.url_project_id}" if self.url_project_id else ""
        return f"{base}/v2.1{project}", f"{base}{project}"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=headers)
