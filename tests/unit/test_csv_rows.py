"""CSV imports report every bad row at once, each as ``file:row:column`` (row 1 is the header), so a
user can fix the whole file in one go."""

from __future__ import annotations

import pytest

from common.errors import ValidationFailed
from directory.csv_import import check_hierarchy, check_product_levels, parse_rows
from directory.enums import ProductLevel
from directory.schemas import CustomerCreate, ProductCreate

FILE = "accounts.csv"


def problems_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    """pointer -> message of every problem reported."""
    found = {e.pointer: e.message for e in exc.value.errors}
    assert len(found) == len(exc.value.errors), "two problems at the same position"
    return found


def csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_a_good_file_gives_every_row_with_its_row_number() -> None:
    text = csv(
        "key,name,parent_key,country,region,industry,size",
        "ACME,Acme Corp,,US,AMER,retail,enterprise",
        "",
        "ACME-DE,Acme Germany,ACME,DE,EMEA,,large",
    )
    parsed = parse_rows(FILE, text, CustomerCreate)
    assert [(n, r.key, r.parent_key) for n, r in parsed.rows] == [(2, "ACME", None), (4, "ACME-DE", "ACME")]
    assert parsed.rows[1][1].industry is None  # empty cell means "not given"


def test_columns_may_come_in_any_order_and_be_quoted() -> None:
    text = csv('"country","name","key"', 'JP,"Tokyo, Ltd",T1')
    parsed = parse_rows(FILE, text, CustomerCreate)
    assert parsed.rows[0][1].name == "Tokyo, Ltd"


def test_an_empty_file_is_reported_on_the_header_row() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_rows(FILE, "", CustomerCreate)
    assert list(problems_of(exc)) == [f"{FILE}:1:1"]


def test_header_problems_are_all_reported_on_row_one() -> None:
    text = csv("key,nmae,country,key,size", "A,x,US,A,small")
    with pytest.raises(ValidationFailed) as exc:
        parse_rows(FILE, text, CustomerCreate)
    found = problems_of(exc)
    assert set(found) == {f"{FILE}:1:2", f"{FILE}:1:4", f"{FILE}:1:6"}
    assert "unknown column 'nmae'" in found[f"{FILE}:1:2"]
    assert "'key' appears twice" in found[f"{FILE}:1:4"]
    assert "missing required column 'name'" in found[f"{FILE}:1:6"]


def test_every_bad_row_is_reported_with_its_row_and_column() -> None:
    text = csv(
        "key,name,parent_key,country,region,industry,size",
        "GOOD,Good Corp,,US,,,",  # row 2: fine
        "BAD1,Bad Country,,usa,,,",  # row 3: country
        "BAD2,Too Few,US",  # row 4: three cells, seven expected
        "BAD3,Bad Size,,US,,,gigantic",  # row 5: size
        "GOOD,Again,,US,,,",  # row 6: duplicate key
        "bad key!,,,US,,,",  # row 7: key pattern and missing name
        "OK2,Too Many,,US,,,,extra",  # row 8: eight cells
    )
    with pytest.raises(ValidationFailed) as exc:
        parse_rows(FILE, text, CustomerCreate)
    found = problems_of(exc)
    assert set(found) == {
        f"{FILE}:3:4",
        f"{FILE}:4:4",
        f"{FILE}:5:7",
        f"{FILE}:6:1",
        f"{FILE}:7:1",
        f"{FILE}:7:2",
        f"{FILE}:8:8",
    }
    assert found[f"{FILE}:3:4"].startswith("country:")
    assert "expected 7 cells, found 3" in found[f"{FILE}:4:4"]
    assert found[f"{FILE}:5:7"].startswith("size:")
    assert "already on row 2" in found[f"{FILE}:6:1"]
    assert found[f"{FILE}:7:2"].startswith("name:")
    assert "expected 7 cells, found 8" in found[f"{FILE}:8:8"]
    assert exc.value.detail == f"7 problem(s) in {FILE}"


def test_unknown_parents_and_cycles_are_reported_on_the_parent_column() -> None:
    text = csv(
        "key,name,country,parent_key",
        "ROOT,Root,US,",
        "ORPHAN,Orphan,US,NOWHERE",
        "A,A,US,B",
        "B,B,US,A",
        "SELF,Self,US,SELF",
        "UNDER-STORED,Under stored,US,STORED",
    )
    parsed = parse_rows(FILE, text, CustomerCreate)
    with pytest.raises(ValidationFailed) as exc:
        check_hierarchy(FILE, parsed, {"STORED": None}, parent_column=4)
    found = problems_of(exc)
    assert set(found) == {f"{FILE}:3:4", f"{FILE}:4:4", f"{FILE}:5:4", f"{FILE}:6:4"}
    assert "unknown key 'NOWHERE'" in found[f"{FILE}:3:4"]
    assert "'A' would be its own ancestor" in found[f"{FILE}:4:4"]
    assert "'B' would be its own ancestor" in found[f"{FILE}:5:4"]
    assert "'SELF' would be its own ancestor" in found[f"{FILE}:6:4"]


def test_a_row_hanging_below_a_cycle_is_not_blamed_for_it() -> None:
    text = csv("key,name,country,parent_key", "LEAF,Leaf,US,A", "A,A,US,B", "B,B,US,A")
    parsed = parse_rows(FILE, text, CustomerCreate)
    with pytest.raises(ValidationFailed) as exc:
        check_hierarchy(FILE, parsed, {}, parent_column=4)
    assert sorted(problems_of(exc)) == [f"{FILE}:3:4", f"{FILE}:4:4"]


def test_a_cycle_through_stored_records_is_found() -> None:
    # Stored: OLD-CHILD sits under OLD-PARENT; the file moves OLD-PARENT under OLD-CHILD.
    text = csv("key,name,country,parent_key", "OLD-PARENT,Parent,US,OLD-CHILD")
    parsed = parse_rows(FILE, text, CustomerCreate)
    with pytest.raises(ValidationFailed) as exc:
        check_hierarchy(FILE, parsed, {"OLD-PARENT": None, "OLD-CHILD": "OLD-PARENT"}, parent_column=4)
    assert list(problems_of(exc)) == [f"{FILE}:2:4"]


def test_a_sound_hierarchy_passes() -> None:
    text = csv("key,name,country,parent_key", "CHILD,Child,US,PARENT", "PARENT,Parent,US,STORED")
    parsed = parse_rows(FILE, text, CustomerCreate)
    check_hierarchy(FILE, parsed, {"STORED": None}, parent_column=4)


def test_product_level_rules_are_reported_for_every_row() -> None:
    text = csv(
        "key,name,level,parent_key",
        "net,Networking,group,",  # fine
        "switches,Switches,subgroup,net",  # fine
        "sw-1,SW 1,item,switches",  # fine
        "lonely,Lonely,subgroup,",  # row 5: a subgroup needs a group
        "deep,Deep,subgroup,switches",  # row 6: subgroup under subgroup
        "grp,Group,group,net",  # row 7: a group has no parent
        "under-item,Under item,item,sw-1",  # row 8: item under item
        "under-stored,Under stored,item,stored-item",  # row 9: item under a stored item
        "badlevel,Bad,category,",  # row 10: level not known
    )
    with pytest.raises(ValidationFailed) as exc:
        parse_rows("catalog.csv", text, ProductCreate)
    assert list(problems_of(exc)) == ["catalog.csv:10:3"]

    parsed = parse_rows("catalog.csv", text.replace("badlevel,Bad,category,\n", ""), ProductCreate)
    with pytest.raises(ValidationFailed) as exc:
        check_product_levels("catalog.csv", parsed, {"stored-item": ProductLevel.ITEM}, parent_column=4)
    found = problems_of(exc)
    assert set(found) == {f"catalog.csv:{row}:4" for row in (5, 6, 7, 8, 9)}
    assert "a subgroup needs a parent (group)" in found["catalog.csv:5:4"]
    assert "a subgroup cannot sit under a subgroup" in found["catalog.csv:6:4"]
    assert "a group cannot sit under a group" in found["catalog.csv:7:4"]
    assert "item cannot sit under" in found["catalog.csv:8:4"]
    assert "item cannot sit under" in found["catalog.csv:9:4"]


def test_a_file_saved_with_a_byte_order_mark_is_read() -> None:
    # Spreadsheet programs write "CSV UTF-8" with a BOM; the first column must still be recognised.
    parsed = parse_rows(FILE, "\ufeff" + csv("key,name,country", "ACME,Acme,US"), CustomerCreate)
    assert [r.key for _, r in parsed.rows] == ["ACME"]
