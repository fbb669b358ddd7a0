"""Text files people upload (CSV): decoding with a positioned error (pure)."""

from __future__ import annotations

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
