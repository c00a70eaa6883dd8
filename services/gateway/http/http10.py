"""HTTP/1.0 clients get a stream that ends when the connection closes, not chunked encoding.

uvicorn's httptools protocol (what `uvicorn[standard]` runs: about twice h11's speed here) answers
any response of unknown length with `Transfer-Encoding: chunked`, which HTTP/1.0 does not have: an
HTTP/1.0 client of an event stream would read chunk sizes as data. For those requests this cycle
sends the body as it is and closes the connection at its end (RFC 9112, 6.3: a response without a
length is delimited by the close). Installed once, by replacing the cycle class the protocol
module creates per request; `tests/test_protocol_edges.py` checks it against a raw socket.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http import httptools_impl


class _Http10AwareCycle(httptools_impl.RequestResponseCycle):
    _close_delimited = False

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            if (self.scope.get("http_version") == "1.0" and self.scope["method"] != "HEAD"
                    and message["status"] not in (204, 304)
                    and not any(k.lower() == b"content-length" for k, _ in message.get("headers", []))):
                self._close_delimited = True
                self.chunked_encoding = False  # (not None: uvicorn adds chunked only to None)
                self.keep_alive = False
        elif message["type"] == "http.response.body" and self._close_delimited:
            # uvicorn counts the body down against a length: give it each part's own.
            self.expected_content_length = len(message.get("body", b"")) + (1 if message.get("more_body") else 0)
        await super().send(message)


def install() -> None:
    httptools_impl.RequestResponseCycle = _Http10AwareCycle  # type: ignore[misc]
