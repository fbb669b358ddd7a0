"""Optimistic concurrency: a record's version is its ETag; changes must name the version they read."""

from __future__ import annotations

from common.errors import PreconditionFailed, PreconditionRequired


def etag_for(entity_id: int, version: int) -> str:
    """The strong ETag of one stored version of a record."""
    return f'"{entity_id}.{version}"'


def check_if_match(header: str | None, entity_id: int, current_version: int) -> None:
    """Check an ``If-Match`` header against the record's current version.

    No header -> 428; a header naming another version -> 412. ``*`` is not accepted: a change must say
    which version it was made against.
    """
    if not header:
        raise PreconditionRequired("Send If-Match with the ETag you read; changes need it")
    tags = [t.strip() for t in header.split(",")]
    if etag_for(entity_id, current_version) not in tags:
        raise PreconditionFailed(
            "The record changed since you read it; read it again and retry",
            current_etag=etag_for(entity_id, current_version),
        )
