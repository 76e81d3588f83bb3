"""Webhook signatures: the Standard Webhooks vector, and what a receiver's verify() refuses."""

from __future__ import annotations

import base64

import pytest

from bifrost.webhooks.signing import WebhookSecretError, WebhookVerificationError, secret_key, sign, signature, verify

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = b'{"type":"alert.catalog_drift","data":{"alert_id":"a1"}}'


def test_the_standard_webhooks_reference_vector() -> None:
    # From the Standard Webhooks specification's test vectors (also what Svix libraries check).
    assert (
        signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_signed_delivery_verifies_and_any_change_fails() -> None:
    headers = sign(SECRET, "catalog_drift:s1", BODY, timestamp=1_000)
    verify(SECRET, headers, BODY, now=1_010)
    verify(SECRET, {k.upper(): v for k, v in headers.items()}, BODY, now=1_010)  # header names in any case
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(SECRET, headers, BODY + b" ", now=1_010)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(SECRET, {**headers, "webhook-id": "other"}, BODY, now=1_010)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify("whsec_" + base64.b64encode(b"x" * 32).decode(), headers, BODY, now=1_010)
    with pytest.raises(WebhookVerificationError, match="replay or a wrong clock"):
        verify(SECRET, headers, BODY, now=1_000 + 301)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(SECRET, {"webhook-id": "x"}, BODY, now=1_000)
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify(SECRET, {**headers, "webhook-timestamp": "soon"}, BODY, now=1_000)


def test_several_signatures_one_valid_passes_for_secret_rotation() -> None:
    headers = sign(SECRET, "m", BODY, timestamp=5)
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
    verify(SECRET, headers, BODY, now=5)


@pytest.mark.parametrize("bad", ["short", "whsec_not base64!", "whsec_" + base64.b64encode(b"tiny").decode()])
def test_unusable_secrets_are_refused(bad: str) -> None:
    with pytest.raises(WebhookSecretError):
        secret_key(bad)


def test_raw_text_secrets_are_their_utf8_bytes() -> None:
    assert secret_key("a" * 32) == b"a" * 32


@pytest.mark.parametrize("stamp", ["9" * 400, "-" + "9" * 400, "9" * 5000, "1e400"])
def test_an_absurd_timestamp_is_a_verification_error_not_an_overflow(stamp: str) -> None:
    headers = sign(SECRET, "m", BODY, timestamp=1_000)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, {**headers, "webhook-timestamp": stamp}, BODY, now=1_000)


def test_a_stale_timestamp_is_reported_in_the_past_and_a_future_one_in_the_future() -> None:
    old = sign(SECRET, "m", BODY, timestamp=1_000)
    with pytest.raises(WebhookVerificationError, match=r"600 s in the past \(-600 s from now"):
        verify(SECRET, old, BODY, now=1_600)
    with pytest.raises(WebhookVerificationError, match=r"600 s in the future \(\+600 s from now"):
        verify(SECRET, old, BODY, now=400)
