"""Pydantic models of a mapping profile file as admins write it (the schema layer).

Models are strict (no ``1`` -> ``"1"`` coercion) and forbid unknown keys, so every typo is reported. What
the schema cannot say (that a field name is one of ours, that a value map can be inverted) is checked
afterwards by `transfer.profile`, with positions. A profile reads::

    profile: partner_lead             # a name for people
    object: Lead                      # what the partner calls our opportunity
    fields:                           # our field: their field
      name: Title
      status: LeadStatus
    values:                           # per field, our value: their value
      status:
        map: {open: Open, won: Converted, lost: Converted}
        back: {Converted: won}        # which of ours a shared value of theirs comes back as
        default: open                 # ours for a value of theirs that is not in the map
      currency:
        map: {EUR: euro}
        unlisted: keep                # values not listed travel unchanged, both ways
    children:                         # the child records that travel, and their names there
      contacts:
        as: People                    # the key of their list in the partner's document
        object: Person
        fields: {name: FullName, email: Email}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator


def _trimmed(name: str) -> str:
    if name != name.strip():
        raise ValueError(f"{name!r} starts or ends with a space; partner names are written exactly")
    return name


PartnerName = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_trimmed)]
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}")
PartnerValue = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, frozen=True)


class ValueMapSpec(_Spec):
    """How one field's values translate: ours -> theirs, and back."""

    map_: dict[str, PartnerValue] = Field(
        alias="map", min_length=1, description="our value: their value (every value that travels)"
    )
    back: dict[str, str] = Field(
        default_factory=dict,
        description="their value: our value, for a value of theirs that several of ours map to",
    )
    default: str | None = Field(
        default=None, description="our value for a value of theirs the map does not know (else rejected)"
    )
    unlisted: Literal["reject", "keep"] = Field(
        default="reject", description="'keep': values the map does not list travel unchanged both ways"
    )


class RecordSpec(_Spec):
    fields: dict[str, PartnerName] = Field(min_length=1, description="our field name: their field name")
    values: dict[str, ValueMapSpec] = Field(default_factory=dict, description="our field name: value map")


class ChildSpec(RecordSpec):
    as_: PartnerName = Field(alias="as", description="the key of this list in the partner's document")
    object: PartnerName | None = Field(default=None, description="what the partner calls one such record")


class ProfileSpec(RecordSpec):
    profile: str = Field(description="the profile's name: letters, digits, '_', '.', '-' (max 80)")
    description: str | None = None
    object: PartnerName = Field(description="what the partner calls our opportunity, such as 'Lead'")
    children: dict[str, ChildSpec] = Field(default_factory=dict, description="our child kind: its mapping")

    @field_validator("profile")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PROFILE_NAME.fullmatch(value):
            raise ValueError(f"invalid profile name {value!r}: use letters, digits, '_', '.', '-' (max 80)")
        return value


def profile_json_schema() -> dict[str, Any]:
    """JSON Schema of a mapping profile file, for editors."""
    return ProfileSpec.model_json_schema(by_alias=True)
