"""Every broken mapping profile is refused with the position, path and message an admin needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfer.errors import MappingProfileInvalid
from transfer.mapping_schema import profile_json_schema
from transfer.profile import PROFILES_DIR, load_mapping_profile

BAD = Path(__file__).parent / "transfer_profiles"

# file -> the start of one expected error: "line:column: path: message"
EXPECTED = {
    "back_not_a_partner_value.yaml": "7:12: values.status.back.Closd: 'Closd' is not a partner value of this map (did you mean 'Closed'?)",
    "back_to_wrong_value.yaml": "7:20: values.status.back.Closed: 'Closed' can only come back as one of the values mapped to it: won, lost",
    "bad_profile_name.yaml": "1:10: profile: invalid profile name 'my profile'",
    "child_key_clash.yaml": "6:9: children.notes.as: 'Notes' is already the partner's name of fields.description",
    "child_missing_as.yaml": "6:5: children.notes.as: missing required field 'as'",
    "default_and_keep.yaml": "7:5: values.currency.default: 'default' and 'unlisted: keep' exclude each other",
    "default_not_a_choice.yaml": "7:14: values.status.default: 'opne' is not one of our values (did you mean 'open'?)",
    "duplicate_key.yaml": '3:1: : YAML syntax error: found duplicate key "object"',
    "empty_fields.yaml": "3:9: fields: must not be empty",
    "empty_file.yaml": "1:1: : empty mapping profile",
    "field_name_not_string.yaml": "4:9: fields.name: Input should be a valid string, got int 42",
    "missing_object.yaml": "1:1: object: missing required field 'object'",
    "non_string_value_key.yaml": "10:21: children.activities.values.done.map.True: key True must be a string; quote it",
    "not_a_mapping.yaml": "1:1: : a mapping profile is a mapping of keys, got a list",
    "not_invertible.yaml": "6:42: values.status.map.lost: 'won' and 'lost' both map to 'Closed', so 'Closed' cannot be mapped back; add back: {Closed: won}",
    "partner_name_spaces.yaml": "4:9: fields.name: 'Title ' starts or ends with a space",
    "reserved_correlations_key.yaml": "5:16: fields.description: 'correlations' and 'deletions' are the protocol's own keys of a document",
    "shared_partner_field.yaml": "5:16: fields.description: 'Title' is already the partner's name of 'name'",
    "status_value_missing.yaml": "6:10: values.status.map: no partner value for 'lost'; map every one of: open, won, lost",
    "status_value_unknown.yaml": "6:23: values.status.map.wonn: 'wonn' is not one of our values (did you mean 'won'?)",
    "unknown_child_field.yaml": "7:30: children.contacts.fields.emial: unknown contact field 'emial' (did you mean 'email'?)",
    "unknown_child_kind.yaml": "5:3: children.contact: unknown child records 'contact' (did you mean 'contacts'?)",
    "unknown_field.yaml": "5:3: fields.custmer: unknown opportunity field 'custmer' (did you mean 'customer'?)",
    "unknown_top_key.yaml": "3:1: feilds: unknown field 'feilds' (did you mean 'fields'?)",
    "unlisted_unknown.yaml": "7:15: values.currency.unlisted: unknown value 'pass'; expected one of: reject, keep",
    "value_map_on_decimal.yaml": "5:3: values.amount: value maps translate text and choice fields; 'amount' is a decimal",
    "value_map_unmapped_field.yaml": "5:3: values.stage: 'stage' has a value map but is not in 'fields', so it never travels",
    "yaml_alias_bomb.yaml": "5:21: : more than 50,000 values with aliases (*name) expanded",
    "yaml_deep_brackets.yaml": "3:78: : nested more than 64 levels deep",
    "yaml_tag.yaml": "3:16: : YAML tags (!foo) are not supported; quote the value to make it text",
    "yaml_syntax.yaml": "4:1: : YAML syntax error: expected ',' or '}'",
}


def test_every_bad_profile_has_an_expectation():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_profile_is_reported_with_its_position(name):
    path = BAD / name

    result = load_mapping_profile(path)

    assert result.profile is None
    rendered = [str(d) for d in result.errors]
    assert any(line.startswith(f"{path}:{EXPECTED[name]}") for line in rendered), "\n".join(rendered)


def test_all_problems_are_collected_not_just_the_first():
    text = (
        "profile: p\nobject: Lead\nfields: {nme: Title, status: S}\n"
        "values:\n  status:\n    map: {open: O, won: W, lots: L}\n"
    )
    errors = [str(d) for d in load_mapping_profile(text, filename="p.yaml").errors]
    assert errors == [
        "p.yaml:3:10: fields.nme: unknown opportunity field 'nme' (did you mean 'name'?); fields: id, name, "
        "customer, status, stage, amount, currency, close_date, description, registration_number, owner",
        "p.yaml:6:10: values.status.map: no partner value for 'lost'; map every one of: open, won, lost",
        "p.yaml:6:28: values.status.map.lots: 'lots' is not one of our values (did you mean 'lost'?); "
        "expected one of: open, won, lost",
    ]


def test_unwrapping_a_bad_profile_raises_a_422_listing_every_position():
    result = load_mapping_profile("profile: p\nobject: Lead\nfields: {nme: Title}\n", filename="p.yaml")

    with pytest.raises(MappingProfileInvalid) as caught:
        result.unwrap()

    problem = caught.value.to_problem()
    assert problem["status"] == 422
    assert problem["errors"][0]["pointer"] == "p.yaml:3:10"
    assert problem["errors"][0]["detail"].startswith("fields.nme: unknown opportunity field 'nme'")


def test_an_unreadable_file_is_reported_not_raised(tmp_path):
    result = load_mapping_profile(tmp_path / "missing.yaml")

    assert not result.ok
    assert "cannot read file" in result.errors[0].message


@pytest.mark.parametrize("path", sorted(PROFILES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_load(path):
    assert load_mapping_profile(path).ok


def test_json_is_accepted_as_the_same_profile():
    yaml_text = "profile: p\nobject: Lead\nfields:\n  name: Title\n"
    json_text = '{"profile": "p", "object": "Lead", "fields": {"name": "Title"}}'

    assert load_mapping_profile(json_text).unwrap() == load_mapping_profile(yaml_text).unwrap()


def test_the_json_schema_uses_the_names_admins_write():
    schema = profile_json_schema()

    assert {"profile", "object", "fields", "values", "children"} <= set(schema["properties"])
    assert "as" in schema["$defs"]["ChildSpec"]["properties"]
    assert "map" in schema["$defs"]["ValueMapSpec"]["properties"]
