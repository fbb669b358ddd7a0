"""The service's exception hierarchy and its RFC 9457 problem+json rendering.

Services raise these; one handler (``common.problems``) turns them into responses, so views never build
error tuples. Pure: no Flask here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://prm.invalid/problems/"


#: Problems a response (or the command line) lists; a file with thousands of bad rows says how many more.
MAX_LISTED_PROBLEMS = 100


@dataclass(frozen=True)
class FieldProblem:
    """One validation problem: where (JSON pointer, or file:row:column) and what."""

    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.message}


class PrmError(Exception):
    """Root of every error the service reports to a caller."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class Unauthorized(PrmError):
    code, status, title = "unauthorized", 401, "Authentication required"


class Forbidden(PrmError):
    code, status, title = "forbidden", 403, "Not allowed"


class NotFound(PrmError):
    code, status, title = "not-found", 404, "Not found"


class Conflict(PrmError):
    code, status, title = "conflict", 409, "Conflict"


class InvalidTransition(Conflict):
    code, title = "invalid-transition", "Transition not allowed"


class PreconditionFailed(PrmError):
    code, status, title = "precondition-failed", 412, "Precondition failed"


class PreconditionRequired(PrmError):
    code, status, title = "precondition-required", 428, "Precondition required"


class PayloadTooLarge(PrmError):
    code, status, title = "payload-too-large", 413, "Payload too large"


class UnsupportedMediaType(PrmError):
    code, status, title = "unsupported-media-type", 415, "Unsupported media type"


class ValidationFailed(PrmError):
    """The request or file is well-formed but its content is wrong; lists every problem found."""

    code, status, title = "validation-failed", 422, "Validation failed"

    def __init__(self, detail: str | None = None, errors: Sequence[FieldProblem] = (), **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.errors = list(errors)

    def to_problem(self) -> dict[str, Any]:
        """The problem with the first ``MAX_LISTED_PROBLEMS`` errors; ``errors_omitted`` counts the rest."""
        body = super().to_problem()
        body["errors"] = [e.as_dict() for e in self.errors[:MAX_LISTED_PROBLEMS]]
        if len(self.errors) > MAX_LISTED_PROBLEMS:
            body["errors_omitted"] = len(self.errors) - MAX_LISTED_PROBLEMS
        return body


class RulesetInvalid(ValidationFailed):
    code, title = "ruleset-invalid", "Ruleset invalid"


class PartnerCrmUnavailable(PrmError):
    code, status, title = "partner-crm-unavailable", 502, "Partner CRM unavailable"


class ServiceUnavailable(PrmError):
    """A service this one hands work to (the batch broker) cannot be reached."""

    code, status, title = "service-unavailable", 503, "Service unavailable"
