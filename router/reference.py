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
from bifrost.router.gbdt import TreeEnsemble
from bifrost.router.keys import PublicKeySource
from bifrost.router.policy import PolicyTables, choose, eligible

ARTIFACT_FILE = "artifact.json"
SIGNATURE_FILE = "artifact.sig"
DIGEST_FILE = "artifact.sha256"
_TOKENS = BASE_FEATURES.index("tokens_approx")


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes, and why.

    ``scores`` holds the utility of every model eligible in the bucket; ``probabilities``
    the triage model's P(cheap), P(mid), P(hard); ``features`` the vector to log when the
    decision was made from a prompt. The router is deterministic, so ``propensity`` is 1.
    """

    model: str
    bucket: str
    cluster_id: int
    scores: dict[str, float]
    probabilities: dict[str, float]
    features: list[float] | None = field(default=None, repr=False)
    guardrail: str | None = None
    propensity: float = 1.0


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
        self.ensemble = TreeEnsemble.from_model_string(artifact.gbdt.model)
        if self.ensemble.num_features != len(schema.names) or self.ensemble.num_class != len(BUCKETS):
            raise ArtifactVerificationError(
                f"artifact {artifact.version}: the triage model does not match its feature schema"
            )
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
    ) -> "ReferenceRouter":
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
        p = self.ensemble.predict_proba_one(x)
        size = np.array([x[_TOKENS] if tokens is None else tokens])
        chosen, bucket, utility, allowed = choose(self.tables, p[None, :], np.array([cluster]), size)
        _, applied = eligible(self.tables, bucket, size)
        models = self.tables.models
        row, ok = utility[0], allowed[0]
        return Decision(
            model=models[int(chosen[0])],
            bucket=BUCKETS[int(bucket[0])],
            cluster_id=cluster,
            scores={models[i]: float(row[i]) for i in np.flatnonzero(ok)},
            probabilities=dict(zip(BUCKETS, map(float, p))),
            features=logged,
            guardrail="context" if bool(applied[0]) else None,
        )

    def route_many(self, prompts: Sequence[str]) -> "BatchDecisions":
        """Route many prompts at once (same rule as :meth:`route`, vectorized after extraction)."""
        vectors, clusters = [], []
        for prompt in prompts:
            vector, cluster = self.extractor.extract(prompt)
            vectors.append(vector)
            clusters.append(cluster)
        X = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), len(self.artifact.gbdt.feature_schema.names))
        cluster_ids = np.asarray(clusters, dtype=np.int64)
        probabilities = self.ensemble.predict_proba(X) if len(X) else np.zeros((0, len(BUCKETS)))
        chosen, buckets, _, _ = choose(self.tables, probabilities, cluster_ids, X[:, _TOKENS])
        return BatchDecisions(models=self.tables.models, chosen=chosen, buckets=buckets, clusters=cluster_ids,
                              probabilities=probabilities, features=X)


@dataclass(frozen=True)
class BatchDecisions:
    """Decisions for many prompts as arrays: ``chosen`` indexes ``models``; ``buckets`` 0/1/2."""

    models: tuple[str, ...]
    chosen: np.ndarray
    buckets: np.ndarray
    clusters: np.ndarray
    probabilities: np.ndarray
    features: np.ndarray

    def model_names(self) -> list[str]:
        return [self.models[i] for i in self.chosen]
