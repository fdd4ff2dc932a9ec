"""Which addresses a developer URL may reach: blocks internal networks unless explicitly allowed.

Two checks share one policy:

* :func:`check_url` runs before every request and every redirect hop: scheme, host, and IP-literal
  hosts (the HTTP client never resolves those).
* :class:`GuardedResolver` is the HTTP client's resolver: names are resolved once and only allowed
  addresses are handed to the connector, so the address checked is the address connected to (no
  DNS-rebinding window between a check and the connect).

Blocked unless ``PIVOT_ALLOW_NETWORKS`` opens them: every address that is not globally routable
(loopback, RFC 1918, link-local incl. 169.254.169.254, CGNAT 100.64/10, unspecified, reserved,
documentation, IPv6 loopback/ULA/link-local) and multicast. IPv6 forms that embed an IPv4 address
(IPv4-mapped, IPv4-compatible, 6to4, NAT64) are judged by the embedded address.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .errors import FetchError, Reason
from .settings import Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPAT = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class AddressPolicy:
    """Decides whether an address may be contacted."""

    def __init__(self, allow: tuple[Network, ...] = ()) -> None:
        self.allow = allow
        self._literal_hosts: dict[str, IPAddress | None] = {}

    def literal_verdict(self, host: str) -> tuple[IPAddress | None, bool]:
        """For a URL host: the IP address it names (None for a name) and whether it is allowed.

        Memoised (bounded): the same few hosts come back on every request.
        """
        if host in self._literal_hosts:
            ip = self._literal_hosts[host]
        else:
            try:
                ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
            except ValueError:
                ip = None
            if len(self._literal_hosts) >= 4096:
                self._literal_hosts.clear()
            self._literal_hosts[host] = ip
        return ip, ip is None or self.is_allowed(ip)

    def _allowed_by_list(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow)

    def is_allowed(self, ip: IPAddress) -> bool:
        if self._allowed_by_list(ip):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id:
                return False
            inner = _embedded_ipv4(ip)
            if inner is not None:
                return self.is_allowed(inner)
        return ip.is_global and not ip.is_multicast


def shown_url(url: str | URL) -> str:
    """A URL safe for logs and failure messages: no credentials, no query (it carries call data)."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        return str(parsed.with_user(None).with_query(None).with_fragment(None))[:200]
    except (ValueError, TypeError):
        return "<unparsable URL>"


class BlockedAddressError(OSError):
    """Raised inside the resolver; the fetcher maps it to ``blocked_address``."""


def check_url(url: str | URL, policy: AddressPolicy) -> URL:
    """Refuse a URL that is not http(s), has no host, or names a blocked IP literal."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError) as exc:
        raise FetchError(f"URL cannot be parsed: {exc}", reason=Reason.INVALID_URL) from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError(
            f"URL {shown_url(parsed)} is not http or https (scheme {parsed.scheme!r})",
            reason=Reason.INVALID_URL,
        )
    host = parsed.raw_host
    if not host:
        raise FetchError(f"URL {shown_url(parsed)} has no host", reason=Reason.INVALID_URL)
    ip, allowed = policy.literal_verdict(host)
    if not allowed:
        raise FetchError(
            f"URL host {ip} is in a blocked network (set PIVOT_ALLOW_NETWORKS to open it)",
            reason=Reason.BLOCKED_ADDRESS,
        )
    return parsed


class GuardedResolver(AbstractResolver):
    """Resolves with the default resolver, then drops every address the policy blocks."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.is_allowed(ipaddress.ip_address(r["host"]))]
        if not allowed:
            shown = ", ".join(sorted({str(r["host"]) for r in results}))
            raise BlockedAddressError(
                f"{host} resolves only to blocked addresses ({shown}); set PIVOT_ALLOW_NETWORKS to open them"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()
