"""Errors of the transfer package, as subclasses of the service's problem types (common.errors).

Each maps to its HTTP status through the common table: a broken mapping profile or partner document is a
422 listing every problem; anything wrong with an inbound signature is a 401 (never a 500); a partner URL
the policy refuses is a 422 when saved and a permanent delivery failure when met at connect time.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import FieldProblem, PartnerCrmUnavailable, Unauthorized, ValidationFailed
from rules.errors import Diagnostic


class MappingProfileInvalid(ValidationFailed):
    """A mapping profile failed to load: carries every problem, each with its file position."""

    code, title = "mapping-profile-invalid", "Mapping profile invalid"

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        problems = [
            FieldProblem(f"{d.file}:{d.line}:{d.column}", f"{d.path}: {d.message}") for d in diagnostics
        ]
        super().__init__("\n".join(str(d) for d in self.diagnostics) or self.title, problems)


class PartnerDataInvalid(ValidationFailed):
    """A document from a partner does not fit our side; nothing of it may be applied."""

    code, title = "partner-data-invalid", "Partner data invalid"


class NotMappable(ValidationFailed):
    """One of our values has no counterpart in the partner's profile, so the document cannot be sent."""

    code, title = "not-mappable", "Not mappable to the partner's data model"


class SecretInvalid(ValidationFailed):
    """A signing secret that is not ``whsec_`` followed by 24 to 64 base64-encoded bytes."""

    code, title = "signing-secret-invalid", "Signing secret invalid"


class WebhookRejected(Unauthorized):
    """An inbound request whose signature headers do not prove it came from the partner, now."""

    code, title = "signature-rejected", "Request signature rejected"


class SignatureHeadersMissing(WebhookRejected):
    code = "signature-headers-missing"


class SignatureHeaderMalformed(WebhookRejected):
    code = "signature-header-malformed"


class SignatureMismatch(WebhookRejected):
    code = "signature-mismatch"


class TimestampOutsideTolerance(WebhookRejected):
    code = "timestamp-outside-tolerance"


class MessageReplayed(WebhookRejected):
    code = "message-replayed"


class PartnerUrlRefused(ValidationFailed):
    """A partner endpoint URL the policy does not allow (scheme, credentials, private address...)."""

    code, title = "partner-url-refused", "Partner URL refused"


class PartnerHostUnresolvable(PartnerCrmUnavailable):
    """The partner's host name does not resolve right now: a retryable failure, not a policy refusal."""

    code = "partner-host-unresolvable"
