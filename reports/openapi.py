"""The OpenAPI 3 description of the service, kept next to the handlers it describes."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "olapsync reports",
        "version": "0.1.0",
        "description": "Per-user prosthesis usage reports from ClickHouse.",
    },
    "paths": {
        "/report": {
            "post": {
                "summary": "One user's events in a window, per prosthesis type",
                "description": "start_ts <= event_timestamp <= end_ts, both optional and "
                "inclusive; ISO-8601, naive times are UTC.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ReportRequest"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The report (zeros and an empty list when no events)",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Report"}}
                        },
                    },
                    "400": _error("The body is not valid JSON"),
                    "404": _error("Unknown user"),
                    "413": _error("The body is larger than 64 KiB"),
                    "422": _error("The body is JSON but not a valid request"),
                    "503": _error("ClickHouse is unavailable"),
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Whether ClickHouse answers",
                "responses": {
                    "200": {
                        "description": "ClickHouse answers",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                        },
                    },
                    "503": {
                        "description": "ClickHouse does not answer",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                        },
                    },
                },
            }
        },
    },
    "components": {
        "schemas": {
            "ReportRequest": {
                "type": "object",
                "required": ["user_id"],
                "additionalProperties": False,
                "properties": {
                    "user_id": {
                        "type": "integer",
                        "minimum": -2147483648,
                        "maximum": 2147483647,
                    },
                    "start_ts": {
                        "type": "string",
                        "format": "date-time",
                        "nullable": True,
                        "example": "2026-01-01T00:00:00",
                    },
                    "end_ts": {
                        "type": "string",
                        "format": "date-time",
                        "nullable": True,
                        "example": "2026-03-01T23:59:59",
                    },
                },
            },
            "ProsthesisStats": {
                "type": "object",
                "required": [
                    "prosthesis_type",
                    "events_count",
                    "total_duration",
                    "avg_amplitude",
                    "avg_frequency",
                ],
                "properties": {
                    "prosthesis_type": {"type": "string"},
                    "events_count": {"type": "integer"},
                    "total_duration": {"type": "integer"},
                    "avg_amplitude": {"type": "number"},
                    "avg_frequency": {"type": "number"},
                },
            },
            "Report": {
                "type": "object",
                "required": [
                    "user_name",
                    "user_email",
                    "total_events",
                    "total_duration",
                    "prosthesis_stats",
                ],
                "properties": {
                    "user_name": {"type": "string"},
                    "user_email": {"type": "string"},
                    "total_events": {"type": "integer"},
                    "total_duration": {"type": "integer"},
                    "prosthesis_stats": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ProsthesisStats"},
                    },
                },
            },
            "Health": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}},
            },
            "Error": _ERROR,
        }
    },
}
