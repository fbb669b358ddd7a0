"""Field annotations whose JSON schema says what their validation enforces (pure; pydantic only).

The OpenAPI document is generated from the pydantic models, and pydantic's schema leaves out what it
does before checking: text is stripped before ``minLength``, so ``"   "`` fails although it is long
enough, and a decimal may come as text of any shape. A client (or Swagger UI, or a fuzzer) reading the
document must be told; these annotations add the missing keywords.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

#: White space as the server reads it (Unicode White_Space: what pydantic strips and what ``\s`` means in
#: its patterns), spelled out for a character class: ``\s`` means something else to ECMA-262, which JSON
#: Schema patterns use (U+FEFF in, U+0085 out), so a pattern with ``\s`` told clients that text the server
#: refuses was valid. Every pattern about white space uses this.
WHITE_SPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Text with something other than white space in it (JSON Schema patterns search, they do not anchor).
NOT_BLANK = rf"[^{WHITE_SPACE}]"
#: The media type a field declares when it carries a YAML document (rules files, mapping profiles).
YAML_MEDIA_TYPE = "application/yaml"


@dataclass(frozen=True)
class Declares:
    """Add JSON Schema keywords to an annotated type's schema; a ``pattern`` joins an existing one.

    Hashable (annotations are): the keywords are kept as pairs.
    """

    keywords: tuple[tuple[str, Any], ...]
    #: for a union such as a decimal (``anyOf`` number | string), the branch of this JSON type only
    branch: str | None = None

    @classmethod
    def of(cls, keywords: Mapping[str, Any], *, branch: str | None = None) -> Declares:
        return cls(tuple(keywords.items()), branch)

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        targets = [schema]
        if self.branch is not None:
            targets = [b for b in schema.get("anyOf", [schema]) if b.get("type") == self.branch]
        for target in targets:
            for key, value in self.keywords:
                if key == "pattern" and "pattern" in target:
                    target.setdefault("allOf", []).append({"pattern": value})
                else:
                    target[key] = value
        return schema


#: Marks text that is stripped before its ``min_length`` (``StringConstraints(strip_whitespace=True,
#: min_length=1)``): the schema says it may not be blank.
NON_BLANK = Declares.of({"pattern": NOT_BLANK})
#: Marks a text field as a YAML document.
YAML_TEXT = Declares.of({"contentMediaType": YAML_MEDIA_TYPE})
