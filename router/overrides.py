"""Cluster overrides: "route this cluster's requests to that model", on top of an artifact.

What a ``cheaper_model`` recommendation proposes, in a form a Python router can apply at
once (before a retrain bakes it into the next artifact) and the simulator can replay:
the wrapped router decides as before, then a request of an overridden cluster is served by
the override's model. :func:`override_choices` is the same rule on arrays, which the
optimizer's counterfactual estimate uses, so what is estimated is exactly what is applied.

Example:
    >>> router = OverriddenRouter(ReferenceRouter.load("var/artifacts/v3", "verify.pem"),  # doctest: +SKIP
    ...                           [ClusterOverride(cluster=2, model="gemma-2-9b-it")])
    >>> router.route("What is 17 * 23?").model  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from bifrost.router.artifact import Artifact
from bifrost.router.reference import Decision, ReferenceRouter


@dataclass(frozen=True, slots=True)
class ClusterOverride:
    """Serve requests of ``cluster`` with ``model``."""

    cluster: int
    model: str


def override_choices(
    chosen: np.ndarray, clusters: np.ndarray, models: Sequence[str], overrides: Sequence[ClusterOverride]
) -> np.ndarray:
    """``chosen`` (indices into ``models``) with the overrides applied per row's cluster.

    Example:
        >>> override_choices(np.array([0, 1, 1]), np.array([5, 5, 6]), ["a", "b"], [ClusterOverride(5, "a")]).tolist()
        [0, 0, 1]
    """
    out = np.asarray(chosen, dtype=np.int64).copy()
    for override in overrides:
        if override.model not in models:
            raise ValueError(f"override model {override.model!r} is not one of the artifact's models")
        out[np.asarray(clusters) == override.cluster] = list(models).index(override.model)
    return out


class OverriddenRouter:
    """A :class:`ReferenceRouter` whose decisions for some clusters go to another model."""

    def __init__(self, base: ReferenceRouter, overrides: Sequence[ClusterOverride]) -> None:
        unknown = [o.model for o in overrides if o.model not in base.artifact.models]
        if unknown:
            raise ValueError(f"override models {unknown} are not in artifact {base.version}")
        self.base = base
        self.overrides = {o.cluster: o.model for o in overrides}

    @property
    def artifact(self) -> Artifact:
        return self.base.artifact

    @property
    def version(self) -> str:
        return self.base.version

    def route(self, request: str | Sequence[float] | np.ndarray, *, tokens: float | None = None) -> Decision:
        """The base decision, served by the override's model when the request's cluster has one."""
        decision = self.base.route(request, tokens=tokens)
        model = self.overrides.get(decision.cluster_id)
        return decision if model is None else replace(decision, model=model)
