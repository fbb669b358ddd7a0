"""Ruleset versions: upload (validate, smoke-verify, store as an immutable draft), activate, roll back,
list, read, run a tests file against a version, and the active rulesets the decision code evaluates.

Each function owns its transaction and writes one audit row per change. The smoke evaluation runs in a
subprocess and never inside a transaction (it may take seconds; DESIGN.md 2.1 rule 5).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import Conflict, FieldProblem, NotFound, RulesetInvalid
from common.pagination import decode_cursor, encode_cursor
from common.principal import Principal
from rules import ast, repository, testcases
from rules import schemas as s
from rules.errors import Diagnostic, Severity, VerificationFailed
from rules.evaluator import get_evaluator
from rules.loader import load_ruleset
from rules.models import RulesetStatus, StoredRuleset
from rules.samples import smoke_facts

#: Seconds the subprocess may take to load and smoke-evaluate a new version.
VERIFY_TIMEOUT_S = 30.0
ENTITY = "ruleset"


# --- presentation -------------------------------------------------------------------------------------


def diagnostic_out(d: Diagnostic) -> s.DiagnosticOut:
    return s.DiagnosticOut(
        file=d.file,
        line=d.line,
        column=d.column,
        path=d.path,
        message=d.message,
        severity="warning" if d.severity is Severity.WARNING else "error",
        text=str(d),
    )


def _invalid(diagnostics: Sequence[Diagnostic], what: str = "rules file") -> RulesetInvalid:
    errors = [d for d in diagnostics if d.severity is Severity.ERROR] or list(diagnostics)
    stored = "; nothing was stored" if what == "rules file" else ""
    return RulesetInvalid(
        f"The {what} has {len(errors)} error(s){stored}",
        [FieldProblem(f"{d.file}:{d.line}:{d.column}", f"{d.path}: {d.message}") for d in errors],
    )


def summary_out(row: StoredRuleset) -> s.RulesetSummary:
    return s.RulesetSummary(
        id=row.id,
        kind=row.kind,
        name=row.name,
        version_hash=row.version_hash,
        status=row.status,
        rule_count=len(row.ast.get("rules", ())),
        created_at=row.created_at,
        created_by=row.created_by,
        activated_at=row.activated_at,
        version=row.version,
    )


def ruleset_out(row: StoredRuleset, warnings: Sequence[Diagnostic] = ()) -> s.RulesetOut:
    return s.RulesetOut(
        **summary_out(row).model_dump(),
        source=row.source,
        ast=row.ast,
        warnings=[diagnostic_out(d) for d in warnings],
    )


def _state(row: StoredRuleset) -> dict[str, Any]:
    return {"kind": row.kind, "version_hash": row.version_hash, "status": str(row.status)}


# --- validation ---------------------------------------------------------------------------------------


def _compile(
    session: Session, source: str, name: str, kind: str | None
) -> tuple[ast.Ruleset, tuple[Diagnostic, ...]]:
    """Schema + semantic checks against the names the database knows; `RulesetInvalid` lists every error."""
    result = load_ruleset(source, repository.rule_context(session), filename=name)
    if result.ruleset is None:
        raise _invalid(result.diagnostics)
    ruleset = result.ruleset
    if kind is not None and ruleset.kind.value != kind:
        raise RulesetInvalid(
            f"The file is a {ruleset.kind.value} ruleset, not {kind}; nothing was stored",
            [FieldProblem(f"{name}:1:1", f"kind: expected '{kind}', the file says '{ruleset.kind.value}'")],
        )
    return ruleset, result.warnings


def _verify(ruleset: ast.Ruleset, name: str, timeout_s: float) -> dict[str, Any]:
    from rules import engine  # imports durable: only where a ruleset is verified

    try:
        return engine.verify_in_subprocess(ruleset, smoke_facts(ruleset), timeout_s=timeout_s)
    except VerificationFailed as exc:
        raise RulesetInvalid(
            "The ruleset failed its smoke evaluation with durable_rules; nothing was stored",
            [FieldProblem(f"{name}:1:1", f": {exc}")],
        ) from None


def validate_ruleset(
    db: Database, data: s.RulesetUpload, *, verify_timeout_s: float = VERIFY_TIMEOUT_S
) -> s.ValidationReport:
    """Run every check an upload runs (smoke evaluation included), storing nothing."""
    with db.transaction() as session:
        ruleset, warnings = _compile(session, data.source, data.name, data.kind)
        existing = repository.by_hash(session, ruleset.kind.value, ruleset.version)
        existing_id = existing.id if existing else None
    report = _verify(ruleset, data.name, verify_timeout_s)
    return s.ValidationReport(
        kind=ruleset.kind.value,
        version_hash=ruleset.version,
        rule_count=len(ruleset.rules),
        warnings=[diagnostic_out(d) for d in warnings],
        existing_id=existing_id,
        verification=report,
    )


# --- upload -------------------------------------------------------------------------------------------


def upload_ruleset(
    db: Database,
    principal: Principal | None,
    data: s.RulesetUpload,
    *,
    verify_timeout_s: float = VERIFY_TIMEOUT_S,
) -> tuple[s.RulesetOut, bool]:
    """Validate, smoke-verify and store a rules file as a draft version; returns (version, created).

    The same content (same content hash) for the same kind returns the stored version with
    ``created=False``, whatever its name, comments or layout. Invalid files raise `RulesetInvalid` with
    every error and its position; nothing is stored then.
    """
    with db.transaction() as session:
        ruleset, warnings = _compile(session, data.source, data.name, data.kind)
        existing = repository.by_hash(session, ruleset.kind.value, ruleset.version)
        if existing is not None:
            return ruleset_out(existing, warnings), False
    _verify(ruleset, data.name, verify_timeout_s)
    try:
        with db.transaction() as session:
            row = StoredRuleset(
                kind=ruleset.kind.value,
                name=data.name,
                version_hash=ruleset.version,
                status=RulesetStatus.DRAFT,
                source=data.source,
                ast=ast.ruleset_to_json(ruleset),
                created_by=principal.user_id if principal else None,
            )
            session.add(row)
            session.flush()
            audit.record(
                session,
                principal,
                ENTITY,
                row.id,
                "uploaded",
                after=_state(row),
                details={"name": row.name, "rules": len(ruleset.rules)},
            )
            return ruleset_out(row, warnings), True
    except IntegrityError:
        # Someone stored the same content between our check and our insert: theirs is ours.
        with db.transaction() as session:
            existing = repository.by_hash(session, ruleset.kind.value, ruleset.version)
            if existing is None:
                raise
            return ruleset_out(existing, warnings), False


# --- reading ------------------------------------------------------------------------------------------


def _row(session: Session, ruleset_id: int, *, for_update: bool = False) -> StoredRuleset:
    row = repository.get(session, ruleset_id, for_update=for_update)
    if row is None:
        raise NotFound(f"ruleset {ruleset_id} not found")
    return row


def get_ruleset(db: Database, principal: Principal | None, ruleset_id: int) -> s.RulesetOut:
    """One stored version: its source, AST and status."""
    with db.transaction() as session:
        return ruleset_out(_row(session, ruleset_id))


def list_rulesets(db: Database, principal: Principal | None, query: s.RulesetListQuery) -> s.RulesetPage:
    """Stored versions, oldest first, optionally of one kind and/or status."""
    after = decode_cursor(query.cursor)
    with db.transaction() as session:
        rows = repository.page(session, kind=query.kind, status=query.status, after=after, limit=query.limit)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return s.RulesetPage(
        items=[summary_out(r) for r in rows],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )


# --- activation and rollback --------------------------------------------------------------------------


def _activate(session: Session, principal: Principal | None, row: StoredRuleset, action: str) -> None:
    """Archive the kind's active version (if another) and make `row` active, in the caller's transaction."""
    before = _state(row)
    previous = repository.active(session, row.kind, for_update=True)
    if previous is not None and previous.id != row.id:
        previous_before = _state(previous)
        previous.status = RulesetStatus.ARCHIVED
        session.flush()  # the partial unique index allows one active per kind at any moment
        audit.record(
            session,
            principal,
            ENTITY,
            previous.id,
            "archived",
            before=previous_before,
            after=_state(previous),
            details={"replaced_by": row.id},
        )
    row.status = RulesetStatus.ACTIVE
    row.activated_at = utcnow()
    session.flush()
    audit.record(
        session,
        principal,
        ENTITY,
        row.id,
        action,
        before=before,
        after=_state(row),
        details={"previous_active": previous.id if previous is not None else None},
    )


def _committed(db: Database, run: Callable[[], s.RulesetOut]) -> s.RulesetOut:
    """Run an activation; a concurrent one on the same kind becomes 409, not 500."""
    try:
        out = run()
    except (StaleDataError, IntegrityError):
        raise Conflict(
            "Another activation of this kind happened at the same time; read again and retry"
        ) from None
    _refresh_active(db)
    return out


def activate_ruleset(
    db: Database,
    principal: Principal | None,
    ruleset_id: int,
    if_match: str | None,
    *,
    require_if_match: bool = True,
) -> s.RulesetOut:
    """Make a stored version the active one of its kind; the previous active one is archived.

    Both changes and their audit rows commit together. Activating the active version changes nothing.
    `If-Match` must name the version's current ETag (the CLI, an operator's direct command, may skip it).
    """

    def run() -> s.RulesetOut:
        with db.transaction() as session:
            row = _row(session, ruleset_id, for_update=True)
            if require_if_match or if_match is not None:
                check_if_match(if_match, row.id, row.version)
            if row.status != RulesetStatus.ACTIVE:
                _activate(session, principal, row, "activated")
            return ruleset_out(row)

    return _committed(db, run)


def rollback_ruleset(
    db: Database, principal: Principal | None, kind: str, target_id: int | None = None
) -> s.RulesetOut:
    """Re-activate an archived version of `kind`: `target_id`, or the one that was active most recently.

    The current active version is archived (it stays stored, unchanged, and can be re-activated).
    """

    def run() -> s.RulesetOut:
        with db.transaction() as session:
            if target_id is None:
                row = repository.last_archived(session, kind)
                if row is None:
                    raise Conflict(f"no earlier {kind} ruleset to roll back to")
            else:
                row = _row(session, target_id, for_update=True)
                if row.kind != kind:
                    raise Conflict(f"ruleset {target_id} is a {row.kind} ruleset, not {kind}")
                if row.status != RulesetStatus.ARCHIVED:
                    raise Conflict(
                        f"ruleset {target_id} is {row.status}; roll back re-activates an archived version"
                        + (" (activate a draft instead)" if row.status == RulesetStatus.DRAFT else "")
                    )
            _activate(session, principal, row, "rolled_back")
            return ruleset_out(row)

    return _committed(db, run)


# --- tests files --------------------------------------------------------------------------------------


def run_ruleset_tests(
    db: Database, principal: Principal | None, ruleset_id: int, data: s.RulesetTestsRun
) -> s.TestReportOut:
    """Run a ``*.tests.yaml`` file's given/expect cases against one stored version.

    The configured evaluator runs them (durable_rules unless ``PRM_RULES_ENGINE=python``); the version
    passed its smoke evaluation when it was stored, so loading it in this process is safe.
    """
    with db.transaction() as session:
        stored = ast.ruleset_from_json(_row(session, ruleset_id).ast)
    try:
        results = testcases.run_tests_text(stored, data.source, filename=data.name)
    except testcases.TestsInvalid as exc:
        raise _invalid(exc.diagnostics, "tests file") from None
    cases = [
        s.CaseResultOut(name=r.name, passed=r.passed, fired=list(r.fired), failures=list(r.failures))
        for r in results
    ]
    passed = sum(c.passed for c in cases)
    return s.TestReportOut(
        ruleset_id=ruleset_id,
        version_hash=stored.version,
        passed=passed,
        failed=len(cases) - passed,
        cases=cases,
    )


# --- the active rulesets, for the decision code -------------------------------------------------------

_CACHE_LOCK = threading.Lock()
#: (kind, version_hash) -> compiled AST; versions are immutable, so entries never go stale.
_AST_CACHE: dict[tuple[str, str], ast.Ruleset] = {}
#: Database URL -> active version per kind, as this process last saw it; a change reloads the durable host.
_SEEN_ACTIVE: dict[str, dict[str, str]] = {}


def active_rulesets(db: Database) -> dict[ast.Kind, ast.Ruleset]:
    """The active ruleset of every kind that has one, as ASTs ready for an evaluator.

    Each call asks the database which versions are active (one small query), so an activation is seen
    by the next call in every process; ASTs are cached per (kind, version hash). When the active set
    changes, this process's durable_rules host is reloaded, so old versions do not pile up in it.
    """
    with db.transaction() as session:
        return active_rulesets_in(session, db.url)


def active_rulesets_in(session: Session, url: str) -> dict[ast.Kind, ast.Ruleset]:
    """``active_rulesets`` inside the caller's transaction (``url``: the database's, ``Database.url``)."""
    return rulesets_of_versions(session, url, repository.active_versions(session))


def rulesets_of_versions(
    session: Session, url: str, versions: Sequence[tuple[str, str, int]]
) -> dict[ast.Kind, ast.Ruleset]:
    """The rulesets ``versions`` (kind, version hash, id) names as active, read in this transaction
    (``repository.active_versions`` or a statement of the caller's); only versions this process has not
    compiled yet are read."""
    missing = [(kind, h, id_) for kind, h, id_ in versions if (kind, h) not in _AST_CACHE]
    loaded = {(kind, h): ast.ruleset_from_json(_row(session, id_).ast) for kind, h, id_ in missing}
    with _CACHE_LOCK:
        _AST_CACHE.update(loaded)
        current = {kind: h for kind, h, _ in versions}
        seen = _SEEN_ACTIVE.get(url)
        changed = seen is not None and seen != current
        _SEEN_ACTIVE[url] = current
        result = {ast.Kind(kind): _AST_CACHE[(kind, h)] for kind, h in current.items()}
    engine = sys.modules.get("rules.engine")
    if changed and engine is not None:  # durable not imported in this process: no host to reload
        engine.reload_host()
    return result


def rulesets_named(session: Session, versions: Mapping[str, str]) -> dict[ast.Kind, ast.Ruleset]:
    """The rulesets of the given versions (kind -> version hash), whatever their status now (a stored
    decision's, to explain it again); versions this process has not compiled yet are read. A version
    no longer stored is left out."""
    missing = [(kind, h) for kind, h in versions.items() if (kind, h) not in _AST_CACHE]
    loaded: dict[tuple[str, str], ast.Ruleset] = {}
    for kind, h in missing:
        row = repository.get_version(session, kind, h)
        if row is not None:
            loaded[(kind, h)] = ast.ruleset_from_json(row.ast)
    with _CACHE_LOCK:
        _AST_CACHE.update(loaded)
        return {
            ast.Kind(kind): _AST_CACHE[(kind, h)] for kind, h in versions.items() if (kind, h) in _AST_CACHE
        }


def warm_up(db: Database) -> None:
    """Load the active rulesets into this process's evaluator now (a new server worker), so the first
    decision does not pay for it."""
    rulesets = active_rulesets(db)
    if get_evaluator().name == "durable":
        from rules.engine import preload

        for ruleset in rulesets.values():
            preload(ruleset)


def _refresh_active(db: Database) -> None:
    """After an activation in this process, refresh what `active_rulesets` saw (and the host with it)."""
    active_rulesets(db)


def clear_cache() -> None:
    """Forget cached ASTs and active versions (tests; a process that wants a clean start)."""
    with _CACHE_LOCK:
        _AST_CACHE.clear()
        _SEEN_ACTIVE.clear()
