"""Arms of a replay: verified reference routers per artifact version, loaded on first use.

Rollout-state can name a version the simulator has never seen (a new canary). The pool
loads it from the artifact store and verifies it (digest and Ed25519 signature) before
it routes a single request. A version that is missing or fails verification is
reported once, in the log and in :attr:`ArmPool.failures`, and is never routed with:
the replay serves its share with the last good arm instead.

Example:
    >>> store = ArtifactStore("var/artifacts")  # doctest: +SKIP
    >>> pool = ArmPool(load=store_loader(store, verify_key(None)))  # doctest: +SKIP
    >>> pool.get(store.current()).route("What is 2 + 2?").model  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bifrost.router.artifact import ArtifactError
from bifrost.router.keys import (
    DEFAULT_KEY_PATH,
    SIGNING_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    VERIFY_KEY_ENV,
    SigningKeyError,
    find_public_key,
)
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.artifact_store import ArtifactStore, StoreError

log = logging.getLogger("bifrost.simulate")

RouterLoader = Callable[[str], ReferenceRouter]
"""Returns a verified router for an artifact version, or raises :class:`ArmUnavailable`."""


class ArmUnavailable(Exception):
    """An arm cannot be routed with; ``permanent`` failures are not retried.

    A version missing from the store may appear later (retried); one whose bytes fail
    verification will not change (stored versions are immutable).
    """

    def __init__(self, version: str, reason: str, *, permanent: bool) -> None:
        super().__init__(f"arm {version}: {reason}")
        self.version = version
        self.reason = reason
        self.permanent = permanent


class KeyNotFound(ValueError):
    """No verification key was given or configured; the message says where to put one."""


@dataclass(slots=True)
class _Failure:
    reason: str
    permanent: bool
    at: float


class ArmPool:
    """Routers by arm version: preloaded ones, plus versions ``load`` verifies on first use.

    Args:
        routers: routers the caller already verified (e.g. the arms given at start-up).
        load: loads and verifies another version; raises :class:`ArmUnavailable`.
            Without it, only ``routers`` are available.
        retry_seconds: a version that was missing is looked up again after this long.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        routers: Mapping[str, ReferenceRouter] | None = None,
        *,
        load: RouterLoader | None = None,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._routers: dict[str, ReferenceRouter] = dict(routers or {})
        self._load = load
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._failures: dict[str, _Failure] = {}
        self.rerouted: Counter[str] = Counter()
        """Requests drawn for an unavailable arm and served by another, per version."""

    @property
    def failures(self) -> dict[str, str]:
        """Why each currently unavailable version cannot be routed with."""
        return {version: failure.reason for version, failure in self._failures.items()}

    def get(self, version: str) -> ReferenceRouter | None:
        """The verified router of ``version``, or None (reported once) if unavailable."""
        router = self._routers.get(version)
        if router is not None:
            return router
        failure = self._failures.get(version)
        if failure is not None and (failure.permanent or self._clock() - failure.at < self._retry_seconds):
            return None
        return self._try_load(version, known=failure is not None)

    def reject(self, version: str, reason: str) -> None:
        """Never route with ``version`` again (e.g. it routes to models the dataset lacks)."""
        self._routers.pop(version, None)
        self._fail(ArmUnavailable(version, reason, permanent=True), known=version in self._failures)

    def _try_load(self, version: str, *, known: bool) -> ReferenceRouter | None:
        if self._load is None:
            self._fail(ArmUnavailable(version, "not among the loaded arms", permanent=True), known=known)
            return None
        try:
            router = self._load(version)
        except ArmUnavailable as exc:
            self._fail(exc, known=known)
            return None
        if router.version != version:
            self._fail(
                ArmUnavailable(version, f"the stored artifact says it is {router.version}", permanent=True), known=known
            )
            return None
        self._routers[version] = router
        if self._failures.pop(version, None) is not None:
            log.info("event=simulate.arm_available arm=%s", version)
        return router

    def _fail(self, exc: ArmUnavailable, *, known: bool) -> None:
        self._failures[exc.version] = _Failure(exc.reason, exc.permanent, self._clock())
        if not known:
            log.error(
                "event=simulate.arm_unavailable arm=%s reason=%r action=%s",
                exc.version,
                exc.reason,
                "its share is served by the last good arm" + ("" if exc.permanent else "; retried later"),
            )


def store_loader(store: ArtifactStore, public_key: Ed25519PublicKey) -> RouterLoader:
    """A loader of verified routers from ``store`` (digest and signature checked)."""

    def load(version: str) -> ReferenceRouter:
        try:
            return store.router(version, public_key)
        except StoreError as exc:
            raise ArmUnavailable(version, str(exc), permanent=False) from None
        except ArtifactError as exc:
            raise ArmUnavailable(version, f"refused, fails verification: {exc}", permanent=True) from None
        except (OSError, ValueError) as exc:
            raise ArmUnavailable(version, f"cannot be read: {exc}", permanent=False) from None

    return load


def verify_key(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Ed25519PublicKey:
    """The artifact verification key: ``path``, else the environment, else the default key file.

    The environment is ``BIFROST_VERIFY_KEY``, else the public half of
    ``BIFROST_SIGNING_KEY`` / ``BIFROST_SIGNING_KEY_FILE``; the default file is
    ``var/keys/artifact-signing.pem`` (what ``train`` creates).

    Raises:
        SigningKeyError: the key given cannot be read.
        KeyNotFound: no key is given or configured.
    """
    key = find_public_key(path, environ=environ)
    if key is not None:
        return key
    raise KeyNotFound(
        f"no artifact verification key: pass --verify-key FILE, or set ${VERIFY_KEY_ENV} "
        f"(or ${SIGNING_KEY_ENV} / ${SIGNING_KEY_FILE_ENV}); {DEFAULT_KEY_PATH} does not exist"
    )


__all__ = ["ArmPool", "ArmUnavailable", "KeyNotFound", "RouterLoader", "SigningKeyError", "store_loader", "verify_key"]
