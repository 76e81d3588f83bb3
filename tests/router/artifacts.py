"""Small, hand-made artifacts for router tests: known clusters, q̂, costs and probabilities.

The per-prompt quality models are single-split trees on ``code_symbols`` (code prompts have
brackets; the questions have none), so q̂ is ``QHAT[m][0]`` for code and ``QHAT[m][1]`` for
questions; the cost models are constants per request, so ĉ is ``CHAT[m]``.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import Artifact, Gbdt, PromptModels, Thresholds, encode, sign
from bifrost.router.features import BASE_FEATURES, FeatureSchema
from bifrost.router.text import HashedTfidf, fit_idf

CODE_PROMPTS = [
    "def add(a, b):\n    return a + b",
    "Write a python function def reverse(xs): return xs[::-1]",
    "class Stack:\n    def push(self, x): self.items.append(x)",
]
QUESTION_PROMPTS = [
    "What is the capital of France?",
    "Who wrote the play Hamlet?",
    "When did the second world war end?",
]
MODELS = ("large", "medium", "small")
# Q̂ per cluster: cluster 0 = code, cluster 1 = questions.
QHAT = {"large": [0.9, 0.80], "medium": [0.6, 0.78], "small": [0.2, 0.70]}
CHAT = {"large": 1.0, "medium": 0.3, "small": 0.1}
BUCKETS = {"cheap": ["small"], "mid": ["medium", "small"], "hard": ["large", "medium", "small"]}


CODE_SYMBOLS = BASE_FEATURES.index("code_symbols")
COST_UNIT = 0.001


def _tree(index: int, leaves: list[float], split: tuple[int, float] | None) -> str:
    values = " ".join(repr(float(v)) for v in leaves)
    if split is None:
        return (
            f"Tree={index}\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\n"
            f"left_child=\nright_child=\nleaf_value={values}\nleaf_weight=\nleaf_count=\ninternal_value=\n"
            f"internal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n"
        )
    feature, threshold = split
    return (
        f"Tree={index}\nnum_leaves=2\nnum_cat=0\nsplit_feature={feature}\nsplit_gain=1\nthreshold={threshold!r}\n"
        f"decision_type=2\nleft_child=-1\nright_child=-2\nleaf_value={values}\nleaf_weight=1 1\nleaf_count=1 1\n"
        f"internal_value=0\ninternal_weight=0\ninternal_count=2\nis_linear=0\nshrinkage=1\n\n"
    )


def model_string(trees: list[str], num_features: int, objective: str, num_class: int = 1) -> str:
    """A LightGBM text model around the given tree blocks."""
    header = (
        f"tree\nversion=v4\nnum_class={num_class}\nnum_tree_per_iteration={num_class}\nlabel_index=0\n"
        f"max_feature_idx={num_features - 1}\nobjective={objective}\n"
        f"feature_names={' '.join(f'f{i}' for i in range(num_features))}\n"
        f"feature_infos={' '.join(['none'] * num_features)}\ntree_sizes={' '.join(str(len(t)) for t in trees)}\n\n"
    )
    return (
        header + "".join(trees) + "end of trees\n\nfeature_importances:\n\nparameters:\nend of "
        "parameters\n\npandas_categorical:null\n"
    )


def quality_model_string(code: float, question: float, num_features: int) -> str:
    """q̂ = ``code`` for prompts with code symbols, ``question`` otherwise (raw logits, calibration [1, 0])."""
    logit = lambda p: float(np.log(p / (1.0 - p)))  # noqa: E731
    return model_string([_tree(0, [logit(question), logit(code)], (CODE_SYMBOLS, 0.5))], num_features, "cross_entropy")


def cost_model_string(usd_per_request: float, num_features: int) -> str:
    """ĉ = ``usd_per_request`` for every prompt (a constant gamma model: raw = log cost)."""
    return model_string([_tree(0, [float(np.log(usd_per_request))], None)], num_features, "gamma")


def prompt_models(
    num_features: int, qhat: dict[str, list[float]] | None = None, chat: dict[str, float] | None = None
) -> PromptModels:
    qhat = qhat or QHAT
    chat = chat or CHAT
    return PromptModels(
        framework="lightgbm",
        framework_version="test",
        quality={m: quality_model_string(q[0], q[1], num_features) for m, q in qhat.items()},
        calibration={m: [1.0, 0.0] for m in qhat},
        cost={m: cost_model_string(chat[m] * COST_UNIT, num_features) for m in qhat},
        cost_unit_usd=COST_UNIT,
        cost_per="request",
    )


def constant_model_string(probabilities: tuple[float, float, float], num_features: int) -> str:
    """A LightGBM multiclass model of single-leaf trees: it predicts ``probabilities`` for any input."""
    trees = []
    for index, p in enumerate(probabilities):
        trees.append(
            f"Tree={index}\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\n"
            f"left_child=\nright_child=\nleaf_value={float(np.log(p))!r}\nleaf_weight=\nleaf_count=\ninternal_value=\n"
            f"internal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n"
        )
    header = (
        f"tree\nversion=v4\nnum_class=3\nnum_tree_per_iteration=3\nlabel_index=0\nmax_feature_idx={num_features - 1}\n"
        f"objective=multiclass num_class:3\nfeature_names={' '.join(f'f{i}' for i in range(num_features))}\n"
        f"feature_infos={' '.join(['none'] * num_features)}\ntree_sizes={' '.join(str(len(t)) for t in trees)}\n\n"
    )
    return (
        header + "".join(trees) + "end of trees\n\nfeature_importances:\n\nparameters:\nend of "
        "parameters\n\npandas_categorical:null\n"
    )


def make_artifact(
    *,
    probabilities: tuple[float, float, float] = (0.2, 0.5, 0.3),
    alpha: float = 0.5,
    cheap: float = 0.5,
    hard: float = 0.5,
    penalties: dict[str, float] | None = None,
    context: dict[str, int] | None = None,
    model_string: str | None = None,
    version: str = "v-test-1",
    parent: str | None = None,
) -> Artifact:
    """A complete artifact with two clusters (code, questions) and three models."""
    triage_string = model_string
    text = fit_idf(CODE_PROMPTS + QUESTION_PROMPTS, dimensions=256)
    vectors = HashedTfidf(text).dense(CODE_PROMPTS + QUESTION_PROMPTS).astype(np.float64)
    centroids = np.stack([vectors[:3].mean(axis=0), vectors[3:].mean(axis=0)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    schema = FeatureSchema.build(text, 2)
    return Artifact(
        version=version,
        created_at="2025-01-01T00:00:00Z",
        parent=parent,
        alpha=alpha,
        thresholds=Thresholds(cheap=cheap, hard=hard),
        penalties=penalties or {m: 0.0 for m in MODELS},
        qhat={m: list(v) for m, v in QHAT.items()},
        chat=dict(CHAT),
        buckets={b: list(v) for b, v in BUCKETS.items()},
        centroids=[[round(float(v), 6) for v in row] for row in centroids],
        gbdt=Gbdt(
            framework="lightgbm",
            framework_version="test",
            model=triage_string or constant_model_string(probabilities, len(schema.names)),
            feature_schema=schema,
        ),
        prompt_models=prompt_models(len(schema.names)),
        context=context or {},
    ).check()


def signed(artifact: Artifact, key: Ed25519PrivateKey) -> tuple[bytes, str]:
    """(canonical bytes, base64 signature)."""
    data = encode(artifact)
    return data, sign(data, key)
