"""Keystone's account lockout (``[security_compliance] lockout_failure_attempts`` and ``lockout_duration``).

Off unless ``lockout_failure_attempts`` is set, as in Keystone. When it is, each wrong password of a user is
counted in the database; once the count reaches the limit, password logins of that user (and its self-service
password change) are refused with Keystone's 401 ``The account is locked for user: <id>.``, the right password
included and without spending a bcrypt check, until ``lockout_duration`` seconds after the last failure (then the
count starts again), or for good when the duration is unset. A correct password clears the count; so does an
administrator's update of the user while it stays enabled (``PATCH /v3/users/{id}`` with ``"enabled": true``).
A user with the option ``ignore_lockout_failure_attempts`` is never locked.

The state is checked when the login's turn at the hasher comes (not when it arrives), so a burst of concurrent
guesses gets at most as many checks past the limit as the hasher has workers; and a flood against a locked account
still waits for its turns, costing no CPU while it waits (answered at once, it would keep the event loop busy:
measured, the admin's login under such a flood took 2.4 s instead of 0.9 s).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from stratus.db import identity as db
from stratus.db.engine import Database
from stratus.identity.errors import IdentityError
from stratus.utils import utcnow


def account_locked(user_id: str) -> IdentityError:
    return IdentityError(401, f"The account is locked for user: {user_id}.")


@dataclasses.dataclass(frozen=True)
class Lockout:
    attempts: int | None  # None: off
    duration: int | None  # seconds; None: until an administrator unlocks

    @classmethod
    def from_conf(cls, conf: Any) -> Lockout:
        options = conf.security_compliance
        return cls(options.lockout_failure_attempts, options.lockout_duration)

    def locked(self, user: dict[str, Any], now: datetime.datetime) -> bool | None:
        """True if ``user`` is locked now; None if it was but the time is up (the count should be cleared)."""
        if not self.attempts or (user.get("options") or {}).get("ignore_lockout_failure_attempts"):
            return False
        if (user.get("failed_auth_count") or 0) < self.attempts:
            return False
        last = user.get("failed_auth_at")
        if not self.duration or last is None or last + datetime.timedelta(seconds=self.duration) > now:
            return True
        return None

    async def refuse_if_locked(self, database: Database, user_id: str) -> None:
        """401 if the user is locked (read fresh: other logins may have failed since the caller looked)."""
        if not self.attempts:
            return
        async with database.read() as conn:
            user = await db.get_user(conn, user_id)
        if user is None:
            return
        state = self.locked(user, utcnow())
        if state:
            raise account_locked(user_id)
        if state is None:
            async with database.write() as conn:
                await db.reset_failed_auth(conn, user_id)

    async def failed(self, database: Database, user_id: str) -> None:
        if self.attempts:
            async with database.write() as conn:
                await db.record_failed_auth(conn, user_id, utcnow())

    async def succeeded(self, database: Database, user: dict[str, Any]) -> None:
        if self.attempts:  # the count read with the user may be stale: other logins failed meanwhile
            async with database.write() as conn:
                await db.reset_failed_auth(conn, user["id"])
