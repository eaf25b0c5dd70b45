"""OpenAPI description of the collect endpoints, which bypass FastAPI for speed."""

from __future__ import annotations

from typing import Any

from cadlink.events import IncomingEvent

_EVENT_FIELDS = {
    "eventType": {
        "type": "string",
        "maxLength": 64,
        "description": "page_view, click, … or a custom name",
    },
    "siteId": {"type": "string", "description": "Site id; here or at the top level of a batch"},
    "eventId": {"type": "string", "maxLength": 64, "description": "Unique id; repeats count once"},
    "timestamp": {"type": "integer", "description": "Milliseconds since the epoch"},
    "sessionId": {"type": "string", "maxLength": 128},
    "visitorId": {"type": "string", "maxLength": 128, "description": "Kept only with consent"},
    "userId": {"type": "string", "maxLength": 128},
    "consent": {"type": "boolean", "description": "Analytics consent granted"},
    "pageUrl": {"type": "string", "maxLength": 2048},
    "pagePath": {"type": "string", "maxLength": 2048},
    "pageTitle": {"type": "string", "maxLength": 512},
    "referrer": {"type": "string", "maxLength": 2048},
    "screenResolution": {"type": "string", "maxLength": 64},
    "viewport": {"type": "string", "maxLength": 64},
    **{
        f"utm{p}": {"type": "string", "maxLength": 128}
        for p in ("Source", "Medium", "Campaign", "Term", "Content")
    },
    "properties": {"type": "object", "additionalProperties": True},
}
assert len(_EVENT_FIELDS) == len(IncomingEvent.__struct_fields__)

_EVENT = {"type": "object", "required": ["eventType"], "properties": _EVENT_FIELDS}
_BODY = {
    "required": True,
    "content": {
        media: {
            "schema": {
                "oneOf": [
                    _EVENT,
                    {
                        "type": "object",
                        "required": ["events"],
                        "properties": {
                            "siteId": {"type": "string"},
                            "events": {"type": "array", "maxItems": 100, "items": _EVENT},
                        },
                    },
                ]
            }
        }
        for media in ("application/json", "text/plain")
    },
}
_ERRORS = {
    "400": {"description": "Invalid input; `error.details.field` names the field"},
    "403": {"description": "The request's Origin may not send to this site"},
    "413": {"description": "Body too large"},
    "429": {"description": "Rate limited; see Retry-After"},
    "503": {"description": "Buffer full; see Retry-After"},
}

COLLECT_PATHS: dict[str, Any] = {
    "/api/v1/collect": {
        "post": {
            "tags": ["collect"],
            "summary": "Collect one event or a batch",
            "description": "Public. Answers 204 once the events are durably buffered.",
            "requestBody": _BODY,
            "responses": {"204": {"description": "Accepted"}, **_ERRORS},
        }
    },
    "/api/v1/collect/batch": {
        "post": {
            "tags": ["collect"],
            "summary": "Collect a batch and get the count back",
            "requestBody": _BODY,
            "responses": {
                "200": {
                    "description": 'Accepted: `{"success": true, "queued": N}`',
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_ERRORS,
            },
        }
    },
}
