"""Domain errors raised by services and mapped to HTTP responses by views and the API."""

from __future__ import annotations


class DomainError(Exception):
    """Base class. ``code`` is the machine-readable error code used in JSON errors."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class BadRequest(DomainError):
    """The request itself is unreadable (malformed JSON, wrong content type)."""

    code = "bad_request"
    status = 400


class ValidationFailed(DomainError):
    """Input does not satisfy the schema; ``fields`` maps field name -> message."""

    code = "validation_failed"
    status = 422


class InvalidTransition(DomainError):
    """The action is not allowed from the application's current status."""

    code = "invalid_transition"
    status = 409


class ConflictError(DomainError):
    """Someone else changed the object first (stale version, lost claim, duplicate)."""

    code = "conflict"
    status = 409


class PermissionDenied(DomainError):
    """The actor may not perform this action on this object."""

    code = "forbidden"
    status = 403


class NotFound(DomainError):
    """No such object, or the actor may not know it exists."""

    code = "not_found"
    status = 404


class PreconditionFailed(DomainError):
    """An ``If-Match`` header named a version that is no longer current."""

    code = "precondition_failed"
    status = 412
