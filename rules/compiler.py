"""Compile rule AST conditions to durable_rules JSON expressions (pure: durable is not imported).

durable_rules has no `not` inside an expression and answers false for any comparison on a missing
field, so negations are pushed down to the comparisons (``not (x op v)`` becomes ``x missing or
x complement(op) v``; facts are type-checked before evaluation).

durable 2.0.28 keeps at most 32 entries in a rule's expression sequence (error 113,
ERR_EXPRESSION_LIMIT_EXCEEDED): measured, a rule fails once it nests more than 14 `$and`/`$or`
groups below its top `$and`, however many plain comparisons it has. So a condition is turned into
*pieces*, each within `MAX_GROUPS`: nested groups of the same kind are flattened, and an over-budget
condition is split by distributing its disjunctions (``A and (B or C)`` -> ``A and B``, ``A and C``).
Each piece becomes one durable rule with the same rule id and `pri`; a rule fires if any piece does.
A condition that needs more than `MAX_PIECES` pieces is rejected by the checks as too complex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rules import ast

#: Nested `$and`/`$or` groups allowed per durable rule (durable fails past 14; keep a margin).
MAX_GROUPS = 12
#: durable rules one AST rule may become.
MAX_PIECES = 32
#: Distinct `fact == value` tests per durable ruleset: measured, durable hangs on evaluation once one
#: ruleset holds about 512 (its alpha hash buckets are 512 long), so shards stay well below.
MAX_EQUALITIES = 400
#: Members per `$or` group of an `in` set (DESIGN.md 2.1).
SET_GROUP = 128
#: Every message carries this marker; the catch-all and `when: always` rules test it.
MARK = "prm_eval"

_COMPLEMENT = {
    ast.Op.EQ: ast.Op.NE,
    ast.Op.NE: ast.Op.EQ,
    ast.Op.LT: ast.Op.GTE,
    ast.Op.GTE: ast.Op.LT,
    ast.Op.LTE: ast.Op.GT,
    ast.Op.GT: ast.Op.LTE,
    ast.Op.IN: ast.Op.NOT_IN,
    ast.Op.NOT_IN: ast.Op.IN,
}
_DURABLE_OP = {ast.Op.NE: "$neq", ast.Op.LT: "$lt", ast.Op.LTE: "$lte", ast.Op.GT: "$gt", ast.Op.GTE: "$gte"}


class TooComplex(ValueError):
    """The condition cannot be split into at most `MAX_PIECES` durable rules."""


# -- an intermediate form: leaves, `in` sets, and/or groups -----------------------------------------


@dataclass(frozen=True)
class _Leaf:
    expr: dict[str, Any]


@dataclass(frozen=True)
class _Group:
    """`$and` (conjunction) or `$or` of children; `is_set` marks an `in` set, never flattened."""

    conjunction: bool
    children: tuple[_Node, ...]
    is_set: bool = False


_Node = _Leaf | _Group
_TRUE = _Leaf({MARK: 1})
_FALSE = _Leaf({MARK: 0})


def _set_node(fact: str, values: Sequence[ast.Scalar], *, negated: bool) -> _Node:
    unique = list(dict.fromkeys(values))
    leaves = tuple(_Leaf({"$neq": {fact: v}} if negated else {fact: v}) for v in unique)
    if negated:  # not_in: a flat conjunction of `$neq`, which costs no group
        return _Group(True, leaves)
    groups = tuple(_Group(False, leaves[i : i + SET_GROUP], True) for i in range(0, len(leaves), SET_GROUP))
    return groups[0] if len(groups) == 1 else _Group(False, groups, True)


def _positive(fact: str, op: ast.Op, value: ast.Value) -> _Node:
    if op is ast.Op.EQ:
        return _Leaf({fact: value})
    if op in (ast.Op.IN, ast.Op.NOT_IN):
        assert isinstance(value, tuple)
        return _set_node(fact, value, negated=op is ast.Op.NOT_IN)
    return _Leaf({_DURABLE_OP[op]: {fact: value}})


def _nnf(cond: ast.Condition, negate: bool) -> _Node:
    if isinstance(cond, ast.Always):
        return _FALSE if negate else _TRUE
    if isinstance(cond, ast.Not):
        return _nnf(cond.item, not negate)
    if isinstance(cond, ast.AllOf | ast.AnyOf):
        conjunction = isinstance(cond, ast.AllOf) != negate
        return _make(conjunction, [_nnf(c, negate) for c in cond.items])
    if cond.op is ast.Op.EXISTS:
        present = bool(cond.value) != negate
        return _Leaf({"$ex" if present else "$nex": {cond.fact: 1}})
    if not negate:
        return _positive(cond.fact, cond.op, cond.value)
    missing = _Leaf({"$nex": {cond.fact: 1}})
    return _make(False, [missing, _positive(cond.fact, _COMPLEMENT[cond.op], cond.value)])


def _make(conjunction: bool, children: Sequence[_Node]) -> _Node:
    """A group with same-kind (non-set) children flattened into it; one child stands alone."""
    flat: list[_Node] = []
    for child in children:
        if isinstance(child, _Group) and child.conjunction == conjunction and not child.is_set:
            flat.extend(child.children)
        else:
            flat.append(child)
    return flat[0] if len(flat) == 1 else _Group(conjunction, tuple(flat))


def _groups(node: _Node) -> int:
    """Nested groups this node adds below a rule's top `$and`.

    An `in` set of several groups counts as over budget, so it is always split: each piece then
    carries one group of at most `SET_GROUP` values, and a big set spreads over several shards instead
    of crossing `MAX_EQUALITIES` in one.
    """
    if isinstance(node, _Leaf):
        return 0
    if node.is_set and len(node.children) > 1 and isinstance(node.children[0], _Group):
        return MAX_GROUPS + 1
    return 1 + sum(_groups(c) for c in node.children)


def _cost(piece: _Node) -> int:
    # the piece sits in the rule's top `$and` with the marker: a conjunction merges into it
    if isinstance(piece, _Group) and piece.conjunction and not piece.is_set:
        return sum(_groups(c) for c in piece.children)
    return _groups(piece)


def _split(node: _Node, budget: int) -> list[_Node]:
    """Disjoint-enough pieces whose disjunction is `node`, each within `MAX_GROUPS`."""
    if _cost(node) <= MAX_GROUPS:
        return [node]
    if isinstance(node, _Group) and not node.conjunction:
        pieces: list[_Node] = []
        for child in node.children:
            pieces.extend(_split(child, budget - len(pieces)))
            if len(pieces) > budget:
                raise TooComplex("condition too complex")
        return pieces
    assert isinstance(node, _Group)
    # a conjunction over budget: distribute its costliest disjunction (a set splits by its groups)
    index = max(range(len(node.children)), key=lambda i: _groups(node.children[i]))
    chosen = node.children[index]
    if not isinstance(chosen, _Group) or chosen.conjunction:
        raise TooComplex("condition too complex")
    rest = node.children[:index] + node.children[index + 1 :]
    pieces = []
    for alternative in chosen.children:
        pieces.extend(_split(_make(True, [*rest, alternative]), budget - len(pieces)))
        if len(pieces) > budget:
            raise TooComplex("condition too complex")
    return pieces


def _to_json(node: _Node) -> dict[str, Any]:
    if isinstance(node, _Leaf):
        return node.expr
    return {"$and" if node.conjunction else "$or": [_to_json(c) for c in node.children]}


def compile_condition(cond: ast.Condition) -> list[dict[str, Any]]:
    """The durable `m` expressions (one per piece) whose disjunction is `cond`.

    Raises `TooComplex` if that needs more than `MAX_PIECES` pieces.
    """
    pieces = _split(_nnf(cond, False), MAX_PIECES)
    if len(pieces) > MAX_PIECES:
        raise TooComplex("condition too complex")
    out = []
    for piece in pieces:
        parts = list(piece.children) if isinstance(piece, _Group) and piece.conjunction else [piece]
        if piece == _TRUE:
            out.append(_TRUE.expr)
        else:
            out.append({"$and": [_TRUE.expr, *(_to_json(p) for p in parts)]})
    return out


def equalities(expr: Any) -> set[tuple[str, str]]:
    """Distinct `fact == value` tests in a compiled durable expression (the marker excluded)."""
    found: set[tuple[str, str]] = set()
    if isinstance(expr, list):
        for item in expr:
            found |= equalities(item)
    elif isinstance(expr, dict):
        for key, value in expr.items():
            if key in ("$and", "$or"):
                found |= equalities(value)
            elif not key.startswith("$") and key != MARK:
                found.add((key, repr(value)))
    return found


def complexity_problem(cond: ast.Condition) -> str | None:
    """Why durable_rules cannot run this condition, or None if it can."""
    try:
        pieces = compile_condition(cond)
        if any(len(equalities(p)) > MAX_EQUALITIES for p in pieces):
            raise TooComplex("too many values")
    except TooComplex:
        return (
            f"condition too complex for the rules engine (more than {MAX_PIECES} parts after "
            f"splitting nested any/not groups); split it into several rules"
        )
    return None
