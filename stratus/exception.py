"""Exceptions shared by the services. Their names cross the RPC boundary, so they are part of the protocol."""

from __future__ import annotations

from typing import Any, ClassVar

_REGISTRY: dict[str, type[StratusException]] = {}


class StratusException(Exception):
    """Base: a message template filled from keyword arguments, an HTTP-ish code, and RPC round-tripping."""

    msg_fmt: ClassVar[str] = "An unknown exception occurred."
    code: ClassVar[int] = 500

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, message: str | None = None, *, details: str = "", **kwargs: Any) -> None:
        """``details``: more than the message should say (the why behind its cause); an instance fault keeps it
        in its ``details``, which admins see."""
        self.kwargs = kwargs
        self.details = details
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                message = self.msg_fmt
        self.message = message
        super().__init__(message)

    def to_payload(self) -> dict[str, Any]:
        return {"exc_type": type(self).__name__, "message": self.message}


def from_payload(payload: dict[str, Any]) -> Exception:
    """Rebuild an exception sent by a remote service; unknown types become ``RemoteError``."""
    cls = _REGISTRY.get(payload.get("exc_type", ""))
    if cls is None:
        return RemoteError(exc_type=payload.get("exc_type"), value=payload.get("message"))
    return cls(payload.get("message"))


class RemoteError(StratusException):
    msg_fmt = "Remote error: %(exc_type)s %(value)s"


class MessagingTimeout(StratusException):
    msg_fmt = "Timed out waiting for a reply to %(method)s on %(topic)s"


class NotFound(StratusException):
    msg_fmt = "Resource could not be found."
    code = 404


class InstanceNotFound(NotFound):
    msg_fmt = "Instance %(instance_id)s could not be found."


class InterfaceAttachFailed(StratusException):
    """Nova's: the hypervisor refused the new NIC (the reason goes to the log, not to the user)."""

    msg_fmt = "Failed to attach network adapter device to %(instance_uuid)s"
    code = 400


class InterfaceDetachFailed(StratusException):
    msg_fmt = "Failed to detach network adapter device from %(instance_uuid)s"
    code = 400


class FlavorNotFound(NotFound):
    msg_fmt = "Flavor %(flavor_id)s could not be found."


class ImageNotFound(NotFound):
    msg_fmt = "Image %(image_id)s could not be found."


class ComputeHostNotFound(NotFound):
    msg_fmt = "Compute host %(host)s could not be found."


class NoValidHost(StratusException):
    msg_fmt = "No valid host was found. %(reason)s"
    code = 500


class RescheduledException(StratusException):
    """A build failed in a way another host might not: the conductor may retry elsewhere."""

    msg_fmt = "Build of instance %(instance_uuid)s was re-scheduled: %(reason)s"


class BuildAbortException(StratusException):
    """A build failed in a way no other host can fix: straight to ERROR."""

    msg_fmt = "Build of instance %(instance_uuid)s aborted: %(reason)s"


class ImageUnacceptable(StratusException):
    """The image cannot be used for this instance (wrong format, failed checksum…): no host can fix it."""

    msg_fmt = "Image %(image_id)s is unacceptable: %(reason)s"


class InstanceDeleted(StratusException):
    msg_fmt = "Instance %(instance_uuid)s was deleted while it was being built."


class ConcurrentUpdateDetected(StratusException):
    msg_fmt = "Another thread concurrently updated the resource provider %(provider)s; please retry."
    code = 409


class ClaimFailed(StratusException):
    msg_fmt = "Resources could not be claimed on %(host)s: %(reason)s"


class InstanceBuildTimeout(StratusException):
    """``[DEFAULT] instance_build_timeout`` passed with the instance still building (Nova's warning, as a fault)."""

    msg_fmt = "Instance build timed out. Set to error state."


class MigrationPreCheckError(StratusException):
    """The destination (or the request) cannot take a live migration: Nova's 400 before 2.34."""

    msg_fmt = "Migration pre-check error: %(reason)s"
    code = 400


class MigrationError(StratusException):
    """A move failed on the hypervisor (a live migration's copy broke off): the instance stays on its source."""

    msg_fmt = "Migration error: %(reason)s"


class UnableToMigrateToSelf(StratusException):
    msg_fmt = "Unable to migrate instance (%(instance_id)s) to current host (%(host)s)."
    code = 400


class LiveMigrationAborted(StratusException):
    msg_fmt = "Live migration of instance %(instance_uuid)s was aborted"
