"""Every YAML document people give the service (rules files, their tests files, mapping profiles) is read
with bounds: too long, too deep, tagged or alias-bombed documents are problems with a position, never an
exception or minutes of work."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import engine, reference
from rules.loader import load_ruleset, parse_yaml
from rules.yaml_limits import MAX_CHARS, MAX_DEPTH, MAX_VALUES
from transfer.profile import load_mapping_profile

HEAD = "kind: policy\nhit_policy: first\n"


def errors(text: str) -> list[str]:
    return [str(d) for d in load_ruleset(text, filename="p.yaml").errors]


def test_a_billion_laughs_is_refused_before_it_expands():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    text = "\n".join(lines) + "\n" + HEAD + "rules: [{id: a, when: always}]\n"  # 10^9 values expanded
    start = time.process_time()
    assert errors(text) == [
        f"p.yaml:5:20: : more than {MAX_VALUES:,} values with aliases (*name) expanded; "
        "write the values out or use fewer aliases"
    ]
    assert time.process_time() - start < 2


def test_aliases_within_the_bound_are_read_and_merge_keys_keep_positions():
    text = (
        HEAD + "base: &base {fact: region, op: eq, value: EMEA}\n"
        "rules:\n  - id: a\n    when: {<<: *base, value: APAC}\n  - id: b\n    when: always\n"
    )
    data, pos, problems = parse_yaml(text, "p.yaml")
    assert problems == []
    assert data["rules"][0]["when"] == {"fact": "region", "op": "eq", "value": "APAC"}
    assert pos.of(("rules", 0, "when", "fact")) == (6, 11)  # merged in: the mapping's own position
    assert pos.of(("rules", 0, "when", "value")) == (6, 30)


def test_a_mapping_made_only_of_merged_keys_takes_its_own_position():
    # ruamel keeps no key positions for a mapping whose every key comes from `<<: *name`
    text = (
        HEAD + "base: &base {fact: region, op: eq, value: EMEA}\nrules:\n  - id: a\n    when: {<<: *base}\n"
    )
    data, pos, problems = parse_yaml(text, "p.yaml")
    assert problems == []
    assert data["rules"][0]["when"] == {"fact": "region", "op": "eq", "value": "EMEA"}
    assert pos.of(("rules", 0, "when", "value")) == (6, 11)


def test_nesting_is_bounded_and_the_deepest_allowed_condition_evaluates():
    # root mapping, rules list, rule mapping, `not` mappings, the condition's mapping: MAX_DEPTH levels
    depth = MAX_DEPTH - 4
    when = "{not: " * depth + "{fact: region, op: eq, value: EMEA}" + "}" * depth
    text = HEAD + f"rules:\n  - id: a\n    when: {when}\n  - id: b\n    when: always\n"
    ruleset = load_ruleset(text).unwrap()
    for region in ("EMEA", "APAC"):
        fired = ("a",) if (region == "EMEA") != (depth % 2 == 1) else ("b",)
        assert reference.evaluate(ruleset, {"region": region}).fired == fired
        assert engine.evaluate(ruleset, {"region": region}).fired == fired

    deeper = HEAD + f"rules:\n  - id: a\n    when: {{not: {when}}}\n"
    assert errors(deeper) == [f"p.yaml:5:{11 + 6 * (depth + 1)}: : nested more than {MAX_DEPTH} levels deep"]


def test_a_document_longer_than_the_limit_is_refused_where_it_passes_the_limit():
    text = HEAD + "rules:\n" + ("  # " + "x" * 95 + "\n") * (MAX_CHARS // 100 + 10)
    [problem] = errors(text)
    line = text.count("\n", 0, MAX_CHARS) + 1
    assert problem.startswith(f"p.yaml:{line}:")
    assert f"longer than {MAX_CHARS:,} characters" in problem


def test_tags_are_refused_in_mapping_profiles_too():
    result = load_mapping_profile("profile: p\nobject: !!python/name:os.system Lead\n", filename="m.yaml")
    assert [str(e) for e in result.errors] == [
        "m.yaml:2:9: : YAML tags (!!python/name:os.system) are not supported; quote the value to make it text"
    ]


YAML_ALPHABET = st.sampled_from(
    [*"[]{}:,-&*!|>'\"#?%@` \n\tax01<.=", "kind: policy\n", "&a ", "*a", "<<: ", "!x "]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_ALPHABET, max_size=60).map("".join))
def test_any_text_is_a_document_or_problems_with_positions_never_an_exception(text):
    data, _, problems = parse_yaml(text, "f.yaml")
    assert (data is None) == bool(problems)
    for problem in problems:
        assert problem.line >= 1 and problem.column >= 1
    load_ruleset(text)
    load_mapping_profile(text)


def test_the_cli_reports_each_bad_corpus_file_with_its_position():
    from pathlib import Path

    from click.testing import CliRunner

    from rules.cli import rules_cli
    from tests.unit.rules.bad_expectations import EXPECTED

    bad = Path(__file__).parent / "bad"
    for name in sorted(n for n in EXPECTED if n.startswith("yaml_")):
        result = CliRunner().invoke(rules_cli, ["check", str(bad / name)])
        assert result.exit_code == 1, (name, result.output)
        assert f"{bad / name}:{EXPECTED[name]}" in result.output, (name, result.output)
