"""Apply a mapping profile: our opportunity document to the partner's, and the partner's back to ours.

Both functions are pure and check every value against our side's fields (`transfer.canonical`):

- `to_partner` sends exactly the fields and child records the profile maps, renamed, values translated.
- `from_partner` reads exactly those (never a field our side keeps to itself, such as the owner), ignores
  anything else the partner sent, and rejects the whole document with every problem listed if one value
  does not fit, so nothing of a bad document is ever applied.

For every document `doc` that `to_partner` accepts, ``from_partner(p, to_partner(p, doc))`` is `doc`
restricted to what the profile maps both ways; a value several of ours share on the partner's side comes
back as the one the profile's ``back`` names.

>>> from transfer.profile import bundled_profile
>>> lead = bundled_profile("partner_lead")
>>> sent = to_partner(lead, {"name": "Acme renewal", "status": "won", "owner": "u.cam"})
>>> sent["Title"], sent["LeadStatus"]
('Acme renewal', 'Converted')
>>> from_partner(lead, {"Title": "Acme renewal", "LeadStatus": "Disqualified", "Score": 5})
{'name': 'Acme renewal', 'status': 'lost'}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.errors import FieldProblem
from transfer.canonical import MAX_CHILDREN, ValueRejected, accept_value
from transfer.errors import NotMappable, PartnerDataInvalid
from transfer.profile import MappingProfile, ProfileLoad, RecordMapping, bundled_profile, load_mapping_profile

__all__ = [
    "MappingProfile",
    "ProfileLoad",
    "bundled_profile",
    "from_partner",
    "load_mapping_profile",
    "to_partner",
]


def to_partner(profile: MappingProfile, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The partner's document for our opportunity document `doc`; `NotMappable` lists every problem."""
    problems: list[FieldProblem] = []
    out = _record_to_partner(profile.opportunity, doc, "", problems)
    for kind, child in profile.children.items():
        items = doc.get(kind)
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(FieldProblem(f"/{kind}", "expected a list of records"))
            continue
        out[child.key] = [
            _record_to_partner(child.mapping, item, f"/{kind}/{i}", problems) for i, item in enumerate(items)
        ]
    if problems:
        raise NotMappable(
            f"cannot map this {profile.opportunity.record.name} to a {profile.object_name} "
            f"with profile '{profile.name}'",
            problems,
        )
    return out


def from_partner(profile: MappingProfile, partner_doc: Any) -> dict[str, Any]:
    """Our document for the partner's `partner_doc`; `PartnerDataInvalid` lists every problem."""
    problems: list[FieldProblem] = []
    if not isinstance(partner_doc, Mapping):
        problems.append(FieldProblem("", f"expected a {profile.object_name} object"))
        raise PartnerDataInvalid(f"not a {profile.object_name}", problems)
    out = _record_from_partner(profile.opportunity, partner_doc, "", problems)
    for kind, child in profile.children.items():
        items = partner_doc.get(child.key)
        pointer = "/" + _escape(child.key)
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(FieldProblem(pointer, f"expected a list of {child.object_name or kind}"))
            continue
        if len(items) > MAX_CHILDREN:
            problems.append(FieldProblem(pointer, f"more than {MAX_CHILDREN} records"))
            continue
        converted = []
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                converted.append(_record_from_partner(child.mapping, item, f"{pointer}/{i}", problems))
            else:
                problems.append(FieldProblem(f"{pointer}/{i}", "expected an object"))
        out[kind] = converted
    if problems:
        raise PartnerDataInvalid(
            f"the partner's {profile.object_name} does not fit profile '{profile.name}'", problems
        )
    return out


def _record_to_partner(
    mapping: RecordMapping, record: Any, pointer: str, problems: list[FieldProblem]
) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        problems.append(FieldProblem(pointer, f"expected a {mapping.record.name} object"))
        return {}
    out: dict[str, Any] = {}
    for ours, theirs in mapping.fields.items():
        if ours not in record:
            continue
        field = mapping.record.field(ours)
        assert field is not None  # the profile loader checked every name
        where = f"{pointer}/{ours}"
        try:
            value = accept_value(field, record[ours])
        except ValueRejected as exc:
            problems.append(FieldProblem(where, str(exc)))
            continue
        value_map = mapping.values.get(ours)
        if value_map is not None and value is not None:
            if value in value_map.to_partner:
                value = value_map.to_partner[value]
            elif not value_map.keep_unlisted:
                known = ", ".join(value_map.to_partner)
                problems.append(
                    FieldProblem(where, f"{value!r} has no partner value in the profile; mapped: {known}")
                )
                continue
            elif value in value_map.from_partner:
                # Sent unchanged it would read as another of our values on the way back.
                meant = value_map.from_partner[value]
                problems.append(
                    FieldProblem(
                        where,
                        f"{value!r} is not mapped, and unchanged it is the partner's value for {meant!r}",
                    )
                )
                continue
        out[theirs] = value
    return out


def _record_from_partner(
    mapping: RecordMapping, record: Mapping[str, Any], pointer: str, problems: list[FieldProblem]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ours, theirs in mapping.fields.items():
        field = mapping.record.field(ours)
        assert field is not None  # the profile loader checked every name
        if not field.from_partner or theirs not in record:
            continue
        where = f"{pointer}/{_escape(theirs)}"
        value = record[theirs]
        value_map = mapping.values.get(ours)
        if value_map is not None and value is not None:
            if not isinstance(value, str):
                problems.append(FieldProblem(where, "expected a string"))
                continue
            if value in value_map.from_partner:
                value = value_map.from_partner[value]
            elif value_map.default is not None:
                value = value_map.default
            elif not value_map.keep_unlisted:
                known = ", ".join(value_map.from_partner)
                problems.append(
                    FieldProblem(
                        where, f"{_short(repr(value))} is not a value the profile maps; known: {known}"
                    )
                )
                continue
        try:
            out[ours] = accept_value(field, value)
        except ValueRejected as exc:
            problems.append(FieldProblem(where, str(exc)))
    return out


def _escape(key: str) -> str:
    """A key as a JSON pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
