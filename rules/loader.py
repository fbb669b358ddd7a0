"""Load a rules file: position-keeping YAML -> pydantic spec -> semantic checks -> rule AST.

Every problem is reported as ``file:line:column: path: message`` and all of them are collected, not just
the first. YAML is read with ruamel.yaml's round-trip loader, which keeps each node's line and column.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError

from rules import ast
from rules.build import build_ruleset
from rules.checks import RuleContext, check_rules, check_spec
from rules.errors import Diagnostic, RulesetInvalid, Severity
from rules.spec import FILE_MODELS, RULE_MODELS, RulesFile
from rules.yaml_limits import MAX_CHARS, YamlLimitExceeded, bounded_yaml, too_long

PathKey = tuple[str | int, ...]


def format_path(path: Iterable[str | int]) -> str:
    """``("rules", 2, "when", "all", 0, "op")`` -> ``rules[2].when.all[0].op``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    names = sorted(set(candidates))
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:
        close = [n for n in names if len(n) >= 2 and (word.startswith(n) or n.startswith(word))][:1]
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class Positions:
    """1-based (line, column) of every value and mapping key in a document, by path."""

    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """Position of the node at `path` (its key if asked and known), else of its nearest ancestor."""
        p = tuple(path)
        if key and p in self.keys:
            return self.keys[p]
        while p:
            if p in self.values:
                return self.values[p]
            if p in self.keys:
                return self.keys[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


@dataclass(frozen=True)
class LoadResult:
    """What loading a rules file produced: the ruleset if there were no errors, and every diagnostic."""

    ruleset: ast.Ruleset | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.ruleset is not None

    def unwrap(self) -> ast.Ruleset:
        """The ruleset, or `RulesetInvalid` carrying every error."""
        if self.ruleset is None:
            raise RulesetInvalid(self.errors)
        return self.ruleset


class _Unsupported(Exception):
    def __init__(self, path: PathKey, what: str) -> None:
        self.path, self.what = path, what


def _plain(node: Any, path: PathKey, pos: Positions) -> Any:
    """Plain Python data of a round-trip node, recording positions on the way."""
    if isinstance(node, CommentedMap):
        out = {}
        own = node.lc.data or {}  # None when every key is merged in from an alias
        for k, v in node.items():
            if k in own:
                line, col = node.lc.key(k)
                pos.keys[(*path, str(k))] = (line + 1, col + 1)
                vline, vcol = node.lc.value(k)
                pos.values[(*path, str(k))] = (vline + 1, vcol + 1)
            else:  # merged in from an alias (<<: *name): the mapping's own position
                pos.values[(*path, str(k))] = pos.of(path)
            if not isinstance(k, str):
                raise _Unsupported((*path, str(k)), f"key {k!r} must be a string; quote it")
            out[k] = _plain(v, (*path, k), pos)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, v in enumerate(node):
            line, col = node.lc.item(i)
            pos.values[(*path, i)] = (line + 1, col + 1)
            items.append(_plain(v, (*path, i), pos))
        return items
    if node is None or isinstance(node, bool | int | float | str):
        # ruamel's scalar subclasses (ScalarFloat, LiteralScalarString...) become plain values
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        return str(node)
    kind = type(node).__name__
    raise _Unsupported(path, f"unsupported YAML value of type {kind}; quote it to make it a string")


def _model_at(model: Any, loc: Sequence[str | int]) -> Any:
    """The model class (or type) found at `loc` inside `model`, walking fields, lists and dicts."""
    current: Any = model
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return None
    return _unwrap_optional(current)


def _unwrap_optional(tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if arg is not type(None):
                return _unwrap_optional(arg)
    return tp


def _unwrap(tp: Any, part: str | int) -> Any:
    tp = _unwrap_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
        for name, info in tp.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = get_origin(tp)
    if origin is list and isinstance(part, int):
        return get_args(tp)[0]
    if origin is dict:
        return get_args(tp)[1] if part != "[key]" else get_args(tp)[0]
    return None


def _field_names(model: Any) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [info.alias or name for name, info in model.model_fields.items()]
    return []


_LITERAL_WHAT = {
    "op": "operator",
    "hit_policy": "hit policy",
    "kind": "kind",
    "mode": "step mode",
    "transfer": "transfer trigger",
    "transfer_updates": "transfer updates setting",
    "required_fields": "lead field",
    "notify": "event",
}


def validation_diagnostics(
    exc: ValidationError, model: type[BaseModel], filename: str, pos: Positions
) -> list[Diagnostic]:
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"]]
        etype = err["type"]
        is_key = bool(loc) and loc[-1] == "[key]"
        if is_key:
            loc = loc[:-1]
        path = format_path(loc)
        message = err["msg"]
        if etype == "extra_forbidden":
            name = str(loc[-1])
            allowed = _field_names(_model_at(model, loc[:-1]))
            message = f"unknown field '{name}'{did_you_mean(name, allowed)}"
            if allowed:
                message += f"; allowed: {', '.join(allowed)}"
        elif etype == "literal_error":
            expected = _model_at(model, loc) if not is_key else None
            names = [str(a) for a in get_args(expected)] if expected is not None else []
            if is_key:
                names = [str(a) for a in get_args(_model_at(model, [*loc[:-1], "[key]"]))]
            names_in_loc = [str(p) for p in (loc[:-1] if is_key else loc) if isinstance(p, str)]
            field_name = names_in_loc[-1] if names_in_loc else ""
            what = _LITERAL_WHAT.get(field_name, "value")
            bad = str(loc[-1]) if is_key else str(err["input"])
            message = f"unknown {what} '{bad}'{did_you_mean(bad, names)}"
            if names:
                message += f"; expected one of: {', '.join(names)}"
        elif etype == "missing":
            message = f"missing required field '{loc[-1]}'"
        elif etype == "too_short" and loc and loc[-1] == "rules":
            message = "rules must not be empty: add at least one rule (and a catch-all)"
        elif etype == "too_short":
            message = "must not be empty"
        elif etype == "string_pattern_mismatch" and loc and loc[-1] == "id":
            message = f"invalid rule id {err['input']!r}: use letters, digits, '_', '.', '-' (max 80)"
        elif etype == "value_error":
            message = message.removeprefix("Value error, ")
        elif etype in {"string_type", "int_type", "bool_type", "list_type", "dict_type", "model_type"}:
            message = f"{message}, got {type(err['input']).__name__} {_short(err['input'])}"
        line, col = pos.of(loc, key=is_key or etype == "extra_forbidden")
        out.append(Diagnostic(filename, line, col, path, message))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _rules_file_not_a_mapping(doc: Any) -> str:
    return f"a rules file is a mapping, got {type(doc).__name__}"


def parse_yaml(
    text: str,
    filename: str,
    *,
    empty: str = "empty rules file",
    not_a_mapping: Callable[[Any], str] = _rules_file_not_a_mapping,
) -> tuple[Any, Positions, list[Diagnostic]]:
    """A YAML document of one mapping as plain data, with the position of every key and value, or
    the problems as diagnostics (syntax errors, an empty document, something other than a mapping,
    values YAML has but JSON does not). Shared by rules files and transfer mapping profiles, which
    name their own document in the messages."""
    pos = Positions()
    over = too_long(text)
    if over is not None:
        message = f"longer than {MAX_CHARS:,} characters ({len(text):,})"
        return None, pos, [Diagnostic(filename, *over, "", message)]
    try:
        doc = bounded_yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if not isinstance(exc, YamlLimitExceeded):
            problem = f"YAML syntax error: {problem}"
        return None, pos, [Diagnostic(filename, line, col, "", problem)]
    except ReaderError as exc:  # a control character: no mark, only an offset
        offset = max(0, min(int(exc.position), len(text)))
        line, col = text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
        return None, pos, [Diagnostic(filename, line, col, "", f"YAML syntax error: {exc.reason}")]
    if doc is None:
        return None, pos, [Diagnostic(filename, 1, 1, "", empty)]
    if not isinstance(doc, CommentedMap):
        return None, pos, [Diagnostic(filename, 1, 1, "", not_a_mapping(doc))]
    pos.values[()] = (1, 1)
    try:
        data = _plain(doc, (), pos)
    except _Unsupported as exc:
        line, col = pos.of(exc.path)
        return None, pos, [Diagnostic(filename, line, col, format_path(exc.path), exc.what)]
    return data, pos, []


def _check_valid_rules(
    exc: ValidationError,
    data: dict[str, Any],
    kind: str,
    filename: str,
    context: RuleContext | None,
    pos: Positions,
) -> list[Diagnostic]:
    """Semantic checks of the rules that passed the schema, so one typo does not hide other errors."""
    raw_rules = data.get("rules")
    policy = data.get("hit_policy")
    if not isinstance(raw_rules, list) or not isinstance(policy, str):
        return []
    broken = {e["loc"][1] for e in exc.errors() if len(e["loc"]) >= 2 and e["loc"][0] == "rules"}
    model = RULE_MODELS[kind]
    valid = [(i, model.model_validate(r)) for i, r in enumerate(raw_rules) if i not in broken]
    raw_dims = data.get("dimensions")
    dims = [d for d in raw_dims if isinstance(d, str)] if isinstance(raw_dims, list) else []
    return check_rules(valid, policy, context, lambda path, key=False: pos.of(path, key=key), filename, dims)


def load_ruleset(
    source: str | Path, context: RuleContext | None = None, *, filename: str | None = None
) -> LoadResult:
    """Load, validate and compile a rules file.

    `source` is a `Path` to read, or the YAML/JSON text itself. `context` holds the known users,
    territories, roles and dimension members; `None` (or a `None` field) skips those reference checks.

    >>> result = load_ruleset("kind: policy\\nhit_policy: first\\nrules:\\n  - id: all\\n    when: always\\n")
    >>> result.ok, result.ruleset.rules[0].id
    (True, 'all')
    """
    if isinstance(source, Path):
        filename = filename or str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return LoadResult(None, (Diagnostic(filename, 1, 1, "", f"cannot read file: {exc}"),))
    else:
        text = source
    filename = filename or "<string>"
    data, pos, diags = parse_yaml(text, filename)
    if diags:
        return LoadResult(None, tuple(diags))

    kind = data.get("kind")
    model = FILE_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        if "kind" not in data:
            message = "missing required field 'kind' (assignment, approval or policy)"
            line, col = 1, 1
        else:
            message = f"unknown kind {kind!r}{did_you_mean(str(kind), FILE_MODELS)}"
            message += "; expected one of: assignment, approval, policy"
            line, col = pos.of(("kind",))
        return LoadResult(None, (Diagnostic(filename, line, col, "kind", message),))

    try:
        spec: RulesFile = model.model_validate(data)
    except ValidationError as exc:
        diagnostics = validation_diagnostics(exc, model, filename, pos)
        diagnostics += _check_valid_rules(exc, data, str(kind), filename, context, pos)
        return LoadResult(None, tuple(sorted(diagnostics, key=lambda d: (d.line, d.column))))

    diagnostics = check_spec(spec, context, lambda path, key=False: pos.of(path, key=key), filename)
    if any(d.severity is Severity.ERROR for d in diagnostics):
        return LoadResult(None, tuple(diagnostics))

    def position_of(index: int) -> ast.Position:
        line, col = pos.of(("rules", index))
        return ast.Position(filename, line, col)

    return LoadResult(build_ruleset(spec, position_of), tuple(diagnostics))
