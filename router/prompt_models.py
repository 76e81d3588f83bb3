"""Evaluate an artifact's tree models for many prompts or one: triage, q̂(m | x), ĉ(m | x).

The triage classifier and every LLM's quality and cost models are stacked into one
:class:`~bifrost.router.gbdt.TreeEnsemble` (:meth:`TreeEnsemble.concat`), so routing one
prompt is one tree walk. Outputs ``[0, 3)`` are the triage's raw class scores, then one
quality raw score per model, then one cost raw score per model (models in sorted order).

When the artifact's escalation gate is off (``thresholds.hard`` ≤ 0: every prompt is in
the ``hard`` bucket whatever the triage says), the triage cannot change a decision and is
not evaluated: its probabilities are reported as ``[0, 0, 1]``.

With ``prompt_models.linear``, each LLM's tree quality is averaged with a logistic
regression on the standardized feature vector (one small matrix product for all LLMs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bifrost.router.artifact import BUCKETS, COST_PER_REQUEST, Artifact, ArtifactFormatError
from bifrost.router.gbdt import TreeEnsemble, UnsupportedModel

_COST_FLOOR = 1e-300


@dataclass(frozen=True)
class Predictions:
    """Per-row triage probabilities, quality and normalized cost, ``(rows, 3 | models)``."""

    probabilities: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    def cost_usd(self, unit: float) -> np.ndarray:
        return self.cost * unit


GATE_OFF_PROBABILITIES = np.array([0.0, 0.0, 1.0])


class PromptScorer:
    """All tree models of one artifact, evaluated together (``strings``: the stacked models, in order)."""

    def __init__(self, artifact: Artifact) -> None:
        models = artifact.models
        schema = artifact.gbdt.feature_schema
        width = len(schema.names)
        pm = artifact.prompt_models
        try:
            triage = TreeEnsemble.from_model_string(artifact.gbdt.model)
            quality = [TreeEnsemble.from_model_string(pm.quality[m]) for m in models]
            cost = [TreeEnsemble.from_model_string(pm.cost[m]) for m in models]
        except (UnsupportedModel, KeyError, ValueError, IndexError) as exc:
            raise ArtifactFormatError(f"artifact {artifact.version}: a tree model cannot be read: {exc}") from None
        if triage.num_class != len(BUCKETS):
            raise ArtifactFormatError(f"artifact {artifact.version}: the triage model has {triage.num_class} classes")
        for name, part in [
            ("triage", triage),
            *((f"quality[{m}]", q) for m, q in zip(models, quality)),
            *((f"cost[{m}]", c) for m, c in zip(models, cost)),
        ]:
            if part.num_features != width:
                raise ArtifactFormatError(
                    f"artifact {artifact.version}: the {name} model reads {part.num_features} "
                    f"features, the feature schema has {width}"
                )
            if name != "triage" and part.num_class != 1:
                raise ArtifactFormatError(f"artifact {artifact.version}: the {name} model has {part.num_class} outputs")
        self.models = models
        self.gate = artifact.thresholds.hard > 0.0
        self.strings = [
            *([artifact.gbdt.model] if self.gate else []),
            *(pm.quality[m] for m in models),
            *(pm.cost[m] for m in models),
        ]
        self.ensemble = TreeEnsemble.concat([*([triage] if self.gate else []), *quality, *cost])
        self._offset = 3 if self.gate else 0
        self.n_models = len(models)
        calibration = np.array([pm.calibration[m] for m in models], dtype=np.float64).reshape(len(models), 2)
        self.scale, self.shift = calibration[:, 0], calibration[:, 1]
        self.cost_column = None if pm.cost_per == COST_PER_REQUEST else list(schema.names).index(pm.cost_per)
        self.cost_unit = float(pm.cost_unit_usd)
        self.linear = None
        if pm.linear is not None:
            lin = pm.linear
            weights = np.array([lin.weights[m] for m in models], dtype=np.float64).T  # (features + 1, models)
            self.linear = (
                np.asarray(lin.mean, dtype=np.float64),
                np.asarray(lin.scale, dtype=np.float64),
                np.ascontiguousarray(weights[:-1]),
                weights[-1].copy(),
                float(lin.blend),
            )

    def _split(self, raw: np.ndarray, X: np.ndarray) -> Predictions:
        raw = np.atleast_2d(raw)
        X = np.atleast_2d(X)
        n, o = self.n_models, self._offset
        if self.gate:
            triage = raw[:, :3] - raw[:, :3].max(axis=1, keepdims=True)
            np.exp(triage, out=triage)
            triage /= triage.sum(axis=1, keepdims=True)
        else:
            triage = np.tile(GATE_OFF_PROBABILITIES, (len(raw), 1))
        with np.errstate(over="ignore"):  # a huge feature (a 5M-character prompt) saturates p at 0 or 1
            quality = 1.0 / (1.0 + np.exp(-(self.scale * raw[:, o : o + n] + self.shift)))
            if self.linear is not None:
                mean, scale, weights, bias, blend = self.linear
                linear = 1.0 / (1.0 + np.exp(-(((X - mean) / scale) @ weights + bias)))
                quality = blend * quality + (1.0 - blend) * linear
        per_unit = np.exp(raw[:, o + n : o + 2 * n])
        size = 1.0 if self.cost_column is None else np.maximum(X[:, self.cost_column], 0.0)[:, None]
        cost = np.maximum(per_unit * size, _COST_FLOOR) / self.cost_unit
        return Predictions(probabilities=triage, quality=quality, cost=cost)

    def predict(self, X: np.ndarray) -> Predictions:
        """Predictions for rows of feature vectors ``(rows, features)``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if not len(X):
            z = np.zeros((0, self.n_models))
            return Predictions(probabilities=np.zeros((0, 3)), quality=z, cost=z.copy())
        return self._split(self.ensemble.raw_scores(X), X)

    def predict_one(self, x: np.ndarray) -> Predictions:
        """Predictions for one feature vector (the per-request path; rows of length 1)."""
        x = np.asarray(x, dtype=np.float64)
        return self._split(self.ensemble.raw_scores_one(x)[None, :], x[None, :])

    def with_raw(self, raw: np.ndarray, X: np.ndarray) -> Predictions:
        """Predictions from raw ensemble outputs computed elsewhere (e.g. LightGBM's predictor)."""
        return self._split(raw, X)
