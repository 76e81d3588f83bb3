"""The reference router: load a verified artifact, route one request.

Used by the simulator, the evaluator and Python routers. Routing a prompt extracts its
feature vector (:mod:`bifrost.router.features`), which the caller logs in the
PostHook event together with the bucket and cluster id; routing an already-computed
feature vector skips the extraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bifrost.router.artifact import (
    BUCKETS,
    Artifact,
    ArtifactVerificationError,
    load_verified,
)
from bifrost.router.features import BASE_FEATURES, FeatureExtractor
from bifrost.router.keys import PublicKeySource
from bifrost.router.policy import PolicyTables, choose, eligible
from bifrost.router.prompt_models import Predictions, PromptScorer

ARTIFACT_FILE = "artifact.json"
SIGNATURE_FILE = "artifact.sig"
DIGEST_FILE = "artifact.sha256"
_TOKENS = BASE_FEATURES.index("tokens_approx")


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes, and why.

    ``scores`` holds the utility of every model eligible in the bucket; ``probabilities``
    the triage model's P(cheap), P(mid), P(hard); ``quality`` and ``cost_usd`` the
    per-prompt predictions q̂(m | x) and ĉ(m | x) of every model; ``features`` the vector
    to log when the decision was made from a prompt. The router is deterministic, so
    ``propensity`` is 1. With the escalation gate off (τ_hard = 0) the triage is not
    evaluated and ``probabilities`` is empty.
    """

    model: str
    bucket: str
    cluster_id: int
    scores: dict[str, float]
    probabilities: dict[str, float]
    features: list[float] | None = field(default=None, repr=False)
    guardrail: str | None = None
    propensity: float = 1.0
    quality: dict[str, float] = field(default_factory=dict, repr=False)
    cost_usd: dict[str, float] = field(default_factory=dict, repr=False)


class ReferenceRouter:
    """Routes requests with one artifact.

    Example:
        >>> router = ReferenceRouter.load("var/artifacts/v1/artifact.json", "var/keys/verify.pem")  # doctest: +SKIP
        >>> router.route("Write a Python function that reverses a list.").model  # doctest: +SKIP
        'qwen2.5-7b-instruct'
    """

    def __init__(self, artifact: Artifact) -> None:
        """Build a router from an artifact object the caller already trusts (see :meth:`load`)."""
        self.artifact = artifact.check()
        schema = artifact.gbdt.feature_schema
        self.extractor = FeatureExtractor(schema, artifact.centroids)
        self.scorer = PromptScorer(artifact)
        self.tables = PolicyTables.from_artifact(artifact)
        self.version = artifact.version

    @classmethod
    def load(
        cls,
        source: str | Path | bytes,
        public_key: PublicKeySource,
        *,
        signature: str | bytes | None = None,
        expected_sha256: str | None = None,
    ) -> ReferenceRouter:
        """Verify, then load an artifact.

        Args:
            source: a version directory, an ``artifact.json`` path (its ``artifact.sig``
                and ``artifact.sha256`` are read from beside it), or the artifact bytes.
            public_key: the trusted verification key.
            signature: required with bytes; overrides ``artifact.sig`` for a path.
            expected_sha256: the published digest; defaults to ``artifact.sha256`` if present.

        Raises:
            ArtifactVerificationError: missing signature, or bytes that fail verification.
        """
        if isinstance(source, bytes):
            data = source
            if signature is None:
                raise ArtifactVerificationError("no signature given with the artifact bytes")
        else:
            path = Path(source)
            if path.is_dir():
                path = path / ARTIFACT_FILE
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ArtifactVerificationError(f"cannot read artifact {path}: {exc.strerror}") from None
            if signature is None:
                sig_path = path.with_name(SIGNATURE_FILE)
                if not sig_path.exists():
                    raise ArtifactVerificationError(f"{path} has no {SIGNATURE_FILE} beside it; refusing to load")
                signature = sig_path.read_text(encoding="ascii", errors="replace")
            digest_path = path.with_name(DIGEST_FILE)
            if expected_sha256 is None and digest_path.exists():
                digest = digest_path.read_text(encoding="ascii", errors="replace").split()
                expected_sha256 = digest[0] if digest else ""
        return cls(load_verified(data, signature, public_key, expected_sha256=expected_sha256))

    def route(self, request: str | Sequence[float] | np.ndarray, *, tokens: float | None = None) -> Decision:
        """Route a prompt (text) or a logged feature vector.

        ``tokens`` overrides the prompt size the context guardrail uses (default: the
        ``tokens_approx`` feature).
        """
        if isinstance(request, str):
            vector, cluster = self.extractor.extract(request)
            return self._decide(np.asarray(vector, dtype=np.float64), cluster, tokens, vector)
        x = np.asarray(request, dtype=np.float64)
        return self._decide(x, self.extractor.cluster_of(x), tokens, None)

    def _decide(self, x: np.ndarray, cluster: int, tokens: float | None, logged: list[float] | None) -> Decision:
        if x.shape != (len(self.artifact.gbdt.feature_schema.names),):
            raise ValueError(
                f"feature vector has {x.shape[0] if x.ndim == 1 else x.shape} values, the schema "
                f"{len(self.artifact.gbdt.feature_schema.names)}"
            )
        predicted = self.scorer.predict_one(x)
        size = np.array([x[_TOKENS] if tokens is None else tokens])
        chosen, bucket, utility, allowed = choose(
            self.tables, predicted.probabilities, predicted.quality, predicted.cost, size
        )
        _, applied = eligible(self.tables, bucket, size)
        models = self.tables.models
        row, ok = utility[0], allowed[0]
        unit = self.scorer.cost_unit
        return Decision(
            model=models[int(chosen[0])],
            bucket=BUCKETS[int(bucket[0])],
            cluster_id=cluster,
            scores={models[i]: float(row[i]) for i in np.flatnonzero(ok)},
            probabilities=dict(zip(BUCKETS, map(float, predicted.probabilities[0]))) if self.scorer.gate else {},
            features=logged,
            guardrail="context" if bool(applied[0]) else None,
            quality=dict(zip(models, map(float, predicted.quality[0]))),
            cost_usd={m: float(c) * unit for m, c in zip(models, predicted.cost[0])},
        )

    def route_many(self, prompts: Sequence[str]) -> BatchDecisions:
        """Route many prompts at once (same rule as :meth:`route`, vectorized after extraction)."""
        vectors, clusters = [], []
        for prompt in prompts:
            vector, cluster = self.extractor.extract(prompt)
            vectors.append(vector)
            clusters.append(cluster)
        X = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), len(self.artifact.gbdt.feature_schema.names))
        return self.route_features(X, np.asarray(clusters, dtype=np.int64))

    def route_features(
        self, X: np.ndarray, clusters: np.ndarray | None = None, *, predicted: Predictions | None = None
    ) -> BatchDecisions:
        """Route many already-extracted feature vectors ``(rows, features)`` (same rule as :meth:`route`).

        ``predicted``: the scorer's predictions for ``X`` computed elsewhere (e.g.
        :func:`bifrost.router.batch.predict_many` for large batches); computed here when absent.
        """
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.artifact.gbdt.feature_schema.names))
        if clusters is None:
            k = self.artifact.gbdt.feature_schema.clusters
            clusters = np.argmax(X[:, X.shape[1] - k :], axis=1) if k and len(X) else np.zeros(len(X), dtype=np.int64)
        if predicted is None:
            predicted = self.scorer.predict(X)
        chosen, buckets, _, _ = choose(
            self.tables, predicted.probabilities, predicted.quality, predicted.cost, X[:, _TOKENS]
        )
        return BatchDecisions(
            models=self.tables.models,
            chosen=chosen,
            buckets=buckets,
            clusters=np.asarray(clusters, dtype=np.int64),
            probabilities=predicted.probabilities,
            features=X,
            quality=predicted.quality,
            cost=predicted.cost,
        )


@dataclass(frozen=True)
class BatchDecisions:
    """Decisions for many prompts as arrays: ``chosen`` indexes ``models``; ``buckets`` 0/1/2."""

    models: tuple[str, ...]
    chosen: np.ndarray
    buckets: np.ndarray
    clusters: np.ndarray
    probabilities: np.ndarray
    features: np.ndarray
    quality: np.ndarray | None = None  # (rows, models) q̂
    cost: np.ndarray | None = None  # (rows, models) normalized ĉ

    def model_names(self) -> list[str]:
        return [self.models[i] for i in self.chosen]
