"""Server-Sent Events framing. Frames are bytes built once and shared by every client."""

from __future__ import annotations

import msgspec

HEARTBEAT = b": keepalive\n\n"  # a comment: no id (it would move Last-Event-ID), no data
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not buffer a live stream
}
MEDIA_TYPE = "text/event-stream"


def frame(event: str, data: bytes, event_id: int | None = None, retry_ms: int | None = None) -> bytes:
    """One SSE message; `data` is single-line JSON (msgspec never emits newlines).

    `retry:` rides on a real message: a message with no data is dispatched by some clients as an
    empty `message` event."""
    head = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    head += f"id: {event_id}\nevent: {event}\n" if event_id is not None else f"event: {event}\n"
    return head.encode() + b"data: " + data + b"\n\n"


def parse_frame(frame: bytes) -> tuple[str | None, int | None, bytes | None]:
    """(event, id, data) of one frame built by `frame`; comments and retry lines are skipped."""
    event = data = None
    seq = None
    for line in frame.split(b"\n"):
        if line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"id: "):
            seq = int(line[4:])
        elif line.startswith(b"data: "):
            data = line[6:]
    return event, seq, data


class _Kind(msgspec.Struct):
    kind: str


_kind_decoder = msgspec.json.Decoder(_Kind)


def kind_of(event_json: bytes) -> str:
    """The `kind` of a stored event's JSON (without decoding the rest)."""
    return _kind_decoder.decode(event_json).kind


def parse_cursor(raw: str | None) -> int | None:
    """A Last-Event-ID (or ?after=) value as a stream sequence; None when it is not one."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 19:
        return None
    return int(raw)
