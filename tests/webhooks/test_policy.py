"""Retry decisions of webhook delivery (pure)."""

from __future__ import annotations

import pytest

from bifrost.webhooks.deliverer import envelope, parse_alert
from bifrost.webhooks.policy import DeliveryPolicy, Verdict, classify, retry_delay


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (408, Verdict.RETRY),
        (None, Verdict.RETRY),
        (400, Verdict.REFUSED),
        (401, Verdict.REFUSED),
        (404, Verdict.REFUSED),
        (410, Verdict.REFUSED),
        (301, Verdict.REFUSED),
    ],
)
def test_classify(status: int | None, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_delays_grow_exponentially_with_jitter_within_bounds_and_obey_retry_after() -> None:
    policy = DeliveryPolicy(max_attempts=8, backoff_seconds=5.0, max_backoff_seconds=900.0)
    for n in range(1, 10):
        ceiling = min(900.0, 5.0 * 2 ** (n - 1))
        delays = [retry_delay(n, policy, rand=r / 10) for r in range(10)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) == 10
    assert retry_delay(1, policy, rand=0.0, retry_after=120.0) == 120.0
    assert retry_delay(1, policy, rand=0.0, retry_after=10_000.0) == 900.0  # capped
    assert policy.budget_seconds() == pytest.approx(5 + 10 + 20 + 40 + 80 + 160 + 320 + 8 * 10.0)


def test_envelope_and_alert_parsing() -> None:
    alert = {"alert_id": "lag:g:1", "kind": "consumer_lag", "resolved": True, "created_at": 0}
    msg_id, body = envelope(alert, now=86400.0)
    assert msg_id == "lag:g:1:resolved"
    assert body == (
        b'{"type":"alert.consumer_lag","timestamp":"1970-01-02T00:00:00+00:00","data":'
        b'{"alert_id":"lag:g:1","kind":"consumer_lag","resolved":true,"created_at":0}}'
    )
    assert parse_alert(b'{"alert_id":"x","kind":"something_new"}')["kind"] == "something_new"  # unknown kinds relay
    for bad in (b"", b"[1]", b'{"alert_id": 1, "kind": "x"}', b'{"kind": "x"}', b"[" * 5000):
        with pytest.raises(ValueError):
            parse_alert(bad)
