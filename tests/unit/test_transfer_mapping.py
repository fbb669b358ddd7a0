"""Mapping profiles: ours -> theirs -> ours keeps every mapped field; partner data is checked and confined."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfer.canonical import CHILDREN, OPPORTUNITY, CanonicalField, CanonicalRecord, FieldKind
from transfer.errors import NotMappable, PartnerDataInvalid
from transfer.mapping import bundled_profile, from_partner, load_mapping_profile, to_partner
from transfer.profile import CORRELATIONS_KEY, DELETIONS_KEY

# Their names and values: printable ASCII, so any generated profile is also valid YAML/JSON text; not the
# protocol's own keys of a document, which a profile may not name (test_transfer_profiles.py's case).
partner_names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
).filter(lambda name: name not in (CORRELATIONS_KEY, DELETIONS_KEY))


def value_of(spec: CanonicalField) -> st.SearchStrategy[Any]:
    """Any value our side may hold for `spec`, including null."""
    kind = spec.kind
    if kind is FieldKind.CHOICE:
        base: st.SearchStrategy[Any] = st.sampled_from(spec.choices)
    elif kind is FieldKind.DECIMAL:
        base = st.from_regex(r"-?\d{1,18}(\.\d{1,8})?", fullmatch=True)
    elif kind is FieldKind.DATE:
        base = st.dates().map(lambda d: d.isoformat())
    elif kind is FieldKind.TIMESTAMP:
        base = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    elif kind is FieldKind.BOOLEAN:
        base = st.booleans()
    else:
        base = st.text(max_size=min(spec.max_length, 30))
    return st.none() | base


@st.composite
def value_maps(draw: st.DrawFn, spec: CanonicalField, injective: bool) -> dict[str, Any]:
    """A valid value map for a text or choice field: maybe shared partner values (then a `back`)."""
    short_words = st.text(alphabet="abcdefgh", min_size=1, max_size=min(4, spec.max_length))
    ours = (
        list(spec.choices)
        if spec.choices
        else draw(st.lists(short_words, min_size=1, max_size=4, unique=True))
    )
    theirs = draw(st.lists(partner_names, min_size=len(ours), max_size=len(ours), unique=injective))
    mapping = dict(zip(ours, theirs, strict=True))
    owners: dict[str, list[str]] = {}
    for o, t in mapping.items():
        owners.setdefault(t, []).append(o)
    back = {t: draw(st.sampled_from(os)) for t, os in owners.items() if len(os) > 1}
    out: dict[str, Any] = {"map": mapping}
    if back:
        out["back"] = back
    if not spec.choices:
        extra = draw(st.sampled_from(["none", "keep", "default"]))
        if extra == "keep":
            out["unlisted"] = "keep"
        elif extra == "default":
            out["default"] = ours[0]
    return out


@st.composite
def record_specs(
    draw: st.DrawFn, record: CanonicalRecord, theirs: list[str], injective: bool
) -> dict[str, Any]:
    """Maps some of `record`'s fields, each to one of the distinct names `theirs` (consumed)."""
    names = draw(st.lists(st.sampled_from(record.field_names), min_size=1, unique=True))
    fields = {name: theirs.pop() for name in names}
    values = {}
    for name in names:
        spec = record.field(name)
        if spec is not None and spec.maps_values and draw(st.booleans()):
            values[name] = draw(value_maps(spec, injective))
    return {"fields": fields, "values": values}


@st.composite
def profile_specs(draw: st.DrawFn, injective: bool) -> dict[str, Any]:
    unique_names = st.lists(partner_names, min_size=len(OPPORTUNITY.fields) + len(CHILDREN), unique=True)
    theirs = draw(unique_names)
    spec = {
        "profile": "generated",
        "object": draw(partner_names),
        **draw(record_specs(OPPORTUNITY, theirs, injective)),
    }
    children = {}
    for kind in draw(st.lists(st.sampled_from(sorted(CHILDREN)), unique=True)):
        # Child field names only need to differ from each other, not from the opportunity's.
        children[kind] = {
            "as": theirs.pop(),
            **draw(record_specs(CHILDREN[kind], draw(unique_names), injective)),
        }
    spec["children"] = children
    return spec


def inverse(value_map: dict[str, Any]) -> dict[str, str]:
    """The oracle: their value -> ours, written from the file format's rules, not from the loader."""
    out: dict[str, str] = {}
    for ours, theirs in value_map["map"].items():
        out.setdefault(theirs, ours)
    out.update(value_map.get("back", {}))
    return out


@st.composite
def documents_for(draw: st.DrawFn, record: CanonicalRecord, spec: dict[str, Any]) -> dict[str, Any]:
    """A record of ours that the profile `spec` can send: mapped values are ones the map can carry."""
    doc: dict[str, Any] = {}
    for field in record.fields:
        if not draw(st.booleans()):
            continue
        value_map = spec.get("values", {}).get(field.name)
        if value_map is None or field.choices:
            doc[field.name] = draw(value_of(field))
        elif value_map.get("unlisted") == "keep":
            value = draw(st.sampled_from(sorted(value_map["map"])) | value_of(field))
            # An unlisted value that reads as one of theirs is refused (tested separately).
            doc[field.name] = None if value in inverse(value_map) and value not in value_map["map"] else value
        else:
            doc[field.name] = draw(st.none() | st.sampled_from(sorted(value_map["map"])))
    return doc


@st.composite
def profiles_with_documents(
    draw: st.DrawFn, injective: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = draw(profile_specs(injective))
    doc = draw(documents_for(OPPORTUNITY, spec))
    for kind, child in spec["children"].items():
        if draw(st.booleans()):
            doc[kind] = draw(st.lists(documents_for(CHILDREN[kind], child), max_size=3))
    return spec, doc


def expected_back(record: CanonicalRecord, spec: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` restricted to what `spec` maps both ways, shared partner values resolved by `back`."""
    out = {}
    for name, value in doc.items():
        field = record.field(name)
        if field is None or name not in spec["fields"] or not field.from_partner:
            continue
        value_map = spec.get("values", {}).get(name)
        if value_map is not None and value in value_map["map"]:
            value = inverse(value_map)[value_map["map"][value]]
        out[name] = value
    return out


@settings(max_examples=100, deadline=None)
@given(profiles_with_documents())
def test_ours_to_theirs_to_ours_keeps_every_mapped_field(case):
    spec, doc = case
    profile = load_mapping_profile(json.dumps(spec), filename="generated.json").unwrap()

    back = from_partner(profile, to_partner(profile, doc))

    expected = expected_back(OPPORTUNITY, spec, doc)
    for kind, child in spec["children"].items():
        if kind in doc:
            expected[kind] = [expected_back(CHILDREN[kind], child, item) for item in doc[kind]]
    assert back == expected


@settings(max_examples=50, deadline=None)
@given(profiles_with_documents(), st.dictionaries(partner_names, st.integers() | st.text(), max_size=4))
def test_fields_the_profile_does_not_map_are_ignored(case, extra):
    spec, doc = case
    profile = load_mapping_profile(json.dumps(spec)).unwrap()
    sent = to_partner(profile, doc)
    mapped = set(spec["fields"].values()) | {child["as"] for child in spec["children"].values()}
    noisy = {**{k: v for k, v in extra.items() if k not in mapped}, **sent}

    assert from_partner(profile, noisy) == from_partner(profile, sent)


@settings(max_examples=50, deadline=None)
@given(profiles_with_documents(injective=True))
def test_without_shared_partner_values_the_round_trip_is_exact(case):
    spec, doc = case
    profile = load_mapping_profile(json.dumps(spec)).unwrap()
    both_ways = {f.name for f in OPPORTUNITY.fields if f.from_partner and f.name in spec["fields"]}

    back = from_partner(profile, to_partner(profile, doc))

    assert {k: v for k, v in back.items() if k not in CHILDREN} == {k: doc[k] for k in both_ways if k in doc}


# -- the two shipped profiles --------------------------------------------------------------------------

OPPORTUNITY_DOC = {
    "id": "42",
    "name": "Acme renewal",
    "customer": "Acme",
    "status": "open",
    "stage": "negotiation",
    "amount": "125000.00",
    "currency": "EUR",
    "close_date": "2025-03-31",
    "description": "Three-year renewal",
    "registration_number": "REG-000042",
    "owner": "u.cam",
    "contacts": [
        {
            "id": "c1",
            "name": "Ann Buyer",
            "email": "ann@acme.example",
            "phone": "+1 555 0100",
            "role": "buyer",
        },
        {"id": "c2", "name": "Bo Tech", "email": "bo@acme.example", "phone": None, "role": "engineer"},
    ],
    "revenue_lines": [
        {"id": "r1", "product": "P-100", "amount": "100000.00", "currency": "EUR", "quantity": "10"},
        {"id": "r2", "product": "P-200", "amount": "25000.00", "currency": "EUR", "quantity": "1.5"},
    ],
    "notes": [
        {"id": "n1", "text": "Budget approved", "author": "u.jane", "created_at": "2025-01-02T10:00:00+00:00"}
    ],
    "activities": [
        {"id": "a1", "kind": "meeting", "subject": "Kick-off", "due_date": "2025-01-15", "done": False}
    ],
}


def test_the_partner_sees_a_lead_with_its_own_names_and_words():
    lead = bundled_profile("partner_lead")

    sent = to_partner(lead, OPPORTUNITY_DOC)

    assert lead.object_name == "Lead"
    assert sent["Title"] == "Acme renewal"
    assert sent["LeadStatus"] == "Open"
    assert sent["VendorOwner"] == "u.cam"
    assert [p["FullName"] for p in sent["People"]] == ["Ann Buyer", "Bo Tech"]
    assert [line["Value"] for line in sent["LineItems"]] == ["100000.00", "25000.00"]
    assert sent["Comments"] == [
        {
            "ExternalId": "n1",
            "Body": "Budget approved",
            "WrittenBy": "u.jane",
            "WrittenAt": "2025-01-02T10:00:00+00:00",
        }
    ]
    assert sent["Tasks"][0]["TaskType"] == "Meeting"


@pytest.mark.parametrize("name", ["brand_owner", "partner_lead"])
def test_shipped_profiles_carry_the_whole_opportunity_except_what_stays_ours(name):
    profile = bundled_profile(name)

    back = from_partner(profile, to_partner(profile, OPPORTUNITY_DOC))

    kept_ours = {"owner", "registration_number"}
    assert back == {k: v for k, v in OPPORTUNITY_DOC.items() if k not in kept_ours}


def test_a_partner_closing_the_lead_and_changing_a_line_reads_as_won_and_the_new_amount():
    lead = bundled_profile("partner_lead")
    theirs = to_partner(lead, OPPORTUNITY_DOC)
    theirs["LeadStatus"] = "Converted"
    theirs["LineItems"][1]["Value"] = 30000
    theirs["Tasks"].append({"ExternalId": "t9", "TaskType": "Demo", "Subject": "Demo day", "Completed": True})

    ours = from_partner(lead, theirs)

    assert ours["status"] == "won"
    assert ours["revenue_lines"][1]["amount"] == "30000"
    assert ours["activities"][1] == {"id": "t9", "kind": "Demo", "subject": "Demo day", "done": True}


def test_partner_data_never_sets_owner_or_registration_number():
    profile = bundled_profile("brand_owner")

    ours = from_partner(profile, {"name": "x", "owner": "u.mallory", "registration_number": "REG-1"})

    assert ours == {"name": "x"}


def test_a_bad_partner_document_is_rejected_whole_with_every_problem():
    lead = bundled_profile("partner_lead")
    theirs = {
        "Title": "ok",
        "LeadStatus": "Nurturing",
        "EstimatedValue": "lots",
        "ExpectedClose": "31/03/2025",
        "People": [{"FullName": 7}, "not a person"],
        "LineItems": {"not": "a list"},
        "Tasks": [{"Completed": "yes"}],
    }

    with pytest.raises(PartnerDataInvalid) as caught:
        from_partner(lead, theirs)

    problems = {p.pointer: p.message for p in caught.value.errors}
    assert problems == {
        "/LeadStatus": "'Nurturing' is not a value the profile maps; known: Open, Converted, Disqualified",
        "/EstimatedValue": "'lots' is not a decimal number like '1250.00'",
        "/ExpectedClose": "'31/03/2025' is not a date (YYYY-MM-DD)",
        "/People/0/FullName": "expected a string, got a number",
        "/People/1": "expected an object",
        "/LineItems": "expected a list of LineItem",
        "/Tasks/0/Completed": "expected true or false, got a string",
    }
    assert caught.value.to_problem()["status"] == 422


def test_a_partner_document_that_is_not_an_object_is_rejected():
    with pytest.raises(PartnerDataInvalid):
        from_partner(bundled_profile("partner_lead"), ["Lead"])


def test_pointers_escape_slashes_and_tildes_in_partner_names():
    profile = load_mapping_profile("profile: p\nobject: X\nfields: {amount: 'a/b~c'}\n").unwrap()

    with pytest.raises(PartnerDataInvalid) as caught:
        from_partner(profile, {"a/b~c": "x"})

    assert caught.value.errors[0].pointer == "/a~1b~0c"


def test_an_unmapped_value_of_ours_cannot_be_sent():
    text = "profile: p\nobject: X\nfields: {stage: Phase}\nvalues:\n  stage:\n    map: {qualify: Q}\n"
    profile = load_mapping_profile(text).unwrap()

    with pytest.raises(NotMappable) as caught:
        to_partner(profile, {"stage": "negotiate"})

    assert [(p.pointer, p.message) for p in caught.value.errors] == [
        ("/stage", "'negotiate' has no partner value in the profile; mapped: qualify")
    ]


def test_a_kept_value_that_would_come_back_as_another_is_refused():
    text = "profile: p\nobject: X\nfields: {currency: Cur}\nvalues:\n  currency:\n    map: {EUR: euro}\n    unlisted: keep\n"
    profile = load_mapping_profile(text).unwrap()

    assert to_partner(profile, {"currency": "USD"}) == {"Cur": "USD"}
    assert from_partner(profile, {"Cur": "GBP"}) == {"currency": "GBP"}
    with pytest.raises(NotMappable):
        to_partner(profile, {"currency": "euro"})


def test_default_names_ours_for_an_unknown_partner_value():
    text = "profile: p\nobject: X\nfields: {status: S}\nvalues:\n  status:\n    map: {open: O, won: W, lost: L}\n    default: open\n"
    profile = load_mapping_profile(text).unwrap()

    assert from_partner(profile, {"S": "Nurturing"}) == {"status": "open"}


def test_shared_partner_values_come_back_as_the_one_back_names():
    text = (
        "profile: p\nobject: X\nfields: {status: S}\nvalues:\n  status:\n"
        "    map: {open: Open, won: Closed, lost: Closed}\n    back: {Closed: lost}\n"
    )
    profile = load_mapping_profile(text).unwrap()

    assert to_partner(profile, {"status": "won"}) == {"S": "Closed"}
    assert from_partner(profile, {"S": "Closed"}) == {"status": "lost"}


def test_our_document_is_checked_before_it_is_sent():
    with pytest.raises(NotMappable) as caught:
        to_partner(bundled_profile("brand_owner"), {"amount": "twelve", "contacts": "Ann"})

    assert {p.pointer for p in caught.value.errors} == {"/amount", "/contacts"}
