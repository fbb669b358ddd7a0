"""Request and response models of the territory API (pydantic; pure).

Inputs forbid unknown fields. Every change inside a model (territories, coverage, team, import) is
guarded by the *model's* ETag: the model is the unit of concurrency, so two admins editing different
territories of one planning model still see each other's changes before they overwrite anything.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from common.fields import NON_BLANK, WHITE_SPACE
from common.ids import Id
from territory.models import ModelStatus
from territory.team import TeamRole

TerritoryKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
#: No white space; U+0085 named because ECMA-262 ``\s`` (JSON Schema's) leaves it out, unlike ours.
MemberKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=rf"^[^{WHITE_SPACE}]+$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NON_BLANK]
#: A dimension's name: a built-in one (customer, program, product, geography, partner) or one declared
#: on the model.
DimensionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,19}$")]
TerritoryType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
MAX_MEMBERS = 10_000
MAX_CSV_CHARS = 20_000_000


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- paths and queries --------------------------------------------------------------------------------


class ModelPath(Input):
    id: Id


class TerritoryPath(Input):
    id: Id
    key: TerritoryKey


class ModelListQuery(Input):
    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    status: ModelStatus | None = None


class TerritoryListQuery(Input):
    limit: int = Field(100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None


class TreeFormat(StrEnum):
    JSON = "json"
    MERMAID = "mermaid"
    DOT = "dot"
    TEXT = "text"
    HTML = "html"


class TreeQuery(Input):
    format: TreeFormat = Field(
        TreeFormat.JSON, description="json (default), mermaid, dot, text (terminal tree) or html"
    )
    root: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] | None = Field(
        None, description="show only the subtree under this territory (default: the whole tree)"
    )
    depth: int | None = Field(
        None, ge=0, le=100, description="show at most this many levels below the root shown (default: all)"
    )


# --- models -------------------------------------------------------------------------------------------


class ModelCreate(Input):
    """A new planning model: empty, a clone of the active model, or a clone of any other model."""

    name: Name
    clone_active: StrictBool = Field(False, description="copy the active model's territories")
    clone_from_id: Id | None = Field(None, description="copy this model instead")

    @model_validator(mode="after")
    def _one_source(self) -> ModelCreate:
        if self.clone_active and self.clone_from_id is not None:
            raise ValueError("give clone_active or clone_from_id, not both")
        return self


class TreeWarningOut(BaseModel):
    code: str
    territory: str
    parent: str
    dimension: str
    member: str
    message: str


class ModelOut(BaseModel):
    id: int
    name: str
    status: ModelStatus
    cloned_from_id: int | None
    created_at: datetime
    activated_at: datetime | None
    archived_at: datetime | None
    territory_count: int
    version: int
    warnings: list[TreeWarningOut] = Field(
        default_factory=list,
        description="legal but suspicious coverage (children covering more than parents)",
    )


class ModelPage(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None = None


# --- territories --------------------------------------------------------------------------------------


class CoverageIn(Input):
    include: list[MemberKey] = Field(default_factory=list, max_length=MAX_MEMBERS)
    exclude: list[MemberKey] = Field(default_factory=list, max_length=MAX_MEMBERS)


class TeamMemberIn(Input):
    user: MemberKey = Field(description="the user's key")
    role: TeamRole


class TerritoryCreate(Input):
    key: TerritoryKey
    parent_key: TerritoryKey | None = Field(None, description="null only for the root")
    name: Name
    type: TerritoryType = "channel"
    partner: MemberKey | None = Field(
        None, description="key of the partner organization this territory is for"
    )
    coverage: dict[DimensionName, CoverageIn] = Field(
        default_factory=dict, description="per dimension; a dimension left out is unrestricted"
    )
    team: list[TeamMemberIn] = Field(default_factory=list, max_length=1000)


class TerritoryUpdate(Input):
    parent_key: TerritoryKey | None = None
    name: Name | None = None
    type: TerritoryType | None = None
    partner: MemberKey | None = None


class CoverageSet(Input):
    """The territory's whole coverage; dimensions left out become unrestricted."""

    coverage: dict[DimensionName, CoverageIn]


class TeamSet(Input):
    """The territory's whole team."""

    team: list[TeamMemberIn] = Field(max_length=1000)


class CoverageOut(BaseModel):
    include: list[str]
    exclude: list[str]


class TeamMemberOut(BaseModel):
    user: str
    role: str


class TerritoryOut(BaseModel):
    key: str
    parent_key: str | None
    name: str
    type: str
    partner: str | None
    coverage: dict[str, CoverageOut]
    team: list[TeamMemberOut]


class TerritoryPage(BaseModel):
    items: list[TerritoryOut]
    next_cursor: str | None = None


class TerritoryChanged(BaseModel):
    """The territory after a change, the model's new version (its ETag) and the tree's warnings."""

    territory: TerritoryOut | None
    model_version: int
    warnings: list[TreeWarningOut]


# --- import -------------------------------------------------------------------------------------------


CsvText = Annotated[str, StringConstraints(max_length=MAX_CSV_CHARS)]


class ModelImport(Input):
    """Three CSV files as strings; they replace the planning model's whole content."""

    territories: CsvText = Field(description="key,parent_key,name,type[,partner]")
    coverage: CsvText = Field("territory_key,dimension,member,mode\n", description="mode: include|exclude")
    members: CsvText = Field("territory_key,user,role\n", description="user key and team role")


class ModelImportReport(BaseModel):
    model_id: int
    territories: int
    coverage_rows: int
    members: int
    model_version: int
    warnings: list[TreeWarningOut]


# --- tree view ----------------------------------------------------------------------------------------


class CamOut(BaseModel):
    user: str
    territory: str = Field(description="the territory holding the role (itself, or the nearest ancestor)")
    inherited: bool


class TreeNodeOut(BaseModel):
    key: str
    name: str
    type: str
    partner: str | None
    depth: int
    coverage: dict[str, CoverageOut]
    team: list[TeamMemberOut]
    cam: CamOut | None
    lead_count: int
    children: list[TreeNodeOut]


_TEXT = {"schema": {"type": "string"}}


class TreeOut(BaseModel):
    # ?format=mermaid|text, dot and html answer text, documented next to the JSON (territory/api.py)
    model_config = ConfigDict(
        openapi_extra={"content": {"text/plain": _TEXT, "text/vnd.graphviz": _TEXT, "text/html": _TEXT}}  # type: ignore[typeddict-unknown-key]
    )

    model: ModelOut
    root: TreeNodeOut | None = Field(description="null when the model has no territories")


# --- dimensions and their members ---------------------------------------------------------------------

#: A path's dimension name: lenient, so that an unknown name answers 404 rather than 422.
DimensionKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
#: The lead fact feeding a declared dimension (a lead or customer field, e.g. ``customer_industry``).
FactName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class DimensionPath(Input):
    id: Id
    key: DimensionKey


class DimensionCreate(Input):
    """A dimension declared on a planning model, beside the built-in ones."""

    name: DimensionName = Field(description="lowercase letters, digits, '_'; not a built-in dimension")
    source: FactName | None = Field(
        None,
        description="the lead fact that feeds it when the facts do not name the dimension itself (a lead "
        "or customer field such as customer_industry, customer_size, registration_type); default: the name",
    )
    description: Annotated[str, StringConstraints(max_length=200)] | None = None


class DimensionOut(BaseModel):
    name: str
    built_in: bool
    source: str = Field(description="the lead fact feeding the dimension")
    description: str | None
    members: int = Field(description="members known on this model (built-in ones included)")
    imported_members: int = Field(description="members the model's admins imported (or moved)")


class DimensionList(BaseModel):
    items: list[DimensionOut]
    model_version: int


class DimensionChanged(BaseModel):
    dimension: DimensionOut
    model_version: int


class MembersImport(Input):
    """A member file; it replaces the members imported for this dimension on the planning model."""

    members: CsvText = Field(
        description="key,parent,name: a member, its parent (an existing member or one of the file's; empty "
        "for a top-level member) and its name. On geography a row naming a country moves it to another "
        "region (a member under WORLD)"
    )
    filename: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        "members.csv", description="used in the positions of problems (file:row:column)"
    )


class MembersImportReport(BaseModel):
    model_id: int
    dimension: str
    members: int = Field(description="rows imported")
    moved: int = Field(description="rows that moved an existing member (a country to another region)")
    model_version: int


class MemberQuery(Input):
    parent: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="only the direct children of this member"
    )
    q: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="part of the key or the name (case-insensitive)"
    )
    limit: int = Field(100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None


class MemberOut(BaseModel):
    key: str
    parent: str | None
    name: str | None
    depth: int
    imported: bool = Field(description="imported (or moved) by the model's admins")


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None
