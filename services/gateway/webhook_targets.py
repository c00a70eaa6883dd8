"""Where a webhook may go: checked at submit time and again before every send."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class WebhookTargetRefused(ValueError):
    pass


def _allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: Sequence[str]) -> bool:
    for entry in allow:
        if entry == host:
            return True
        with contextlib.suppress(ValueError):
            if address in ipaddress.ip_network(entry, strict=False):
                return True
    return False


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookTargetRefused(f"cannot resolve {host}: {exc.strerror}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_target(url: str, allow: Sequence[str]) -> None:
    """Raises WebhookTargetRefused for a URL we must not call."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused("the webhook URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise WebhookTargetRefused("the webhook URL must not carry credentials")
    host = parts.hostname.lower()
    if host in METADATA_HOSTS and host not in allow:
        raise WebhookTargetRefused(f"{host} is a cloud metadata address")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await asyncio.to_thread(_resolve, host, port)
    for address in addresses:
        if _allowed(host, address, allow):
            continue
        if not address.is_global or address.is_multicast:
            kind = "link-local or metadata" if address.is_link_local else "private or reserved"
            raise WebhookTargetRefused(f"{host} resolves to {address}, a {kind} address")
