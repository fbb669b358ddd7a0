"""The OpenAPI document: flask-openapi3 generates it from the pydantic models; this adds what it cannot
express (problem+json error responses on every operation, CSV request bodies)."""

from __future__ import annotations

from typing import Any

from flask_openapi3.openapi import OpenAPI
from pydantic import BaseModel, Field

from common.errors import PROBLEM_MEDIA_TYPE

# operationId -> media type of a request body that is not JSON (CSV imports)
RAW_BODIES: dict[str, str] = {}

ERROR_STATUSES = {
    "400": "Bad request",
    "401": "Authentication required",
    "403": "Not allowed for this role",
    "404": "Not found (or not visible to the caller)",
    "409": "Conflict with the current state",
    "412": "If-Match does not name the current version",
    "413": "Body too large",
    "415": "Unsupported media type",
    "422": "Validation failed",
    "428": "If-Match required",
    "500": "Internal error",
}


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
    errors: list[ProblemItem] | None = Field(None, description="every validation problem, with its location")


class PrmOpenAPI(OpenAPI):
    def generate_spec_json(self) -> None:
        super().generate_spec_json()  # type: ignore[no-untyped-call]
        spec: dict[str, Any] = self.spec_json
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem_schema.pop("$defs", {}))
        schemas["Problem"] = problem_schema
        schemas.pop("ValidationErrorModel", None)
        problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in spec["paths"].values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                for status, description in ERROR_STATUSES.items():
                    responses[status] = {"description": description, "content": problem}
                media = RAW_BODIES.get(operation.get("operationId", ""))
                if media:
                    operation["requestBody"] = {
                        "required": True,
                        "content": {media: {"schema": {"type": "string"}}},
                    }
