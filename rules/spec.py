"""Pydantic models of a rules file as admins write it (the schema layer; semantics are in `checks`).

Models are strict (no "100" -> 100 coercion) and forbid unknown fields, so every typo is reported.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

OpName = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists"]
HitPolicyName = Literal["first", "priority", "collect"]
KindName = Literal["assignment", "approval", "policy"]
StepMode = Literal["parallel", "all"]
TransferTrigger = Literal["on_approval", "never"]
TransferUpdates = Literal["automatic", "manual"]
PendingApprovalsPolicy = Literal["reroute", "keep"]
UnknownValuesPolicy = Literal["warn", "refuse"]
ApprovedPolicy = Literal["keep_owner", "move_team", "move_owner"]
EventName = Literal[
    "submitted",
    "approved",
    "rejected",
    "info_requested",
    "info_submitted",
    "withdrawn",
    "expiring",
    "expired",
    "extended",
    "extension_requested",
    "extension_rejected",
    "accepted",
    "transferred",
]
LeadField = Literal[
    "customer",
    "primary_product",
    "partner_type",
    "partner_program",
    "primary_partner",
    "registration_type",
    "primary_contact",
    "deal_size",
    "currency",
    "close_date",
    "description",
    "name",
]

RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, frozen=True)


class ConditionSpec(_Spec):
    """Either a comparison (`fact`, `op`, `value`) or exactly one of `all`, `any`, `not`."""

    all_: list[ConditionSpec] | None = Field(default=None, alias="all", min_length=1)
    any_: list[ConditionSpec] | None = Field(default=None, alias="any", min_length=1)
    not_: ConditionSpec | None = Field(default=None, alias="not")
    fact: str | None = None
    op: OpName | None = None
    value: Any = Field(default=None, description="number, string, list for in/not_in, bool for exists")

    @model_validator(mode="after")
    def _one_form(self) -> ConditionSpec:
        combinators = [n for n in ("all", "any", "not") if getattr(self, n + "_") is not None]
        compare: list[str] = [n for n in ("fact", "op", "value") if n in self.model_fields_set]
        if len(combinators) > 1 or (combinators and compare):
            used = ", ".join(combinators + compare)
            raise ValueError(f"a condition is one of all/any/not or a comparison, not several ({used})")
        if not combinators:
            if self.fact is None:
                raise ValueError("a comparison needs 'fact' (or use all/any/not)")
            if self.op is None:
                raise ValueError("a comparison needs 'op'")
        return self


class _RuleSpec(_Spec):
    id: str = Field(pattern=RULE_ID_PATTERN, description="unique id: letters, digits, _ . -")
    description: str | None = None
    priority: int = Field(default=0, ge=0, le=1_000_000, description="used by hit_policy: priority")
    when: ConditionSpec | None = Field(default=None, description="a condition, or 'always' (catch-all)")

    @field_validator("when", mode="before")
    @classmethod
    def _always(cls, value: Any) -> Any:
        if value == "always":
            return None
        if isinstance(value, str):
            raise ValueError(f"'when' is a condition mapping or 'always', not {value!r}")
        return value


class ResourceSpec(_Spec):
    user: str
    role: str


class AssignmentThen(_Spec):
    add_resources: list[ResourceSpec] = Field(default_factory=list)
    add_territories: list[str] = Field(default_factory=list)


class StepSpec(_Spec):
    name: str | None = None
    roles: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    mode: StepMode = "parallel"

    @model_validator(mode="after")
    def _has_approvers(self) -> StepSpec:
        if not self.roles and not self.users:
            raise ValueError("an approval step needs 'roles' and/or 'users'")
        return self


class ApprovalThen(_Spec):
    steps: list[StepSpec] = Field(default_factory=list)


class NotifyTarget(_Spec):
    roles: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)


class ReassignmentThen(_Spec):
    """What a batch reassignment does to registrations in flight (DESIGN.md 2.7)."""

    pending_approvals: PendingApprovalsPolicy | None = Field(
        default=None, description="reroute (default): the open round goes to the new approvers; keep"
    )
    approved: ApprovedPolicy | None = Field(
        default=None,
        description="keep_owner (default): untouched; move_team: teams move, owner stays; move_owner",
    )


class PolicyThen(_Spec):
    expiry_days: int | None = Field(default=None, ge=1, le=3650)
    required_fields: list[LeadField] | None = None
    transfer: TransferTrigger | None = None
    notify: dict[EventName, NotifyTarget] = Field(default_factory=dict)
    block_overlapping_registrations: bool | None = None
    reassignment: ReassignmentThen | None = None
    reassign_on_resubmit: bool | None = None
    max_extensions: int | None = Field(
        default=None, ge=0, le=100, description="extension requests a registration may be granted"
    )
    unknown_values: UnknownValuesPolicy | None = Field(
        default=None,
        description="warn (default): a lead naming a member the territory model does not know is decided "
        "with warnings; refuse: submitting it is refused (422 listing the warnings)",
    )
    transfer_updates: TransferUpdates | None = Field(
        default=None,
        description="automatic: each change of a transferred opportunity is sent to the partner's CRM",
    )


class AssignmentRule(_RuleSpec):
    then: AssignmentThen = Field(default_factory=AssignmentThen)


class ApprovalRule(_RuleSpec):
    then: ApprovalThen = Field(default_factory=ApprovalThen)


class PolicyRule(_RuleSpec):
    then: PolicyThen = Field(default_factory=PolicyThen)


class _FileSpec(_Spec):
    hit_policy: HitPolicyName
    description: str | None = None
    dimensions: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,19}$")]] = Field(
        default_factory=list,
        description="dimensions declared on territory models that this file's conditions test (text facts "
        "named like the dimension)",
    )


class AssignmentFile(_FileSpec):
    """Rule-based assignment: add resources and territories to the lead's teams."""

    kind: Literal["assignment"]
    rules: list[AssignmentRule] = Field(min_length=1)


class ApprovalFile(_FileSpec):
    """Approver selection: serial steps of parallel/all approvers."""

    kind: Literal["approval"]
    fallback_approver: str | None = Field(default=None, description="user key used when no CAM matches")
    rules: list[ApprovalRule] = Field(min_length=1)


class PolicyFile(_FileSpec):
    """Registration policy: expiry, submit requirements, transfer and notification triggers."""

    kind: Literal["policy"]
    rules: list[PolicyRule] = Field(min_length=1)


RulesFile = AssignmentFile | ApprovalFile | PolicyFile
RuleSpec = AssignmentRule | ApprovalRule | PolicyRule
RULE_MODELS: dict[str, type[AssignmentRule] | type[ApprovalRule] | type[PolicyRule]] = {
    "assignment": AssignmentRule,
    "approval": ApprovalRule,
    "policy": PolicyRule,
}
FILE_MODELS: dict[str, type[AssignmentFile] | type[ApprovalFile] | type[PolicyFile]] = {
    "assignment": AssignmentFile,
    "approval": ApprovalFile,
    "policy": PolicyFile,
}


def _patch_when(node: Any) -> None:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and "when" in props:
            when = props["when"]
            variants = when.pop("anyOf", [])
            variants.insert(0, {"const": "always"})
            when["anyOf"] = variants
        for child in node.values():
            _patch_when(child)
    elif isinstance(node, list):
        for child in node:
            _patch_when(child)


def schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a rules file, for editors (YAML language servers)."""
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[RulesFile, Field(discriminator="kind")])
    doc = adapter.json_schema(by_alias=True)
    _patch_when(doc)
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "PRM rules file"
    return doc
