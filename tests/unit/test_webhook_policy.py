"""Where a webhook may point (SSRF), and how long and how often a failing delivery is retried."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest

from core import webhooks
from core.webhooks import UrlPolicy, WebhookUrlError, check_url

STRICT = UrlPolicy(allow_http_loopback=False)
DEV = UrlPolicy(allow_http_loopback=True)


def resolving_to(*addresses: str) -> webhooks.Resolver:
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "::ffff:10.0.0.5",  # IPv4-mapped private
        "::ffff:169.254.169.254",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "224.0.0.1",
        "240.0.0.1",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address: str) -> None:
    with pytest.raises(WebhookUrlError) as refused:
        check_url("https://hooks.example.com/in", STRICT, resolving_to(address))
    assert refused.value.code == "webhook_url_refused"
    assert address in refused.value.detail


def test_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(WebhookUrlError):
        check_url("https://hooks.example.com/", STRICT, resolving_to("93.184.216.34", "10.1.1.1"))


def test_a_public_https_url_is_accepted_with_the_addresses_it_resolved_to() -> None:
    target = check_url(
        "https://hooks.example.com:8443/in?x=1", STRICT, resolving_to("93.184.216.34")
    )
    assert (target.scheme, target.host, target.port, target.path) == (
        "https",
        "hooks.example.com",
        8443,
        "/in?x=1",
    )
    assert target.addresses == ("93.184.216.34",)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",  # plain http to a public host
        "ftp://hooks.example.com/in",
        "https://user:pw@hooks.example.com/in",
        "https:///no-host",
        "https://hooks.example.com/in#frag",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com/" + "a" * webhooks.MAX_URL_LENGTH,
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlError):
        check_url(url, DEV, resolving_to("93.184.216.34"))


def test_plain_http_only_to_loopback_and_only_when_allowed() -> None:
    assert check_url("http://127.0.0.1:9000/hook", DEV, resolving_to("127.0.0.1")).port == 9000
    with pytest.raises(WebhookUrlError):
        check_url("http://127.0.0.1:9000/hook", STRICT, resolving_to("127.0.0.1"))
    with pytest.raises(WebhookUrlError):  # allowed loopback does not open private addresses
        check_url("http://10.0.0.1/hook", DEV, resolving_to("10.0.0.1"))


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(WebhookUrlError, match="does not resolve"):
        check_url("https://nowhere.invalid/", STRICT, fails)


def test_the_first_retry_comes_within_a_minute_and_retries_last_over_24_hours() -> None:
    for seed in range(50):
        rng = random.Random(seed).random
        delays = webhooks.schedule(rng)
        assert delays[0] <= timedelta(minutes=1)
        assert sum(delays, timedelta(0)) >= timedelta(hours=24)
        assert sum(delays, timedelta(0)) <= webhooks.RETRY_WINDOW + webhooks.MAX_DELAY * 1.2
        assert max(delays) <= webhooks.MAX_DELAY * (1 + webhooks.JITTER)


def test_backoff_doubles_and_is_jittered() -> None:
    low = [webhooks.backoff(n, lambda: 0.0) for n in range(1, 8)]
    high = [webhooks.backoff(n, lambda: 1.0) for n in range(1, 8)]
    assert low[0] == webhooks.FIRST_DELAY * (1 - webhooks.JITTER)
    assert high[0] == webhooks.FIRST_DELAY * (1 + webhooks.JITTER)
    assert all(b == 2 * a for a, b in itertools.pairwise(low))
    assert webhooks.backoff(40, lambda: 0.5) == webhooks.MAX_DELAY  # capped
    spread = {webhooks.backoff(3, random.Random(s).random) for s in range(20)}
    assert len(spread) > 10  # not every receiver's retries at the same instant
