"""The OpenAPI document: flask-openapi3 generates it from the pydantic models; this adds what it cannot
express (problem+json error responses on every operation, CSV request bodies, the If-Match header of
every operation that needs one) and keeps the JSON Schema keywords its schema model would drop."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

from flask_openapi3.models.schema import Schema
from flask_openapi3.openapi import OpenAPI
from pydantic import BaseModel, Field

from common.errors import PROBLEM_MEDIA_TYPE

# flask-openapi3 copies each pydantic JSON schema into its own Schema model, which keeps only the keywords
# it lists and drops the rest (propertyNames of a dict keyed by an enum, contentMediaType...): the document
# would then claim less than the models enforce. Keep every keyword.
Schema.model_config["extra"] = "allow"
Schema.model_rebuild(force=True)

# operationId -> media type of a request body that is not JSON (CSV imports, YAML profiles, uploads)
RAW_BODIES: dict[str, str] = {}
#: A form of file parts; the view checks each part (``common.textfile.uploaded_texts``).
MULTIPART = "multipart/form-data"
# operationIds of the imports: they take bodies up to PRM_MAX_IMPORT_BYTES, every other one PRM_MAX_BODY_BYTES
IMPORT_OPERATIONS: set[str] = set()
#: Request bodies a view reads itself (after checks that must come first, such as a signature), by
#: operation id: (media type, schema, component schemas the schema refers to).
DOCUMENTED_BODIES: dict[str, tuple[str, dict[str, Any], dict[str, dict[str, Any]]]] = {}
#: The schema of a raw body (``RAW_BODIES``) that is more than text, e.g. a multipart form's parts.
RAW_BODY_SCHEMAS: dict[str, dict[str, Any]] = {}

ERROR_STATUSES = {
    "400": "Bad request",
    "401": "Authentication required",
    "403": "Not allowed for this role",
    "404": "Not found (or not visible to the caller)",
    "409": "Conflict with the current state",
    "413": "Body too large",
    "415": "Unsupported media type",
    "422": "Validation failed",
    "500": "Internal error",
}


#: Only operations that read If-Match (see `reads_if_match`) answer these.
CONDITIONAL_STATUSES = {
    "412": "If-Match does not name the current version",
    "428": "If-Match required",
}

IF_MATCH_PARAMETER: dict[str, Any] = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "description": "The record's ETag as you read it (from its GET or your last change): "
    "without it 428, if the record changed since 412.",
    "schema": {"type": "string", "minLength": 1, "examples": ['"1.1"']},
}


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_objects(const)


def reads_if_match(view: Callable[..., Any]) -> bool:
    """Whether a view reads the request's If-Match (calls ``common.http.if_match``, itself or through
    helpers of its own module), so the operation answers 428 without it. Read from the code, so the
    document cannot drift from what runs; the conditional-requests tests hold it to real answers."""
    pending, seen = [inspect.unwrap(view)], set()
    while pending:
        func = pending.pop()
        code = getattr(func, "__code__", None)
        if code is None or code in seen:
            continue
        seen.add(code)
        for names in (c.co_names for c in _code_objects(code)):
            if "if_match" in names:
                return True
            for name in names:
                helper = func.__globals__.get(name)
                if inspect.isfunction(helper) and helper.__module__ == func.__module__:
                    pending.append(helper)
    return False


def view_operation_id(*, name: str, path: str, method: str) -> str:
    """operationId = the view function's name (blueprints need this too: they ignore the app's callback)."""
    return name


class ProblemItem(BaseModel):
    pointer: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemItem] | None = Field(
        None, description="every validation problem, with its location (the first 100)"
    )
    errors_omitted: int | None = Field(None, description="problems found beyond the 100 listed")


def _close_pattern_maps(node: Any) -> None:
    """A pydantic dict keyed by a constrained string becomes ``patternProperties``, which in JSON Schema
    lets any other key through with any value; the model refuses those keys, so the document says so
    (``additionalProperties: false``)."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)


class PrmOpenAPI(OpenAPI):
    def generate_spec_json(self) -> None:
        super().generate_spec_json()  # type: ignore[no-untyped-call]
        spec: dict[str, Any] = self.spec_json
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem_schema.pop("$defs", {}))
        schemas["Problem"] = problem_schema
        schemas.pop("ValidationErrorModel", None)
        _close_pattern_maps(spec)
        problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        views = {endpoint.rpartition(".")[2]: view for endpoint, view in self.view_functions.items()}
        for path_item in spec["paths"].values():
            for method, operation in path_item.items():
                responses = operation.setdefault("responses", {})
                statuses = dict(ERROR_STATUSES)
                view = views.get(operation.get("operationId", ""))
                if view is not None and method != "get" and reads_if_match(view):  # reads never need it
                    operation.setdefault("parameters", []).append(dict(IF_MATCH_PARAMETER))
                    statuses.update(CONDITIONAL_STATUSES)
                for status, description in sorted(statuses.items()):
                    responses[status] = {"description": description, "content": problem}
                for status, response in responses.items():  # others a view declares are problems too
                    if status[0] in "45":
                        response["content"] = problem
                if operation.get("operationId") in IMPORT_OPERATIONS:
                    limit = getattr(self.extensions.get("prm.settings"), "max_import_bytes", None)
                    if limit is not None:
                        operation["x-max-body-bytes"] = limit
                        operation["description"] = (
                            operation.get("description", "")
                            + f"\n\nThe body may be up to {limit:,} bytes (`PRM_MAX_IMPORT_BYTES`), sent as "
                            "it is read (a chunked upload too); larger bodies are refused with 413."
                        ).strip()
                        responses["413"] = {
                            "description": f"Body larger than {limit:,} bytes",
                            "content": problem,
                        }
                media = RAW_BODIES.get(operation.get("operationId", ""))
                if media:
                    schema = RAW_BODY_SCHEMAS.get(operation.get("operationId", ""), {"type": "string"})
                    operation["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
                documented = DOCUMENTED_BODIES.get(operation.get("operationId", ""))
                if documented:
                    media, schema, components = documented
                    schemas.update(components)
                    operation["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
