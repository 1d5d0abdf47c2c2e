"""The request context's dict (what travels with every cast) has every field, as dataclasses.asdict would give;
request ids are oslo.context's."""

from __future__ import annotations

import dataclasses
import uuid

from stratus.context import RequestContext, generate_request_id


def test_to_dict_is_every_field_and_a_copy() -> None:
    ctx = RequestContext(user_id="u", project_id="p", is_admin=True, roles=["admin", "member"], auth_token="t")
    out = ctx.to_dict()
    assert out == dataclasses.asdict(ctx)
    assert list(out) == [f.name for f in dataclasses.fields(RequestContext)]
    out["roles"].append("reader")
    assert ctx.roles == ["admin", "member"]
    assert RequestContext.from_dict(ctx.to_dict()) == ctx


def test_request_ids_are_random_version_4_uuids() -> None:
    ids = {generate_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for request_id in ids:
        assert request_id.startswith("req-")
        parsed = uuid.UUID(request_id[4:])
        assert str(parsed) == request_id[4:] and parsed.version == 4 and parsed.variant == uuid.RFC_4122
