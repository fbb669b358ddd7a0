"""Errors of lead registration beyond the shared ones (pure)."""

from __future__ import annotations

from common.errors import Conflict


class RegistrationNotAllowed(Conflict):
    """The partner's agreement or program membership does not allow this registration."""

    code, title = "registration-not-allowed", "Registration not allowed"


class ReadOnly(Conflict):
    """The registration's status does not allow changing its fields (notes are still allowed)."""

    code, title = "registration-read-only", "Registration is read-only"
