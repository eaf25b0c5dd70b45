"""Decoding and checking a collect request's body: msgspec in one pass for the batch form,
then the checks msgspec leaves to us (a property object's text is kept raw, so it is checked
here when it is not plain ASCII). Every refusal names the field it is about."""

from __future__ import annotations

import json
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
        refused = Rejection(400, "invalid_event", str(e), _field_of(e))
        refused.events = _count(body)
        raise refused from None
    except msgspec.DecodeError as e:
        if not body.strip():
            raise Rejection(400, "empty_body", "request body is empty", None) from None
        raise Rejection(400, "invalid_json", f"body is not valid JSON: {e}", None) from None
    except RecursionError:
        raise Rejection(400, "invalid_json", "body is nested too deeply", None) from None


class _Events(msgspec.Struct):
    events: list[msgspec.Raw]


_count_decoder = msgspec.json.Decoder(_Events)


def _count(body: bytes) -> int:
    """The events in a body that failed validation, for the metrics: every event of a refused
    batch is refused."""
    try:
        return max(1, len(_count_decoder.decode(body).events))
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return 1


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
    if plain(raw):
        return
    try:
        try:
            _properties_decoder.decode(raw)
        except msgspec.ValidationError:
            # A number beyond a double's range (valid JSON, which msgspec refuses): accepted,
            # as on the plain path, and read back as null (web_names.properties_json). The
            # standard library checks the rest of the text instead.
            value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
            json.dumps(value, ensure_ascii=False).encode()  # lone surrogates raise
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as e:
        message = str(e).removesuffix(" - at `$[...]`")
        raise Rejection(
            400, "invalid_event", f"properties: {message}", at(index, count, "properties")
        ) from None
    except RecursionError:
        raise Rejection(
            400, "invalid_event", "properties: nested too deeply", at(index, count, "properties")
        ) from None


def plain(text: bytes) -> bool:
    """Whether JSON text needs no closer look for the loader's JSON reader to read it as
    msgspec would: ASCII without `\\u` escapes (checked on a whole body at once)."""
    return text.isascii() and BACKSLASH_U not in text


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def at(index: int, total: int, name: str) -> str:
    return f"events[{index}].{name}" if total > 1 else name


_MISSING_RE = re.compile(r"^Object missing required field `([^`]+)`")


def _field_of(error: msgspec.ValidationError) -> str | None:
    """The field an error is about: its path, and the missing field's name when a required
    one is missing (`events[1].eventType`, not `events[1]`)."""
    text = str(error)
    match = _FIELD_RE.search(text)
    path = match.group(1) if match else ""
    missing = _MISSING_RE.match(text)
    if missing:
        return f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None
