"""Instance faults as written to a real SQLite database: a long message keeps its cause, details keep the rest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from stratus import exception
from stratus.db import actions
from stratus.db.engine import Database
from stratus.db.models import instance_faults
from stratus.db.models import instances as instances_table
from stratus.image.backends.rbd import refusal
from stratus.utils import new_uuid, utcnow

#: a cause that must survive (it names the cluster at its very end) followed by a long explanation
FSID = "6b4a3f0e-5c1d-4f2a-9e8b-7d6c5b4a3f21"
CAUSE = f"Image {'1' * 8}-2222-3333-4444-{'5' * 12} is not clone-able in Ceph cluster {FSID}"
LONG = CAUSE + " because " + " ".join(["its data is in another store"] * 12)


async def _fault(db: Database, error: BaseException, **kwargs: Any) -> dict[str, Any]:
    uuid = new_uuid()
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(instances_table.insert().values(
            uuid=uuid, project_id="p", user_id="u", flavor={}, vcpus=1, memory_mb=64, root_gb=1, ephemeral_gb=0,
            vm_state="error", power_state=0, reservation_id="r-1", system_metadata={},
            security_groups=[], created_at=now, updated_at=now))
        await actions.add_fault(conn, uuid, error, host="h1", **kwargs)
        row = (await conn.execute(select(instance_faults).where(instance_faults.c.instance_uuid == uuid))
               ).mappings().one()
    return dict(row)


def test_short_message_keeps_the_start_at_a_word_boundary() -> None:
    assert actions.short_message("short enough") == "short enough"
    exact = "x" * 255
    assert actions.short_message(exact) == exact
    cut = actions.short_message(LONG)
    assert len(cut) <= 255 and cut.endswith("...")
    assert cut.startswith(CAUSE)  # the cluster named at the end of the cause is still there
    assert LONG.startswith(cut.removesuffix("..."))  # only whole words, nothing made up
    assert not cut.removesuffix("...").endswith(" ")
    # one long word: cut inside it rather than lose more than half of the space
    assert actions.short_message("a" * 400) == "a" * 252 + "..."


async def test_long_message_keeps_its_cause_and_the_whole_text_goes_to_details(db: Database) -> None:
    row = await _fault(db, exception.StratusException(LONG))
    assert len(row["message"]) <= 255
    assert FSID in row["message"] and row["message"].startswith(CAUSE)
    assert row["details"].startswith(LONG + "\n\n")  # the whole message first, then the traceback (code 500)
    assert "Traceback" in row["details"] or "StratusException" in row["details"]
    assert row["code"] == 500


async def test_details_of_the_error_come_after_its_message(db: Database) -> None:
    error = exception.BuildAbortException(instance_uuid="i-1", reason=CAUSE, details="its data is in local")
    row = await _fault(db, error)
    assert row["message"] == f"Build of instance i-1 aborted: {CAUSE}"
    assert row["details"].startswith("its data is in local\n\n")
    assert "BuildAbortException" in row["details"]


async def test_no_traceback_for_codes_other_than_500_as_nova(db: Database) -> None:
    row = await _fault(db, exception.ImageNotFound(image_id="abc"))
    assert (row["code"], row["message"], row["details"]) == (404, "Image abc could not be found.", "")
    row = await _fault(db, exception.ImageNotFound(LONG))
    assert row["details"] == LONG  # only the message that had to be cut: a 404's details are everyone's


async def test_given_details_replace_the_traceback(db: Database) -> None:
    row = await _fault(db, exception.NoValidHost(reason="none"), code=500, details="host h2: out of memory")
    assert row["details"] == "host h2: out of memory"


async def test_rbd_refusal_names_image_and_cluster_within_the_message(db: Database) -> None:
    """``never_download_image_if_on_rbd``'s fault: image, cluster and option in the 255 characters its owner
    sees (before, the cluster was cut off at 255), why not clone-able in the details."""
    image_id, instance_uuid = new_uuid(), new_uuid()
    why = f"its data is in local, not in the Ceph cluster {FSID}"
    row = await _fault(db, refusal(instance_uuid, image_id, FSID, why))
    assert row["message"] == (f"Build of instance {instance_uuid} aborted: Image {image_id} is not clone-able in "
                              f"Ceph cluster {FSID} and [workarounds] never_download_image_if_on_rbd refuses to "
                              "download it")
    assert len(row["message"]) <= 255
    assert row["details"].startswith(f"Image {image_id} cannot be cloned in Ceph cluster {FSID}: {why}\n\n")
