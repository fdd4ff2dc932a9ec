from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from pivot_worker.errors import FetchError, Reason
from pivot_worker.netguard import AddressPolicy, BlockedAddressError, GuardedResolver, check_url, shown_url
from pivot_worker.settings import parse_networks

BLOCKED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fc00::1",
    "fd12::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::127.0.0.1",
    "2002:7f00:1::",
    "64:ff9b::a00:1",
    "192.0.2.1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]


@pytest.mark.parametrize("address", BLOCKED)
def test_internal_addresses_are_blocked_by_default(address: str) -> None:
    assert not AddressPolicy().is_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().is_allowed(ipaddress.ip_address(address))


def test_allow_list_opens_a_range_including_mapped_forms() -> None:
    policy = AddressPolicy(parse_networks("127.0.0.0/8"))
    assert policy.is_allowed(ipaddress.ip_address("127.0.0.1"))
    assert policy.is_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not policy.is_allowed(ipaddress.ip_address("10.0.0.1"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", Reason.INVALID_URL),
        ("file:///etc/passwd", Reason.INVALID_URL),
        ("http:///nohost", Reason.INVALID_URL),
        ("http://169.254.169.254/latest/meta-data", Reason.BLOCKED_ADDRESS),
        ("http://user:pw@127.0.0.1/", Reason.BLOCKED_ADDRESS),
        ("http://[::1]:8080/", Reason.BLOCKED_ADDRESS),
        ("http://[::ffff:7f00:1]/", Reason.BLOCKED_ADDRESS),
    ],
)
def test_check_url_refuses(url: str, reason: Reason) -> None:
    with pytest.raises(FetchError) as info:
        check_url(url, AddressPolicy())
    assert info.value.reason is reason


def test_check_url_passes_names_to_the_resolver() -> None:
    assert check_url("https://ivr.example.com/start?x=1", AddressPolicy()).host == "ivr.example.com"


def test_shown_url_hides_credentials_and_query() -> None:
    assert shown_url("https://u:secret@h.example/p?token=abc#f") == "https://h.example/p"


class _FixedResolver(AbstractResolver):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_resolver_drops_blocked_addresses() -> None:
    resolver = GuardedResolver(AddressPolicy(), _FixedResolver(["10.0.0.1", "8.8.8.8"]))
    results = await resolver.resolve("mixed.example", 80)
    assert [r["host"] for r in results] == ["8.8.8.8"]


async def test_resolver_refuses_names_that_only_reach_blocked_addresses() -> None:
    resolver = GuardedResolver(AddressPolicy(), _FixedResolver(["127.0.0.1", "169.254.169.254"]))
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1, 169\.254\.169\.254"):
        await resolver.resolve("rebind.example", 80)
