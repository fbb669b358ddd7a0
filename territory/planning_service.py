"""What every change of a territory model goes through: find the model, lock it, check that ``If-Match``
names its current version and that it is still a planning model, check the whole tree against the
reference data, and bump the model's version.

A change that would leave an invalid tree is refused with 422 listing every problem; warnings (children
covering more than their parent) come back with the result.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from common.concurrency import check_if_match
from common.errors import FieldProblem, InvalidTransition, NotFound, ValidationFailed
from territory import repository as repo
from territory import schemas as s
from territory.dimensions import Dimension, MemberHierarchy
from territory.errors import TreeInvalid, did_you_mean, hint
from territory.lifecycle import EDITABLE
from territory.models import TerritoryModel
from territory.team import UserDirectory, team_member_problem
from territory.tree import TeamMember, TerritoryDef, TreeWarning, check_tree

ENTITY = "territory_model"


def warning_out(w: TreeWarning) -> s.TreeWarningOut:
    return s.TreeWarningOut(
        code=w.code,
        territory=w.territory,
        parent=w.parent,
        dimension=w.dimension,
        member=w.member,
        message=w.message,
    )


def find_model(session: Session, model_id: int, *, lock: bool = False) -> TerritoryModel:
    model = session.get(TerritoryModel, model_id, with_for_update=lock or None)
    if model is None:
        raise NotFound(f"territory model {model_id} not found")
    return model


def editable_model(session: Session, model_id: int, if_match: str | None) -> TerritoryModel:
    """Lock the model, check it is a planning model and that ``If-Match`` names its current version."""
    model = find_model(session, model_id, lock=True)
    check_if_match(if_match, model.id, model.version)
    if model.status not in EDITABLE:
        raise InvalidTransition(
            f"territory model {model.id} is {model.status}; only planning models can be changed "
            "(clone it into a new planning model)"
        )
    return model


def touch_model(model: TerritoryModel) -> None:
    """Make the flush bump the model's version: a change to any territory is a change of the model."""
    flag_modified(model, "name")


def _team_problems(defs: Sequence[TerritoryDef], users: UserDirectory) -> list[FieldProblem]:
    problems = []
    for d in defs:
        seen: set[TeamMember] = set()
        for i, m in enumerate(d.team):
            pointer = f"/territories/{d.key}/team/{i}"
            if m in seen:
                problems.append(FieldProblem(pointer, f"{m.user!r} is listed twice as {m.role!r}"))
                continue
            seen.add(m)
            why = team_member_problem(m.user, m.role, users)
            if why:
                problems.append(FieldProblem(pointer, f"territory {d.key!r}: {why}"))
    return problems


def _partner_problems(defs: Sequence[TerritoryDef], partners: MemberHierarchy) -> list[FieldProblem]:
    return [
        FieldProblem(
            f"/territories/{d.key}/partner",
            f"territory {d.key!r} names unknown partner {d.partner!r}{hint(did_you_mean(d.partner, list(partners)))}",
        )
        for d in defs
        if d.partner is not None and d.partner not in partners
    ]


def _overlap_problems(defs: Sequence[TerritoryDef]) -> list[FieldProblem]:
    return [
        FieldProblem(
            f"/territories/{d.key}/coverage/{dim}",
            f"territory {d.key!r} both includes and excludes {dim} {m!r}",
        )
        for d in defs
        for dim, cov in d.coverage.items()
        for m in sorted(cov.include & cov.exclude)
    ]


def check_defs(
    session: Session, model: TerritoryModel, defs: Sequence[TerritoryDef], *, allow_empty: bool = True
) -> list[TreeWarning]:
    """Check a whole model against the reference data and the model's own dimension members; raise
    ``ValidationFailed`` listing every problem."""
    if not defs and allow_empty:
        return []
    dims = repo.load_dimensions(session, model=model)
    problems = _team_problems(defs, repo.internal_users(session))
    problems += _partner_problems(defs, dims[Dimension.PARTNER])
    problems += _overlap_problems(defs)
    warnings: list[TreeWarning] = []
    try:
        warnings = list(check_tree(defs, dims).warnings)
    except TreeInvalid as exc:
        problems = repo.tree_problems(exc) + problems
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the territory tree", problems)
    return warnings
