"""The request context's dict (what travels with every cast) has every field, as dataclasses.asdict would give."""

from __future__ import annotations

import dataclasses

from stratus.context import RequestContext


def test_to_dict_is_every_field_and_a_copy() -> None:
    ctx = RequestContext(user_id="u", project_id="p", is_admin=True, roles=["admin", "member"], auth_token="t")
    out = ctx.to_dict()
    assert out == dataclasses.asdict(ctx)
    assert list(out) == [f.name for f in dataclasses.fields(RequestContext)]
    out["roles"].append("reader")
    assert ctx.roles == ["admin", "member"]
    assert RequestContext.from_dict(ctx.to_dict()) == ctx
