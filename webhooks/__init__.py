"""Webhook delivery of alerts: every record of ``alerts`` POSTed, signed, to each endpoint.

:mod:`~bifrost.webhooks.signing` signs and verifies (Standard Webhooks: HMAC-SHA256 over
``id.timestamp.body``; receivers use :func:`~bifrost.webhooks.signing.verify`),
:mod:`~bifrost.webhooks.policy` decides retries (pure), :mod:`~bifrost.webhooks.state`
keeps the delivery in flight across restarts, :mod:`~bifrost.webhooks.deliverer` is the
consumer (one group per endpoint; the offset commits only once the alert was delivered
or dead-lettered).
"""

from bifrost.webhooks.signing import WebhookVerificationError, sign, verify

__all__ = ["WebhookVerificationError", "sign", "verify"]
