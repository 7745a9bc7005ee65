"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json`` (written by hand, kept small)."""

from __future__ import annotations

from typing import Any, Final


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS: Final = {
    "400": _json(_ref("Error"), "Bad input (malformed JSON, a missing or wrong field)"),
    "401": _json(_ref("Error"), "No token, or an unknown one"),
    "403": _json(_ref("Error"), "The token lacks the scope"),
    "413": _json(_ref("Error"), "The body is too large"),
}

_ROUTE: Final = {
    "type": "object",
    "required": ["workspace", "feature", "provider", "model", "reason", "cost", "route_id"],
    "properties": {
        "workspace": {"type": "string"},
        "feature": {"type": "string", "enum": ["assist", "summarize", "auto_reply"]},
        "provider": {"type": "string", "description": "a provider id, `neo`, or `unavailable`"},
        "kind": {"type": "string", "description": "`byok`, `neo` or `unavailable`"},
        "model": {"type": "string"},
        "base_url": {"type": ["string", "null"]},
        "settings": {"type": "object", "additionalProperties": {"type": "string"}},
        "reason": {"type": "string"},
        "cost": {"type": "integer"},
        "probe": {"type": "boolean"},
        "route_id": {"type": "string", "description": "name it in the report"},
        "api_key": {
            "type": ["string", "null"],
            "description": "only with include_key and the resolve:keys scope",
        },
    },
}

OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "byokctl serve",
        "version": "1",
        "description": "The BYOK resolver over HTTP: resolve, report, status, credits.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "status"],
                "properties": {
                    "error": {"type": "string"},
                    "status": {"type": "integer"},
                    "hint": {"type": "string"},
                },
            },
            "Route": _ROUTE,
            "ResolveRequest": {
                "type": "object",
                "required": ["workspace"],
                "properties": {
                    "workspace": {"type": "string"},
                    "feature": {"type": "string", "default": "assist"},
                    "include_key": {"type": "boolean", "default": False},
                },
            },
            "ReportRequest": {
                "type": "object",
                "required": ["route_id"],
                "properties": {
                    "route_id": {"type": "string"},
                    "outcome": {"type": "string", "description": "`ok` or a failure outcome"},
                    "status": {"type": "integer", "description": "the provider's HTTP status"},
                    "body": {"type": "string", "description": "the provider's answer"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "ReportResult": {
                "type": "object",
                "required": ["outcome", "fallback"],
                "properties": {
                    "outcome": {"type": "string"},
                    "sticky": {"type": "boolean"},
                    "detail": {"type": "string"},
                    "retry_after": {"type": ["number", "null"]},
                    "fallback": {"oneOf": [_ref("Route"), {"type": "null"}]},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/resolve": {
            "post": {
                "summary": "Where the next AI action goes (scope resolve; keys: resolve:keys)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ResolveRequest")}},
                },
                "responses": {"200": _json(_ref("Route")), **_ERRORS},
            }
        },
        "/api/v1/report": {
            "post": {
                "summary": "How the action went; a failure answers the fallback route",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ReportRequest")}},
                },
                "responses": {
                    "200": _json(_ref("ReportResult")),
                    "404": _json(_ref("Error"), "Unknown or already reported route_id"),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/status": {
            "get": {
                "summary": "Every workspace: route, reason, since, open episodes (scope read)",
                "responses": {"200": _json({"type": "object"}), **_ERRORS},
            }
        },
        "/api/v1/workspaces/{name}": {
            "get": {
                "summary": "One workspace: status, providers (never a key), credits",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json({"type": "object"}),
                    "404": _json(_ref("Error"), "No such workspace"),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/credits": {
            "get": {
                "summary": "Credit usage per workspace, feature and route (scope read)",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("workspace", "since", "period")
                ],
                "responses": {"200": _json({"type": "object"}), **_ERRORS},
            }
        },
        "/api/v1/fleet": {
            "get": {
                "summary": "One page of the fleet (the status page's data)",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("route", "reason", "provider", "q", "sort", "page", "per_page")
                ],
                "responses": {"200": _json({"type": "object"}), **_ERRORS},
            }
        },
    },
}
