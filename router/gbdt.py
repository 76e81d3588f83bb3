"""A numpy evaluator for LightGBM multiclass models, read from LightGBM's text format.

The artifact carries the model as LightGBM's own model string (so the trainer and any
LightGBM runtime can load it). This evaluator lets a router route without LightGBM's
native library and threads (whose tail latency is unstable on a busy host; see
``bench/results/router.md``): it walks every tree at
once with numpy, level by level, and matches LightGBM's numerical decisions exactly
(``value <= threshold`` goes left; NaN and zero handling per the node's missing type).
Categorical splits and linear trees are not supported (the trainer uses neither).

Several models (the triage classifier, one quality model and one cost model per LLM) are
evaluated in one walk: :meth:`TreeEnsemble.concat` stacks their trees into one ensemble
whose outputs are the models' outputs side by side. Trees that are no deeper than
``_COMPLETE_MAX_DEPTH`` are also kept as *complete* binary trees (a leaf above the bottom
level is repeated below itself), so the walk, for one row or a batch, is a fixed number of
levels with a handful of array operations each and no bookkeeping of which trees are still
descending (a batch walks 2–3× faster than the general walk); a row with NaN, or a model
with missing-value splits, takes the general walk.
"""

from __future__ import annotations

import numpy as np

_ZERO_THRESHOLD = 1e-35
_COMPLETE_MAX_DEPTH = 8
_CHUNK_NODES = 250_000  # rows × trees per chunk: larger chunks fall out of the CPU caches (2× slower at 4M)
_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2


class UnsupportedModel(ValueError):
    """The model string uses a LightGBM feature this evaluator does not implement."""


class TreeEnsemble:
    """All trees of a LightGBM model as flat arrays, evaluated in a vectorized walk.

    Example:
        >>> ensemble = TreeEnsemble.from_model_string(booster.model_to_string())  # doctest: +SKIP
        >>> ensemble.predict_proba_one(x)  # doctest: +SKIP
        array([0.7, 0.2, 0.1])
    """

    def __init__(
        self,
        *,
        num_class: int,
        num_features: int,
        roots: np.ndarray,
        tree_class: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        missing_type: np.ndarray,
        default_left: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        leaf_value: np.ndarray,
        objective: str,
    ) -> None:
        self.num_class = num_class
        self.num_features = num_features
        self.roots = roots
        self.tree_class = tree_class
        self.feature = feature
        self.threshold = threshold
        self.missing_type = missing_type
        self.default_left = default_left
        self.left = left
        self.right = right
        self.leaf_value = leaf_value
        self.objective = objective
        self._plain = not bool(np.any(missing_type != _MISSING_NONE))
        self._build_complete()

    @classmethod
    def from_model_string(cls, text: str) -> TreeEnsemble:
        """Parse LightGBM's text model format (``Booster.model_to_string()``)."""
        header, _, body = text.partition("\nTree=")
        head = _key_values(header)
        try:
            num_class = int(head.get("num_class", "1"))
            per_iteration = int(head.get("num_tree_per_iteration", str(num_class)))
            num_features = int(head["max_feature_idx"]) + 1
        except (KeyError, ValueError) as exc:
            raise UnsupportedModel(f"not a LightGBM model string: {exc}") from None
        objective = head.get("objective", "").split(" ")[0]
        blocks = ("Tree=" + body).split("\nTree=") if body else []
        roots, tree_class, leaf_values = [], [], []
        feature: list[int] = []
        threshold: list[float] = []
        missing: list[int] = []
        default_left: list[bool] = []
        left: list[int] = []
        right: list[int] = []
        leaf_offset = 0
        for index, block in enumerate(blocks):
            block = block.split("end of trees", 1)[0]
            values = _key_values(block)
            if values.get("is_linear", "0") != "0":
                raise UnsupportedModel("linear trees are not supported")
            if int(values.get("num_cat", "0")) != 0:
                raise UnsupportedModel("categorical splits are not supported")
            leaves = [float(v) for v in values["leaf_value"].split()]
            n_internal = int(values["num_leaves"]) - 1
            tree_class.append(index % per_iteration)
            if n_internal == 0:
                roots.append(-(leaf_offset + 1))
            else:
                node_offset = len(feature)
                roots.append(node_offset)
                decision = [int(v) for v in values["decision_type"].split()]
                if any(d & 1 for d in decision):
                    raise UnsupportedModel("categorical splits are not supported")
                feature.extend(int(v) for v in values["split_feature"].split())
                threshold.extend(float(v) for v in values["threshold"].split())
                missing.extend((d >> 2) & 3 for d in decision)
                default_left.extend(bool(d & 2) for d in decision)
                for name, target in (("left_child", left), ("right_child", right)):
                    for child in (int(v) for v in values[name].split()):
                        target.append(child + node_offset if child >= 0 else -(leaf_offset + ~child + 1))
            leaf_values.extend(leaves)
            leaf_offset += len(leaves)
        return cls(
            num_class=num_class,
            num_features=num_features,
            roots=np.asarray(roots, dtype=np.int64),
            tree_class=np.asarray(tree_class, dtype=np.int64),
            feature=np.asarray(feature, dtype=np.int64),
            threshold=np.asarray(threshold, dtype=np.float64),
            missing_type=np.asarray(missing, dtype=np.int8),
            default_left=np.asarray(default_left, dtype=bool),
            left=np.asarray(left, dtype=np.int64),
            right=np.asarray(right, dtype=np.int64),
            leaf_value=np.asarray(leaf_values, dtype=np.float64),
            objective=objective,
        )

    @classmethod
    def concat(cls, parts: list[TreeEnsemble]) -> TreeEnsemble:
        """One ensemble whose outputs are ``parts``' outputs side by side (same features).

        Output ``j`` of part ``i`` becomes output ``offset_i + j``, with ``offset_i`` the
        number of outputs of the parts before it; every tree keeps its leaves and splits.
        """
        if not parts:
            raise ValueError("nothing to concatenate")
        width = {p.num_features for p in parts}
        if len(width) != 1:
            raise ValueError(f"ensembles over different feature counts {sorted(width)}")
        roots: list[np.ndarray] = []
        tree_class: list[np.ndarray] = []
        leaves: list[np.ndarray] = []
        arrays: dict[str, list[np.ndarray]] = {name: [] for name in _NODE_ARRAYS}
        node_offset, leaf_offset, class_offset = 0, 0, 0
        for p in parts:

            def shift_node(a: np.ndarray, node_offset: int = node_offset, leaf_offset: int = leaf_offset) -> np.ndarray:
                shifted: np.ndarray = np.where(a >= 0, a + node_offset, a - leaf_offset)
                return shifted

            roots.append(shift_node(p.roots))
            tree_class.append(p.tree_class + class_offset)
            for name in _NODE_ARRAYS:
                value = getattr(p, name)
                arrays[name].append(shift_node(value) if name in ("left", "right") else value)
            leaves.append(p.leaf_value)
            node_offset += len(p.feature)
            leaf_offset += len(p.leaf_value)
            class_offset += p.num_class
        return cls(
            num_class=class_offset,
            num_features=width.pop(),
            roots=np.concatenate(roots),
            tree_class=np.concatenate(tree_class),
            leaf_value=np.concatenate(leaves),
            objective="+".join(p.objective for p in parts),
            **{name: np.concatenate(arrays[name]) for name in _NODE_ARRAYS},
        )

    @property
    def depth(self) -> int:
        """The deepest tree's number of split levels (0 for single-leaf trees only)."""
        return int(self._depths().max()) if len(self.roots) else 0

    def _depths(self) -> np.ndarray:
        depth = np.zeros(len(self.roots), dtype=np.int64)
        node = self.roots.copy()
        frontier = [(t, int(n), 0) for t, n in enumerate(node) if n >= 0]
        while frontier:
            t, n, d = frontier.pop()
            depth[t] = max(depth[t], d + 1)
            for child in (int(self.left[n]), int(self.right[n])):
                if child >= 0:
                    frontier.append((t, child, d + 1))
        return depth

    def _build_complete(self) -> None:
        """Complete-tree arrays for the one-row walk (see the module docstring)."""
        self._complete: tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._one_row: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        if not self._plain or not len(self.roots):
            return
        depth = self.depth
        if depth > _COMPLETE_MAX_DEPTH:
            return
        n_trees, n_internal = len(self.roots), (1 << depth) - 1
        feature = np.zeros((n_trees, max(n_internal, 1)), dtype=np.int64)
        threshold = np.full((n_trees, max(n_internal, 1)), np.inf)
        leaf = np.zeros((n_trees, 1 << depth))
        for t, root in enumerate(self.roots):
            stack = [(int(root), 0, 0)]  # (node or ~leaf, level, position within the level)
            while stack:
                node, level, position = stack.pop()
                if node < 0:
                    span = 1 << (depth - level)  # the leaf fills every bottom slot below it
                    leaf[t, position * span : (position + 1) * span] = self.leaf_value[-node - 1]
                    continue
                slot = (1 << level) - 1 + position
                feature[t, slot] = self.feature[node]
                threshold[t, slot] = self.threshold[node]
                stack.append((int(self.left[node]), level + 1, 2 * position))
                stack.append((int(self.right[node]), level + 1, 2 * position + 1))
        base = np.arange(n_trees, dtype=np.int64) * max(n_internal, 1)
        leaf_base = np.arange(n_trees, dtype=np.int64) * (1 << depth) - n_internal
        self._complete = (depth, n_internal, feature.ravel(), threshold.ravel(), leaf.ravel(), base, leaf_base)
        # The one-row walk keeps each tree's flat slot itself: the child of slot s (at position
        # s − base) is 2s + 1 − base (+1 to the right), and its leaf is s − base + leaf_base.
        self._one_row = (1 - base, leaf_base - base)

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Summed leaf values per class, ``(rows, num_class)`` (in chunks of rows: memory ∝ chunk × trees)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.shape[1] != self.num_features:
            raise ValueError(f"model expects {self.num_features} features, got {X.shape[1]}")
        chunk = max(1, _CHUNK_NODES // max(len(self.roots), 1))
        if X.shape[0] > chunk:
            return np.concatenate([self._raw_scores(X[lo : lo + chunk]) for lo in range(0, X.shape[0], chunk)])
        return self._raw_scores(X)

    def _raw_scores(self, X: np.ndarray) -> np.ndarray:
        if self._complete is None:
            return self._raw_scores_general(X)
        nan_rows = np.isnan(X).any(axis=1)
        if not nan_rows.any():
            return self._raw_scores_complete(X)
        out = np.empty((X.shape[0], self.num_class))
        out[~nan_rows] = self._raw_scores_complete(X[~nan_rows])
        out[nan_rows] = self._raw_scores_general(X[nan_rows])
        return out

    def _raw_scores_complete(self, X: np.ndarray) -> np.ndarray:
        """The fixed-depth walk of :meth:`raw_scores_one` for many rows (no NaN) at once."""
        assert self._complete is not None
        depth, _, feature, threshold, leaf, base, leaf_base = self._complete
        rows = X.shape[0]
        position = np.zeros((rows, len(base)), dtype=np.int64)
        flat_x = X.ravel()
        row_offset = (np.arange(rows, dtype=np.int64) * X.shape[1])[:, None]
        for _ in range(depth):
            slot = base + position
            position = 2 * position + 1 + (flat_x[row_offset + feature[slot]] > threshold[slot])
        contributions = leaf[leaf_base + position]
        return self._class_sums(contributions)

    def _raw_scores_general(self, X: np.ndarray) -> np.ndarray:
        rows = X.shape[0]
        node = np.broadcast_to(self.roots, (rows, self.roots.size)).copy()
        row_index = np.broadcast_to(np.arange(rows)[:, None], node.shape)
        active = node >= 0
        while active.any():
            n = node[active]
            value = X[row_index[active], self.feature[n]]
            go_left = value <= self.threshold[n]
            if not self._plain or np.isnan(value).any():
                go_left = self._missing_aware(value, n, go_left)
            node[active] = np.where(go_left, self.left[n], self.right[n])
            active = node >= 0
        leaves = -node - 1
        contributions = self.leaf_value[leaves]
        return self._class_sums(contributions)

    def _class_sums(self, contributions: np.ndarray) -> np.ndarray:
        """Per row, the leaf values ``(rows, trees)`` summed by the class each tree belongs to."""
        out = np.zeros((contributions.shape[0], self.num_class))
        for k in range(self.num_class):
            out[:, k] = contributions[:, self.tree_class == k].sum(axis=1)
        return out

    def _missing_aware(self, value: np.ndarray, n: np.ndarray, go_left: np.ndarray) -> np.ndarray:
        missing = self.missing_type[n]
        nan = np.isnan(value)
        value = np.where(nan & (missing != _MISSING_NAN), 0.0, value)
        go_left = value <= self.threshold[n]
        use_default = ((missing == _MISSING_ZERO) & (np.abs(value) <= _ZERO_THRESHOLD)) | (
            (missing == _MISSING_NAN) & nan
        )
        return np.where(use_default, self.default_left[n], go_left)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax of raw scores for multiclass), ``(rows, num_class)``."""
        raw = self.raw_scores(X)
        if self.num_class == 1:
            probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-raw))
            return probabilities
        raw -= raw.max(axis=1, keepdims=True)
        np.exp(raw, out=raw)
        raw /= raw.sum(axis=1, keepdims=True)
        return raw

    def raw_scores_one(self, x: np.ndarray) -> np.ndarray:
        """Summed leaf values per class of one feature vector (the per-request path).

        Same decisions as :meth:`raw_scores`, without the 2-D bookkeeping that dominates
        for a single row: only the trees still walking are touched at each level.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.num_features,):
            raise ValueError(f"model expects {self.num_features} features, got {x.shape}")
        if self._complete is not None and not np.isnan(x).any():
            depth, _, feature, threshold, leaf, base, _ = self._complete
            child_offset, leaf_offset = self._one_row
            slot = base
            for _ in range(depth):
                slot = 2 * slot + child_offset + (x.take(feature.take(slot)) > threshold.take(slot))
            return np.bincount(self.tree_class, weights=leaf.take(slot + leaf_offset), minlength=self.num_class)
        node = self.roots.copy()
        walking = np.flatnonzero(node >= 0)
        check_missing = not self._plain or bool(np.isnan(x).any())
        while walking.size:
            n = node[walking]
            value = x[self.feature[n]]
            go_left = value <= self.threshold[n]
            if check_missing:
                go_left = self._missing_aware(value, n, go_left)
            step = np.where(go_left, self.left[n], self.right[n])
            node[walking] = step
            walking = walking[step >= 0]
        return np.bincount(self.tree_class, weights=self.leaf_value[-node - 1], minlength=self.num_class)

    def predict_proba_one(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of one feature vector."""
        raw = self.raw_scores_one(x)
        if self.num_class == 1:
            probability: np.ndarray = 1.0 / (1.0 + np.exp(-raw))
            return probability
        raw -= raw.max()
        np.exp(raw, out=raw)
        normalized: np.ndarray = raw / raw.sum()
        return normalized


_NODE_ARRAYS = ("feature", "threshold", "missing_type", "default_left", "left", "right")


def _key_values(block: str) -> dict[str, str]:
    out = {}
    for line in block.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out
