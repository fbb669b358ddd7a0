"""Request bodies are parsed strictly: what Flask would accept silently (or answer with a 500) is refused
with a ValidationFailed that says what and where."""

from __future__ import annotations

import pytest

from common.errors import ValidationFailed
from common.jsonbody import parse_strict

MAX_DEPTH = 32


def refusal(raw: bytes | str, max_depth: int = MAX_DEPTH) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_strict(raw, max_depth)
    assert caught.value.status == 422
    assert caught.value.errors, "a refusal must say what is wrong"
    return caught.value


def messages(exc: ValidationFailed) -> str:
    return " ".join([exc.detail, *(e.message for e in exc.errors)])


def test_ordinary_documents_are_accepted() -> None:
    raw = '{"name": "Acme", "count": 3, "ratio": 0.25, "tags": ["a", "b"], "nested": {"ok": true, "x": null}}'
    assert parse_strict(raw, MAX_DEPTH) == {
        "name": "Acme",
        "count": 3,
        "ratio": 0.25,
        "tags": ["a", "b"],
        "nested": {"ok": True, "x": None},
    }
    assert parse_strict(b"[1, 2.5e10, -0.0]", MAX_DEPTH) == [1, 2.5e10, -0.0]
    assert parse_strict('"caf\u00e9 \\u00e9"', MAX_DEPTH) == "café é"


def test_nesting_exactly_at_the_limit_is_accepted() -> None:
    raw = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_strict(raw, MAX_DEPTH) is not None


def test_duplicate_keys_are_refused_instead_of_last_one_winning() -> None:
    exc = refusal('{"status": "approved", "name": "x", "status": "rejected"}')
    assert "duplicate key 'status'" in messages(exc)


def test_duplicate_keys_in_a_nested_object_are_refused() -> None:
    assert "duplicate key 'a'" in messages(refusal('{"outer": [{"a": 1, "a": 2}]}'))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_are_refused(constant: str) -> None:
    exc = refusal(f'{{"amount": {constant}}}')
    assert constant in messages(exc)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5e999"])
def test_numbers_that_would_become_infinite_are_refused(number: str) -> None:
    exc = refusal(f'{{"amount": {number}}}')
    assert "out of range" in messages(exc)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    depth = MAX_DEPTH + 1
    exc = refusal("[" * depth + "]" * depth)
    assert f"more than {MAX_DEPTH} levels" in messages(exc)


def test_deep_objects_are_refused_like_deep_arrays() -> None:
    depth = MAX_DEPTH + 1
    exc = refusal('{"a":' * depth + "1" + "}" * depth)
    assert f"more than {MAX_DEPTH} levels" in messages(exc)


def test_a_hundred_thousand_deep_array_is_refused_without_recursion_error() -> None:
    # Unclosed and closed: both must be a ValidationFailed, never a RecursionError reaching the caller.
    refusal("[" * 100_000)
    exc = refusal("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in exc.detail


def test_malformed_json_reports_line_and_column() -> None:
    exc = refusal('{\n  "name": "x",\n  "count": ,\n}')
    assert exc.detail == "Malformed JSON"
    assert "line 3 column 12" in messages(exc)


@pytest.mark.parametrize("raw", ["", "   ", "{", "{'single': 1}", '{"a": 1} trailing', "[1,]", "tru"])
def test_malformed_documents_are_refused(raw: str) -> None:
    exc = refusal(raw)
    assert "line 1 column" in messages(exc)


def test_invalid_utf8_is_refused() -> None:
    exc = refusal(b'{"name": "caf\xe9"}')
    assert exc.detail == "Body is not UTF-8"


def test_a_refusal_is_a_problem_with_status_422() -> None:
    problem = refusal('{"a": NaN}').to_problem()
    assert problem["status"] == 422
    assert problem["type"].endswith("validation-failed")
    assert problem["errors"] and all("pointer" in e and "detail" in e for e in problem["errors"])
