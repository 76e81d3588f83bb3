"""Argument types of ``bifrost-opt``: router ids here; bounded numbers from :mod:`bifrost.common.argtypes`."""

from __future__ import annotations

import argparse

from bifrost.common.argtypes import bounded_float, bounded_int

__all__ = ["ROUTER_ID_MAX_LENGTH", "bounded_float", "bounded_int", "router_id"]

ROUTER_ID_MAX_LENGTH = 128
"""The wire contract's limit on ``router_id`` (``schemas.events.Label``)."""


def router_id(text: str) -> str:
    """A ``--router`` value: a non-blank id, at most as long as the schema allows.

    An empty ``--router ""`` would otherwise read as "no router given" (every router).

    Example:
        >>> router_id("web")
        'web'
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a router id, not blank")
    if len(text) > ROUTER_ID_MAX_LENGTH:
        raise argparse.ArgumentTypeError(f"must be at most {ROUTER_ID_MAX_LENGTH} characters, not {len(text)}")
    return text
