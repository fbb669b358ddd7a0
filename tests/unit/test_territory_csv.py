"""Territory CSV parsing (pure): every problem as file:row:column, nothing returned unless all is well."""

from __future__ import annotations

import pytest

from common.errors import ValidationFailed
from territory.csv_import import ModelFiles, parse_model
from territory.dimensions import Dimension, MemberHierarchy
from territory.geography import geography_parents
from territory.tree import Coverage, TeamMember

DIMS = {
    Dimension.GEOGRAPHY: MemberHierarchy(geography_parents(), name="geography"),
    Dimension.PRODUCT: MemberHierarchy({"security": None, "firewalls": "security"}, name="product"),
    Dimension.PARTNER: MemberHierarchy({"northwind": None}, name="partner"),
}
USERS = {"cam-jp": frozenset({"channel_account_manager"}), "mgr-apac": frozenset({"channel_sales_manager"})}


def _problems(files: ModelFiles) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        parse_model(files, DIMS, USERS)
    return {p.pointer: p.message for p in info.value.errors}


def test_valid_files_give_definitions():
    defs = parse_model(
        ModelFiles(
            "key,parent_key,name,type,partner\nWW,,World,global,\nJP,WW,Japan,country,northwind\n",
            "territory_key,dimension,member,mode\nJP,geography,JP,include\nJP,product,firewalls,EXCLUDE\n",
            "territory_key,user,role\nJP,cam-jp,channel_account_manager\n",
        ),
        DIMS,
        USERS,
    )
    jp = defs[1]
    assert (jp.key, jp.parent_key, jp.type, jp.partner) == ("JP", "WW", "country", "northwind")
    assert jp.coverage == {
        Dimension.GEOGRAPHY: Coverage.of(["JP"]),
        Dimension.PRODUCT: Coverage.of(exclude=["firewalls"]),
    }
    assert jp.team == (TeamMember("cam-jp", "channel_account_manager"),)
    assert defs[0].type == "global"


def test_type_defaults_to_channel_and_blank_lines_are_skipped():
    defs = parse_model(ModelFiles("key,parent_key,name\n\nWW,,World\n"), DIMS, USERS)
    assert defs[0].type == "channel"


def test_structure_problems_point_at_rows():
    problems = _problems(ModelFiles("key,parent_key,name\nWW,,World\nA,B,a\nB,A,b\nC,,c\nbad key,,x\nD,WW\n"))
    assert "cycle A -> B -> A" in problems["territories.csv:3:2"]
    assert "cycle" in problems["territories.csv:4:2"]
    assert "a second root" in problems["territories.csv:5:2"]
    assert "is not valid" in problems["territories.csv:6:1"]
    assert "expected 3 cells, found 2" in problems["territories.csv:7:3"]


def test_every_file_is_checked_in_one_pass():
    problems = _problems(
        ModelFiles(
            "key,parent_key,name,partner\nWW,,World,northwnd\n",
            "territory_key,dimension,member,mode\nWW,product,firewall,include\nWW,product,securty,exclude\n",
            "territory_key,user,role\nWW,mgr-apac,channel_account_manager\nWW,cam-jp,cam\n",
        )
    )
    assert problems == {
        "territories.csv:2:4": "partner: unknown partner 'northwnd'; did you mean 'northwind'?",
        "coverage.csv:2:3": "member: unknown product member 'firewall'; did you mean 'firewalls'?",
        "coverage.csv:3:3": "member: unknown product member 'securty'; did you mean 'security'?",
        "members.csv:2:3": "role: user 'mgr-apac' does not hold the role 'channel_account_manager' "
        "(holds channel_sales_manager)",
        "members.csv:3:3": "role: unknown team role 'cam' (one of channel_account_manager, "
        "channel_sales_manager, channel_sales_director, sales_rep)",
    }


def test_a_missing_column_is_reported_alone_and_nothing_else_is_checked():
    members = (
        "territory_key,user,role\nWW,cam-jp,channel_account_manager\nWW,cam-jp,channel_account_manager\n"
    )
    problems = _problems(
        ModelFiles("key,name\nWW,World\n", "territory_key,dimension,member\nWW,geography,JP\n", members)
    )
    assert problems == {"coverage.csv:1:4": "missing required column 'mode'"}


def test_a_repeated_row_is_reported_on_the_later_row():
    members = (
        "territory_key,user,role\nWW,cam-jp,channel_account_manager\nWW,cam-jp,channel_account_manager\n"
    )
    problems = _problems(
        ModelFiles(
            "key,name\nWW,World\n", "territory_key,dimension,member,mode\nWW,geography,JP,include\n", members
        )
    )
    assert list(problems) == ["members.csv:3:2"]
    assert "already on row 2" in problems["members.csv:3:2"]


def test_header_only_file_is_an_error():
    assert _problems(ModelFiles("key,parent_key,name\n")) == {
        "territories.csv:2:1": "no territories: the file has a header but no rows"
    }
