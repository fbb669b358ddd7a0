"""Query-string models whose JSON schema is built once (pure; pydantic only).

flask-openapi3 reads a query model's JSON schema on every request to find its list-valued fields, and
pydantic builds that schema afresh each time: about a millisecond per request for a two-field model.
Query models derive from ``QueryModel``, which remembers the schema per class and arguments and hands
out a copy (callers may change what they get), made from the schema's JSON text (``copy.deepcopy`` of
it cost ten times more, on every request).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel
from pydantic.json_schema import DEFAULT_REF_TEMPLATE, GenerateJsonSchema, JsonSchemaMode


class QueryModel(BaseModel):
    """A pydantic model whose ``model_json_schema`` is computed once per class and arguments.

    >>> class Q(QueryModel):
    ...     limit: int = 5
    >>> Q.model_json_schema() == Q.model_json_schema() and Q.model_json_schema() is not Q.model_json_schema()
    True
    """

    _schemas: ClassVar[dict[tuple[Any, ...], bytes]] = {}
    _schemas_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def model_json_schema(
        cls,
        by_alias: bool | None = None,
        ref_template: str = DEFAULT_REF_TEMPLATE,
        schema_generator: type[GenerateJsonSchema] = GenerateJsonSchema,
        mode: JsonSchemaMode = "validation",
        *,
        union_format: Literal["any_of", "primitive_type_array"] = "any_of",
    ) -> dict[str, Any]:
        key = (cls, by_alias, ref_template, schema_generator, mode, union_format)
        text = QueryModel._schemas.get(key)
        if text is None:
            text = orjson.dumps(
                super().model_json_schema(
                    by_alias, ref_template, schema_generator, mode, union_format=union_format
                )
            )
            with QueryModel._schemas_lock:
                QueryModel._schemas[key] = text
        schema: dict[str, Any] = orjson.loads(text)
        return schema
