"""Signing webhook deliveries, and verifying them on the receiver's side (pure, stdlib only).

The scheme is `Standard Webhooks <https://www.standardwebhooks.com/>`_ (as Svix sends
it), so receivers can also use any of its libraries. Each delivery has three headers:

* ``webhook-id`` — the message id, the same on every retry of one alert (de-duplicate on it);
* ``webhook-timestamp`` — integer Unix seconds when this attempt was signed;
* ``webhook-signature`` — ``v1,<base64 HMAC-SHA256>`` of ``"{id}.{timestamp}.{body}"``
  (the raw body bytes), keyed with the secret; several space-separated signatures are
  allowed (a receiver accepts if one matches), which makes secret rotation possible.

The secret is ``whsec_<base64 of the key bytes>`` (the key is the decoded bytes) or,
for convenience, any other text of at least 24 characters (the key is its UTF-8 bytes).

Receiver side::

    from bifrost.webhooks import verify, WebhookVerificationError

    def handle(request):                      # any web framework
        body = request.body                   # the raw bytes, before any JSON parsing
        try:
            verify(SECRET, request.headers, body)      # raises on a bad or stale signature
        except WebhookVerificationError:
            return 401
        alert = json.loads(body)["data"]      # de-duplicate on request.headers["webhook-id"]
        return 204                            # any 2xx within the timeout; else it is retried
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
MIN_RAW_SECRET = 24


class WebhookSecretError(ValueError):
    """The configured secret is unusable (too short, bad base64)."""


class WebhookVerificationError(ValueError):
    """A delivery whose headers or signature do not check out (reject it, e.g. with 401)."""


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key of a secret (``whsec_<base64>`` → its bytes; other text → UTF-8 bytes)."""
    if isinstance(secret, bytes):
        if len(secret) < 16:
            raise WebhookSecretError("a webhook key must be at least 16 bytes")
        return secret
    text = secret.strip()
    if text.startswith("whsec_"):
        try:
            key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSecretError("the webhook secret starts with whsec_ but the rest is not base64") from None
        if len(key) < 16:
            raise WebhookSecretError("the webhook secret's key is shorter than 16 bytes")
        return key
    if len(text) < MIN_RAW_SECRET:
        raise WebhookSecretError(
            f"a webhook secret is whsec_<base64> or at least {MIN_RAW_SECRET} characters (e.g. `openssl rand -hex 32`)"
        )
    return text.encode("utf-8")


MAX_TIMESTAMP = 10**11  # Unix seconds (year ~5138); larger values are not timestamps


def signature(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>``: HMAC-SHA256 of ``{msg_id}.{timestamp}.{body}``.

    Example:
        >>> signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
        ...           b'{"test": 2432232314}')
        'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
    """
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def sign(secret: str | bytes, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three headers of one delivery attempt (``timestamp`` defaults to now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature(secret, msg_id, ts, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check a delivery: headers present, timestamp within ``tolerance_seconds`` of ``now``, one signature matching.

    ``headers`` may be any mapping (case-insensitive ones included); names are looked up
    in lower case too. Comparison is constant-time.

    Raises:
        WebhookVerificationError: what is wrong (missing header, stale timestamp, no matching signature).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, ts_text, given = (lowered.get(h, "") for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not ts_text or not given:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(ts_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    if not 0 <= ts <= MAX_TIMESTAMP:  # a float cannot even hold 400 nines (OverflowError)
        raise WebhookVerificationError("webhook-timestamp is out of range (not Unix seconds)")
    clock = time.time() if now is None else now
    offset = ts - clock  # negative: the timestamp is in the past
    if abs(offset) > tolerance_seconds:
        where = "in the past" if offset < 0 else "in the future"
        raise WebhookVerificationError(
            f"webhook-timestamp is {abs(offset):.0f} s {where} ({offset:+.0f} s from now; "
            f"tolerance {tolerance_seconds:.0f} s): a replay or a wrong clock"
        )
    expected = signature(secret, msg_id, ts, body).encode()
    for candidate in given.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return
    raise WebhookVerificationError("no webhook-signature matches the body")
