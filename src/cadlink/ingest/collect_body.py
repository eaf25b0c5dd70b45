"""Decoding and checking a collect request's body: msgspec in one pass for the batch form,
then the checks msgspec leaves to us (a property object's text is kept raw, so it is checked
here when it is not plain ASCII). Every refusal names the field it is about."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from cadlink.events import NO_PROPERTIES, CollectedEvent, IncomingBatch
from cadlink.ingest.collect_answers import Rejection

_batch_decoder = msgspec.json.Decoder(IncomingBatch)
_NOT_A_BATCH = "Object missing required field `events`"  # a single event, not {"events": …}
_event_decoder = msgspec.json.Decoder(CollectedEvent)
_properties_decoder = msgspec.json.Decoder(dict[str, Any])
BACKSLASH_U = b"\\u"
_FIELD_RE = re.compile(r"at `\$\.?(.*)`$")


def decode(body: bytes) -> tuple[list[CollectedEvent], str | None]:
    try:
        # The batch form first (the tracker always sends it): one pass over the body.
        try:
            batch = _batch_decoder.decode(body)
        except msgspec.ValidationError as e:
            if str(e) != _NOT_A_BATCH:
                raise
            return [_event_decoder.decode(body)], None
        return batch.events, batch.site_id
    except msgspec.ValidationError as e:
        field = _field_of(e)
        raise Rejection(400, "invalid_event", str(e), field) from None
    except msgspec.DecodeError as e:
        if not body.strip():
            raise Rejection(400, "empty_body", "request body is empty", None) from None
        raise Rejection(400, "invalid_json", f"body is not valid JSON: {e}", None) from None


def check_properties(event: CollectedEvent, raw: bytes, index: int, count: int) -> None:
    """`properties` (`raw`) is an object (or null: none), whose text the loader's JSON reader
    reads as msgspec would: the raw text skips msgspec's checks of UTF-8 and escapes, so text
    that is not plain ASCII without `\\u` escapes is decoded once to check it."""
    if raw[0] != 0x7B:  # "{"
        if raw == b"null":
            event.properties = NO_PROPERTIES
            return
        raise Rejection(
            400, "invalid_event", "properties must be an object", at(index, count, "properties")
        )
    if raw.isascii() and BACKSLASH_U not in raw:
        return
    try:
        _properties_decoder.decode(raw)
    except msgspec.DecodeError as e:
        raise Rejection(
            400, "invalid_event", f"properties: {e}", at(index, count, "properties")
        ) from None


def at(index: int, total: int, name: str) -> str:
    return f"events[{index}].{name}" if total > 1 else name


def _field_of(error: msgspec.ValidationError) -> str | None:
    match = _FIELD_RE.search(str(error))
    return match.group(1) if match else None
