"""Request and response models of the rulesets API (pydantic; pure).

Inputs forbid unknown fields. A rules file travels as a JSON string field (``source``), so the YAML's
comments and layout are stored exactly as the admin wrote them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from common.fields import NON_BLANK, YAML_TEXT
from common.ids import Id

KindName = Literal["assignment", "approval", "policy"]
StatusName = Literal["draft", "active", "archived"]
#: A rules file's name, also the file name its diagnostics are reported against.
RulesetName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NON_BLANK
]
#: The YAML (or JSON) text of a rules or tests file; the request body limit bounds it too.
SourceText = Annotated[str, StringConstraints(max_length=1_000_000), YAML_TEXT]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdPath(Input):
    id: Id


class RulesetUpload(Input):
    """A rules file to validate and store (as a draft version)."""

    name: RulesetName = Field(description="a name for this version; diagnostics use it as the file name")
    source: SourceText = Field(description="the rules file's YAML (or JSON) text")
    kind: KindName | None = Field(None, description="if given, the file's `kind` must be this one")


class RulesetListQuery(Input):
    kind: KindName | None = None
    status: StatusName | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)


class RulesetTestsRun(Input):
    """A ``*.tests.yaml`` file: given/expect cases to run against one stored version."""

    source: SourceText = Field(description="the tests file's YAML text")
    name: RulesetName = Field("tests.yaml", description="file name used in diagnostics")


class RulesetRollback(Input):
    kind: KindName
    target_id: Id | None = Field(
        None,
        description="version to re-activate; default: the archived version that was active most recently",
    )


class DiagnosticOut(BaseModel):
    """One problem in a file, as ``file:line:column: path: message``."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Literal["error", "warning"]
    text: str = Field(description="the whole diagnostic as one line")


class RulesetSummary(BaseModel):
    id: int
    kind: KindName
    name: str
    version_hash: str
    status: StatusName
    rule_count: int
    created_at: datetime
    created_by: int | None
    activated_at: datetime | None
    version: int = Field(description="record version (the ETag); not the content hash")


class RulesetOut(RulesetSummary):
    source: str
    ast: dict[str, Any]
    warnings: list[DiagnosticOut] = Field(
        default_factory=list, description="warnings found when the version was uploaded"
    )


class RulesetPage(BaseModel):
    items: list[RulesetSummary]
    next_cursor: str | None = None


class ValidationReport(BaseModel):
    """A rules file that passed every check, without being stored."""

    valid: Literal[True] = True
    kind: KindName
    version_hash: str
    rule_count: int
    warnings: list[DiagnosticOut]
    existing_id: int | None = Field(None, description="the stored version with the same content, if any")
    verification: dict[str, Any] = Field(description="the durable_rules smoke evaluation's report")


class CaseResultOut(BaseModel):
    name: str
    passed: bool
    fired: list[str] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list, description="what differed from `expect`")


class TestReportOut(BaseModel):
    ruleset_id: int
    version_hash: str
    passed: int
    failed: int
    cases: list[CaseResultOut]
