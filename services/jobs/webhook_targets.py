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
    except UnicodeError as exc:  # (a label over 63 characters, or a name IDNA cannot encode)
        raise WebhookTargetRefused(f"{host[:80]!r} is not a valid host name") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the well-known prefix
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translation
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible (`::127.0.0.1`)


def embedded_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for when it is one in disguise (mapped, compatible,
    NAT64, 6to4, Teredo): routers may deliver it to that IPv4, so it is judged as that IPv4."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (the client's address)
    if address in NAT64 or address in NAT64_LOCAL or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


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
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # (not a number, or beyond 65535)
        raise WebhookTargetRefused(f"the webhook URL's port is not a port number ({exc})") from None
    if len(host) > 253:
        raise WebhookTargetRefused("the webhook URL's host name is longer than 253 characters")
    addresses = await asyncio.to_thread(_resolve, host, port)
    for address in addresses:
        if _allowed(host, address, allow):
            continue
        judged = embedded_ipv4(address) or address
        if judged is not address and _allowed(host, judged, allow):
            continue
        if not judged.is_global or judged.is_multicast:
            kind = "link-local or metadata" if judged.is_link_local else "private or reserved"
            shown = address if judged is address else f"{address} (that is {judged})"
            raise WebhookTargetRefused(f"{host} resolves to {shown}, a {kind} address")
