"""BIFROST_WEBHOOK_URLS parsing: http(s) only, and never a link-local (cloud metadata) address."""

from __future__ import annotations

import pytest

from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.webhooks.deliverer import endpoints


def parsed(urls: str) -> list[str]:
    return [endpoint.host for endpoint in endpoints(Settings.from_env({"BIFROST_WEBHOOK_URLS": urls}))]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.1.1:8443/hook",
        "http://[fe80::1]/hook",
        "http://[fe80::a:b%25eth0]:8080/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://2852039166/hook",  # 169.254.169.254 as one number, which resolvers accept
        "http://0xa9fea9fe/hook",
    ],
)
def test_link_local_targets_are_refused_with_the_entry_named(url: str) -> None:
    with pytest.raises(SettingsError, match=r"entry 2 \(.+\) is a link-local address .*refused") as caught:
        parsed(f"https://hooks.example.com/a,{url}")
    assert "/hook" not in str(caught.value) and "meta-data" not in str(caught.value)  # the path may be a secret


def test_other_targets_are_kept() -> None:
    urls = "https://hooks.example.com/a, http://10.0.0.5/b,http://127.0.0.1:9/c,http://[fd00::1]/d,http://169.255.0.1/e"
    assert parsed(urls) == ["hooks.example.com", "10.0.0.5", "127.0.0.1", "fd00::1", "169.255.0.1"]


def test_non_http_urls_are_refused() -> None:
    with pytest.raises(SettingsError, match="entry 1 is not an http"):
        parsed("ftp://hooks.example.com/a")
