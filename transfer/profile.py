"""Load a mapping profile: position-keeping YAML -> pydantic schema -> checks against our fields -> profile.

Like rules files (rules/loader.py, whose position helpers this module shares), every problem is collected
and reported as ``file:line:column: path: message``, with "did you mean" for unknown keys, our field names
and our choice values. The result is an immutable `MappingProfile` that `transfer.mapping` applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from rules.errors import Diagnostic
from rules.loader import PathKey, did_you_mean, format_path, parse_yaml, validation_diagnostics
from transfer.canonical import CHILDREN, OPPORTUNITY, CanonicalRecord
from transfer.errors import MappingProfileInvalid
from transfer.mapping_schema import ProfileSpec, RecordSpec, ValueMapSpec

PROFILES_DIR = Path(__file__).parent / "profiles"
# The top-level key of a transfer document that the protocol keeps for itself: the sender's pairs of child
# records, {kind: {sender's id: receiver's id}} (transfer.repository). No profile may map a field to it.
CORRELATIONS_KEY = "correlations"
# Beside it: the pairs of child records deleted on either side (tombstones), the same way round; the
# receiver deletes its copy and never takes the child for new again.
DELETIONS_KEY = "deletions"


@dataclass(frozen=True)
class ValueMap:
    """One field's value translation; `from_partner` is the full inverse, ambiguities resolved by `back`.

    A value the map does not list is refused, unless `keep_unlisted` (it travels unchanged both ways) or,
    coming from the partner, `default` names ours for it.
    """

    to_partner: Mapping[str, str]
    from_partner: Mapping[str, str]
    default: str | None = None
    keep_unlisted: bool = False


@dataclass(frozen=True)
class RecordMapping:
    """How one record kind travels: our field -> their field, and value maps by our field name."""

    record: CanonicalRecord
    fields: Mapping[str, str]
    values: Mapping[str, ValueMap]


@dataclass(frozen=True)
class ChildMapping:
    """A kind of child record that travels: under which key of the partner's document, and how."""

    kind: str
    key: str
    object_name: str | None
    mapping: RecordMapping


@dataclass(frozen=True)
class MappingProfile:
    """A loaded, checked mapping profile (see `transfer.mapping_schema` for the file format)."""

    name: str
    object_name: str
    opportunity: RecordMapping
    children: Mapping[str, ChildMapping]
    description: str | None = None
    source: str = "<string>"


@dataclass(frozen=True)
class ProfileLoad:
    """What loading a profile produced: the profile if there were no errors, and every error."""

    profile: MappingProfile | None
    errors: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.profile is not None

    def unwrap(self) -> MappingProfile:
        """The profile, or `MappingProfileInvalid` carrying every error."""
        if self.profile is None:
            raise MappingProfileInvalid(self.errors)
        return self.profile


def load_mapping_profile(source: str | Path, *, filename: str | None = None) -> ProfileLoad:
    """Load and check a mapping profile from a `Path` or from YAML/JSON text.

    >>> text = "profile: p\\nobject: Lead\\nfields: {name: Title, nme: X}\\n"
    >>> [str(e) for e in load_mapping_profile(text, filename="p.yaml").errors]  # doctest: +ELLIPSIS
    ["p.yaml:3:23: fields.nme: unknown opportunity field 'nme' (did you mean 'name'?); ..."]
    """
    if isinstance(source, Path):
        filename = filename or str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return ProfileLoad(None, (Diagnostic(filename, 1, 1, "", f"cannot read file: {exc}"),))
    else:
        text = source
    filename = filename or "<string>"
    data, pos, problems = parse_yaml(
        text, filename, empty="empty mapping profile", not_a_mapping=_not_a_mapping
    )
    if problems:
        return ProfileLoad(None, tuple(problems))
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as exc:
        errors = validation_diagnostics(exc, ProfileSpec, filename, pos)
        return ProfileLoad(None, tuple(sorted(errors, key=lambda d: (d.line, d.column))))

    def at(path: PathKey, message: str, *, key: bool = False) -> Diagnostic:
        line, col = pos.of(path, key=key)
        return Diagnostic(filename, line, col, format_path(path), message)

    checker = _Checker(at)
    opportunity = checker.record(spec, OPPORTUNITY, ())
    children = checker.children(spec)
    if checker.errors:
        return ProfileLoad(None, tuple(sorted(checker.errors, key=lambda d: (d.line, d.column))))
    assert opportunity is not None
    profile = MappingProfile(
        name=spec.profile,
        object_name=spec.object,
        opportunity=opportunity,
        children=MappingProxyType(children),
        description=spec.description,
        source=filename,
    )
    return ProfileLoad(profile, ())


def bundled_profile(name: str) -> MappingProfile:
    """One of the example profiles shipped in ``transfer/profiles`` (``brand_owner``, ``partner_lead``)."""
    return load_mapping_profile(PROFILES_DIR / f"{name}.yaml", filename=f"{name}.yaml").unwrap()


class _Checker:
    """The checks the schema cannot express; collects errors and builds the mappings that pass."""

    def __init__(self, at: Callable[..., Diagnostic]) -> None:
        self.at = at
        self.errors: list[Diagnostic] = []

    def error(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.errors.append(self.at(path, message, key=key))

    def children(self, spec: ProfileSpec) -> dict[str, ChildMapping]:
        out: dict[str, ChildMapping] = {}
        taken: dict[str, PathKey] = {theirs: ("fields", ours) for ours, theirs in spec.fields.items()}
        for theirs, field_path in taken.items():
            if theirs in (CORRELATIONS_KEY, DELETIONS_KEY):
                self.error(field_path, _reserved())
        for kind, child in spec.children.items():
            path: PathKey = ("children", kind)
            if child.as_ in (CORRELATIONS_KEY, DELETIONS_KEY):
                self.error((*path, "as"), _reserved())
            record = CHILDREN.get(kind)
            if record is None:
                self.error(path, f"unknown child records '{kind}'{_hint(kind, CHILDREN)}", key=True)
                continue
            if child.as_ in taken:
                where = format_path(taken[child.as_])
                self.error((*path, "as"), f"'{child.as_}' is already the partner's name of {where}")
            taken[child.as_] = path
            mapping = self.record(child, record, path)
            if mapping is not None:
                out[kind] = ChildMapping(kind, child.as_, child.object, mapping)
        return out

    def record(self, spec: RecordSpec, record: CanonicalRecord, path: PathKey) -> RecordMapping | None:
        before = len(self.errors)
        seen: dict[str, str] = {}
        for ours, theirs in spec.fields.items():
            if record.field(ours) is None:
                self.error((*path, "fields", ours), _unknown_field(record, ours), key=True)
            elif theirs in seen:
                self.error(
                    (*path, "fields", ours),
                    f"'{theirs}' is already the partner's name of '{seen[theirs]}'; "
                    "two of our fields cannot share one of theirs",
                )
            seen.setdefault(theirs, ours)
        values: dict[str, ValueMap] = {}
        for name, value_spec in spec.values.items():
            vpath: PathKey = (*path, "values", name)
            field = record.field(name)
            if field is None:
                self.error(vpath, _unknown_field(record, name), key=True)
            elif not field.maps_values:
                self.error(
                    vpath,
                    f"value maps translate text and choice fields; '{name}' is a {field.kind}",
                    key=True,
                )
            elif name not in spec.fields:
                self.error(
                    vpath, f"'{name}' has a value map but is not in 'fields', so it never travels", key=True
                )
            else:
                value_map = self.value_map(value_spec, field.choices, vpath)
                if value_map is not None:
                    values[name] = value_map
        if len(self.errors) > before:
            return None
        return RecordMapping(record, MappingProxyType(dict(spec.fields)), MappingProxyType(values))

    def value_map(self, spec: ValueMapSpec, choices: tuple[str, ...], path: PathKey) -> ValueMap | None:
        before = len(self.errors)
        if choices:
            for ours in spec.map_:
                if ours not in choices:
                    self.error((*path, "map", ours), _unknown_choice(ours, choices), key=True)
            missing = [c for c in choices if c not in spec.map_]
            if missing:
                self.error(
                    (*path, "map"),
                    f"no partner value for {_quoted(missing)}; map every one of: {', '.join(choices)}",
                )
        owners: dict[str, list[str]] = {}
        for ours, theirs in spec.map_.items():
            owners.setdefault(theirs, []).append(ours)
        for theirs, ours_list in owners.items():
            if len(ours_list) > 1 and theirs not in spec.back:
                self.error(
                    (*path, "map", ours_list[1]),
                    f"{_quoted(ours_list)} {'both' if len(ours_list) == 2 else 'all'} map to '{theirs}', "
                    f"so '{theirs}' cannot be mapped back; "
                    f"add back: {{{theirs}: {ours_list[0]}}} to say which one it means",
                )
        for theirs, ours in spec.back.items():
            if theirs not in owners:
                self.error(
                    (*path, "back", theirs),
                    f"'{theirs}' is not a partner value of this map{_hint(theirs, owners)}",
                    key=True,
                )
            elif ours not in owners[theirs]:
                self.error(
                    (*path, "back", theirs),
                    f"'{theirs}' can only come back as one of the values mapped to it: {', '.join(owners[theirs])}",
                )
        if spec.default is not None and choices and spec.default not in choices:
            self.error((*path, "default"), _unknown_choice(spec.default, choices))
        if spec.default is not None and spec.unlisted == "keep":
            self.error(
                (*path, "default"),
                "'default' and 'unlisted: keep' exclude each other: an unlisted value of theirs either "
                "comes back unchanged or as the default",
                key=True,
            )
        if len(self.errors) > before:
            return None
        inverse = {theirs: ours_list[0] for theirs, ours_list in owners.items()}
        inverse.update(spec.back)
        return ValueMap(
            MappingProxyType(dict(spec.map_)),
            MappingProxyType(inverse),
            spec.default,
            spec.unlisted == "keep",
        )


def _reserved() -> str:
    return (
        f"'{CORRELATIONS_KEY}' and '{DELETIONS_KEY}' are the protocol's own keys of a document (the pairs "
        "of child records' ids, and of deleted ones); "
        "name the field differently"
    )


def _unknown_field(record: CanonicalRecord, name: str) -> str:
    fields = record.field_names
    return f"unknown {record.name} field '{name}'{did_you_mean(name, fields)}; fields: {', '.join(fields)}"


def _unknown_choice(value: str, choices: tuple[str, ...]) -> str:
    return f"'{value}' is not one of our values{did_you_mean(value, choices)}; expected one of: {', '.join(choices)}"


def _hint(word: str, candidates: Any) -> str:
    return did_you_mean(word, [str(c) for c in candidates])


def _quoted(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _not_a_mapping(doc: Any) -> str:
    kind = "a list" if isinstance(doc, list) else f"a {type(doc).__name__}"
    return f"a mapping profile is a mapping of keys, got {kind}"
