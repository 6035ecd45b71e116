"""The OpenAPI 3.1 document of the service, generated from the declared types in
`reports.schemas` (msgspec writes their JSON Schemas) and the routes' statuses below. The
version is the installed package's."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import msgspec

from reports.schemas import MAX_BODY, Error, Health, Report, ReportRequest, Window

_SCHEMAS = (ReportRequest, Window, Report, Health, Error)


def _version() -> str:
    try:
        return importlib.metadata.version("olapsync")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "0+unknown"


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """A struct's fields as query parameters: a parameter is never `null`, only absent."""
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        choices = [s for s in prop.pop("anyOf", []) if s.get("type") != "null"]
        if choices:
            prop.pop("default", None)
            prop = {**choices[0], **prop}
        out.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": prop,
            }
        )
    return out


def openapi_document(*, auth: bool, issuer: str | None = None) -> dict[str, Any]:
    """The OpenAPI document for a service with sign-in on (`auth`) or off.

    With sign-in, `/report` and `/me/report` require a bearer token (an access token from
    `issuer`), and the 401/403 answers are listed; `/me/report` exists only then.
    """
    _, schemas = msgspec.json.schema_components(
        _SCHEMAS, ref_template="#/components/schemas/{name}"
    )
    guarded: dict[str, Any] = {"security": [{"bearer": []}]} if auth else {}
    auth_errors = (
        {
            "401": _json("Error", "No bearer token, or one that does not verify"),
            "403": _json("Error", "The token may not read this user's report"),
        }
        if auth
        else {}
    )
    busy = _json("Error", "ClickHouse (or, with sign-in, the issuer's keys) unavailable, or busy")
    report = _json("Report", "The report (zeros and an empty list when no events)")
    paths: dict[str, Any] = {
        "/report": {
            "post": {
                "summary": "One user's events in a window, per prosthesis type",
                "description": "start_ts <= event_timestamp <= end_ts, both optional and "
                "inclusive. With sign-in, a token reads the user whose user_uuid is its `sub`, "
                "or any user with the admin role; for any other id, known or not, it gets 403.",
                **guarded,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ReportRequest"}
                        }
                    },
                },
                "responses": {
                    "200": report,
                    "400": _json("Error", "The body is not valid JSON"),
                    **auth_errors,
                    "404": _json("Error", "Unknown user (told only to admins when signed in)"),
                    "408": _json("Error", "The body did not arrive in time"),
                    "413": _json("Error", f"The body is larger than {MAX_BODY // 1024} KiB"),
                    "422": _json("Error", "The body is JSON but not a valid request"),
                    "503": busy,
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Whether ClickHouse answers (no sign-in)",
                "responses": {
                    "200": _json("Health", "ClickHouse answers"),
                    "503": _json("Health", "ClickHouse does not answer, or the check is busy"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (no sign-in)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    if auth:
        paths["/me/report"] = {
            "get": {
                "summary": "The signed-in user's own report",
                "description": "The same report as POST /report, for the user whose "
                "user_uuid is the token's `sub`.",
                **guarded,
                "parameters": _query_parameters(schemas["Window"]),
                "responses": {
                    "200": report,
                    "401": auth_errors["401"],
                    "404": _json("Error", "No user has the token's subject as user_uuid"),
                    "422": _json("Error", "A query parameter is unknown, repeated or invalid"),
                    "503": busy,
                },
            }
        }
    components: dict[str, Any] = {"schemas": schemas}
    if auth:
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": f"An OIDC access token from {issuer}, carrying the service's "
                "audience.",
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "olapsync reports",
            "version": _version(),
            "description": "Per-user prosthesis usage reports from ClickHouse.",
        },
        "paths": paths,
        "components": components,
    }
