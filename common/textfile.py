"""Text files people upload (CSV): decoding with a positioned error, the file parts of a multipart form
(pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from common.errors import FieldProblem, ValidationFailed


def utf8_problem(raw: bytes, exc: UnicodeDecodeError, name: str) -> FieldProblem:
    """Where in ``raw`` the bytes stop being UTF-8, as ``name:row:column`` (row and column counted in
    characters, 1-based, as an editor shows them).

    >>> raw = "key,name\\nC-1,Café\\n".encode("latin-1")
    >>> try:
    ...     raw.decode("utf-8")
    ... except UnicodeDecodeError as exc:
    ...     print(utf8_problem(raw, exc, "customers.csv").as_dict())
    {'pointer': 'customers.csv:2:8', 'detail': 'not UTF-8 text (byte 0xe9 at offset 16); save the file as CSV UTF-8'}
    """
    start = exc.start
    line_start = raw.rfind(b"\n", 0, start) + 1
    row = raw.count(b"\n", 0, start) + 1
    column = len(raw[line_start:start].decode("utf-8", errors="replace")) + 1
    return FieldProblem(
        f"{name}:{row}:{column}",
        f"not UTF-8 text (byte 0x{raw[start]:02x} at offset {start}); save the file as CSV UTF-8",
    )


def decode_utf8(raw: bytes, name: str) -> str:
    """``raw`` as text; ``ValidationFailed`` naming the row and column of the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"{name} is not UTF-8 text", [utf8_problem(raw, exc, name)]) from None


class Upload(Protocol):
    """A file part of a multipart form (Werkzeug's ``FileStorage``)."""

    filename: str | None

    def read(self) -> bytes: ...


def uploaded_texts(
    files: Mapping[str, Upload], required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, tuple[str, str]]:
    """Each file part present, as ``part -> (text, file name)``; the name is the one uploaded (else
    ``<part>.csv``) and positions problems in it. Every problem is reported at once: a required part
    missing, a part that is not UTF-8 (row and column), a NUL character (row and column).

    >>> from io import BytesIO
    >>> class Part(BytesIO):
    ...     filename = "t.csv"
    >>> uploaded_texts({"territories": Part(b"key\\nWW\\n")}, ["territories"], ["members"])
    {'territories': ('key\\nWW\\n', 't.csv')}
    >>> uploaded_texts({}, ["territories"])
    Traceback (most recent call last):
    common.errors.ValidationFailed: 1 problem(s) in the uploaded files
    """
    problems: list[FieldProblem] = []
    texts: dict[str, tuple[str, str]] = {}
    for part in (*required, *optional):
        upload = files.get(part)
        if upload is None:
            if part in required:
                problems.append(FieldProblem(f"/{part}", "a file part is required"))
            continue
        name = (upload.filename or f"{part}.csv")[:200]
        raw = upload.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(utf8_problem(raw, exc, name))
            continue
        if "\x00" in text:
            at = text.index("\x00")
            row, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
            problems.append(FieldProblem(f"{name}:{row}:{column}", "NUL character"))
            continue
        texts[part] = (text, name)
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the uploaded files", problems)
    return texts
