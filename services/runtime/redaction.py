"""No credential is ever logged: tokens in a logged URL or header are replaced before any handler
writes the record (uvicorn logs each WebSocket handshake's path with its query string, and a
stream token travels as `?access_token=`)."""

from __future__ import annotations

import logging
import re

# `access_token=…` / `token=…` in a query string, and `Bearer …` as a header value says it.
_SECRETS = re.compile(r"((?:access_token|token)=)[^&\s\"'#]+|(Bearer\s+)[^\s\"',]+", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: f"{m.group(1) or m.group(2)}[redacted]", text)


class RedactCredentials(logging.Filter):
    """On a handler: rewrites a record whose message holds a credential (the message is then
    final: its arguments are merged in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
