"""Full-information evaluation sets: every model's score and cost for every prompt.

Format (JSON lines, optionally gzip-compressed; see ``data/routing-eval/README.md``)::

    {"prompt_id": str, "split": "train"|"test", "task": str, "prompt": str,
     "scores": {model: float 0..1}, "cost_usd": {model: float}}

Lines that do not decode are counted (``problems``), not fatal here: the data-quality
step decides whether the file is usable. A model missing from a row is NaN.

**Evaluation rows never train.** A prompt is identified by its normalized text
(:func:`prompt_key`: case, punctuation, spacing, accents, invisible characters and look-alike
letters ignored), not by its
``prompt_id``: public benchmarks repeat the same prompt under different ids and splits.
:meth:`FullInfoDataset.training_split` drops every training row whose normalized text
also appears in another split, and :func:`prompt_groups` lets cross-validation and
holdouts keep every copy of a prompt on one side.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np

from bifrost.common.errors import ExitCode

#: The highest cost (USD) one call may have for a row to be valid. The dearest models bill
#: tens of dollars for a call at their full context; a thousand dollars is no real call but a
#: unit mistake (micro-dollars, tokens) or corrupt data, and a cost like 1e300 overflows the
#: means every cost share is taken of to inf. Rows above it are invalid, like a negative or
#: non-finite cost (:meth:`FullInfoDataset.valid_rows`).
MAX_COST_USD_PER_CALL = 1000.0


_SPLIT_FIELD = re.compile(rb'"split"\s*:\s*"([^"\\]{0,64})"')  # a broken line's split, when still readable
MAX_LINE_BYTES = 64 << 20  # one dataset row; the longest bundled line is ~0.1 MB


class DatasetError(ValueError):
    """The dataset file cannot be read at all (missing, unreadable, empty)."""

    exit_code = ExitCode.USAGE


# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties) plus characters that render
# as nothing or as a placeholder (U+2800 blank braille, U+1D159 null notehead, U+FFFC/U+FFFD), so a
# copy of a prompt carrying them reads the same to a person.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffd\U0001bca0-\U0001bca3\U0001d159\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]"
)
# A letter named after a Latin letter ("LATIN SMALL LETTER O WITH STROKE", "NEGATIVE SQUARED LATIN
# CAPITAL LETTER A", "REGIONAL INDICATOR SYMBOL LETTER A") reads as that letter: ø, ł, đ, 🅰 and 🇦
# do not decompose, and an outside test leaked prompts with them.
_NAMED_LATIN = re.compile(r"(?:LATIN|REGIONAL INDICATOR)\b.*\bLETTER ([A-Z])(?: |$)")

# Latin look-alikes in other scripts, after case folding: a near-copy spelt with them reads the
# same to a person (an outside test leaked test prompts into training with Cyrillic letters).
# The common Cyrillic and Greek ones; full-width forms are NFKC's already.
_LOOK_ALIKES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h", "ԁ": "d", "ԛ": "q",
    "ԝ": "w", "ӏ": "l", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
    "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ϳ": "j",
}  # fmt: skip

#: The version of :func:`prompt_key` an artifact's record of trained prompts was made with.
PROMPT_KEY_VERSION = 2


@functools.cache
def _confusables_table() -> dict[int, str]:
    """``str.translate`` table from every non-ASCII character Unicode's confusables data
    (UTS #39, as packaged by ``confusable-homoglyphs``) lists as a look-alike of ASCII to that
    ASCII: Greek capitals (Η, Ν), Armenian (օ, ս), Cherokee, small capitals, dotless ı, the minus
    sign, the modifier apostrophe… Applied before case folding, so a capital look-alike reads as
    the capital it imitates (an outside test leaked test prompts with Greek capitals and Armenian
    letters that the hand-written table below missed)."""
    text = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    table: dict[int, str] = {}
    for char, homoglyphs in json.loads(text).items():
        if len(char) != 1 or char.isascii():
            continue  # ASCII stays itself: "0" and "O", "1" and "l" are different prompts
        ascii_forms = sorted(
            {h["c"] for h in homoglyphs if h["c"].isascii() and h["c"].strip()},
            key=lambda form: (not form.isalnum(), len(form), form),
        )
        if ascii_forms:
            table[ord(char)] = ascii_forms[0]
    return table


@functools.cache
def _key_table() -> dict[int, str | None]:
    """``str.translate`` table of :func:`prompt_key`: look-alikes to their Latin letter;
    punctuation, separators (spaces), combining marks and invisible characters deleted."""
    table: dict[int, str | None] = {ord(k): v for k, v in _LOOK_ALIKES.items()}
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        # Deleted: punctuation, separators, marks, controls, format, surrogates, private use and
        # unassigned code points (they show as nothing or a box), modifier letters (ʼ, the Arabic
        # tatweel that only stretches a word) and the invisible characters above.
        if category[0] in "PZM" or category in ("Cc", "Cf", "Cs", "Co", "Cn", "Lm") or _INVISIBLE.match(char):
            table[code] = None
        elif code not in table and (named := _NAMED_LATIN.search(unicodedata.name(char, ""))):
            table[code] = named.group(1).lower()
    for code in range(0x80):  # ASCII: punctuation, spaces and controls go; letters and digits stay
        if unicodedata.category(chr(code))[0] in "PZC":
            table[code] = None
    return table


def prompt_key(text: str) -> str:
    """A prompt's identity for leakage and grouping: what is left of it when everything a person
    would not read as a different prompt is taken away.

    NFKC; every character Unicode's confusables data lists as a look-alike of ASCII read as that
    ASCII (before and after case folding); case-folded, decomposed; then punctuation, whitespace,
    combining marks (accents), modifier letters and invisible characters (format, control,
    private-use and unassigned code points, Unicode's default-ignorable ones, the blank braille
    pattern, placeholders) are removed, letters named after a Latin letter (ø, ł, 🅰, 🇦) read as
    it, and common lower-case Cyrillic and Greek look-alikes read as their Latin letter. Letters,
    digits and symbols (``+``, ``=``, ``$``, emoji) stay. Outside tests leaked held-out prompts
    into training with a trailing "." or U+1D159, Cyrillic "а"/"е", Greek capitals, Armenian or
    stroke letters, or zero-width characters. Coarse on
    purpose: two prompts that differ only in punctuation (``x = -1.5`` and ``x = 15`` too) are
    one prompt here, so they are never on both sides of a split.

    >>> prompt_key("What is\u200b 2+2?\ufeff") == prompt_key("what is 2+2\ufe0f\u3164\u034f.")
    True
    >>> prompt_key("Résumé: саfе") == prompt_key("resume cafe")
    True
    >>> prompt_key("HONEY \u2212 h\u0585ney") == prompt_key("\u0397\u039fNEY - honey")
    True
    >>> prompt_key("capita\u0142 \u00f8f Wh\uab7at \U0001f170\U0001d159\ue000") == prompt_key("capital of what a")
    True
    >>> prompt_key("2+2") == prompt_key("2=2")
    False
    """
    composed = unicodedata.normalize("NFKC", text)
    if composed.isascii():
        return composed.casefold().translate(_key_table())
    # Look-alikes before case folding (a capital imitates a capital) and after it (case folding turns
    # Cherokee small letters into Cherokee capitals, which imitate Latin ones).
    folded = composed.translate(_confusables_table()).casefold()
    folded = folded.translate(_confusables_table()).casefold()
    return unicodedata.normalize("NFD", folded).translate(_key_table())


def _prompt_key_v1(text: str) -> str:
    """:func:`prompt_key` before version 2 (NFKC, case-folded, invisible characters removed, whitespace
    collapsed): how artifacts trained before it recorded their trained prompts."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    visible = _INVISIBLE.sub("", folded) if not folded.isascii() else folded
    return " ".join(visible.split())


def prompt_digest(text: str, *, version: int = PROMPT_KEY_VERSION) -> str:
    """A short, stable digest of :func:`prompt_key` (64-bit BLAKE2b, hex): what an artifact records
    of the prompts it was trained on, so a successor is never compared with it on them.
    ``version``: of the key (1 reads an older artifact's record).

    >>> prompt_digest("What is  2+2?") == prompt_digest("what is 2+2")
    True
    """
    key = prompt_key(text) if version >= PROMPT_KEY_VERSION else _prompt_key_v1(text)
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def prompt_groups(prompts: Iterable[str]) -> np.ndarray:
    """Group id per prompt: rows with the same :func:`prompt_key` share one (ids in first-seen order)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(prompt_key(p), len(ids)) for p in prompts], dtype=np.int64)


class _Row(msgspec.Struct, forbid_unknown_fields=False):
    prompt_id: str
    split: str
    task: str
    prompt: str
    scores: dict[str, float | None]
    cost_usd: dict[str, float | None]


@dataclass(frozen=True)
class FullInfoDataset:
    """Prompts with every model's score and cost, as aligned arrays.

    ``scores`` and ``costs`` are ``(rows, models)``; columns follow ``models`` (sorted).
    """

    prompt_ids: list[str]
    prompts: list[str]
    tasks: np.ndarray
    splits: np.ndarray
    models: tuple[str, ...]
    scores: np.ndarray
    costs: np.ndarray
    source: str = ""
    lines: int = 0
    problems: list[str] = field(default_factory=list)
    #: malformed lines per split named in them ("" when the line does not say)
    malformed_by_split: dict[str, int] = field(default_factory=dict)
    context: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def take(self, rows: np.ndarray) -> FullInfoDataset:
        """The rows at these indices (or where this mask is true)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        return FullInfoDataset(
            prompt_ids=[self.prompt_ids[i] for i in rows],
            prompts=[self.prompts[i] for i in rows],
            tasks=self.tasks[rows],
            splits=self.splits[rows],
            models=self.models,
            scores=self.scores[rows],
            costs=self.costs[rows],
            source=self.source,
            lines=self.lines,
            problems=self.problems,
            malformed_by_split=self.malformed_by_split,
            context=self.context,
        )

    def split(self, name: str) -> FullInfoDataset:
        """Only the rows of one split (``train`` or ``test``)."""
        return self.take(self.splits == name)

    def sample(self, n: int, *, seed: int = 0) -> FullInfoDataset:
        """``n`` rows drawn without replacement (all rows if there are fewer)."""
        if n >= len(self):
            return self
        rows = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.take(rows)

    def training_split(self, name: str = "train") -> tuple[FullInfoDataset, int]:
        """(the usable rows of split ``name`` whose prompt is in no other split, how many were dropped).

        A training row whose normalized text (:func:`prompt_key`) appears in any other
        split (the evaluation split) is dropped, so nothing evaluated on was trained on. The rows
        come in a canonical order (:meth:`canonical`), so the file's row order does not change
        what is trained.
        """
        others = {prompt_key(p) for p, s in zip(self.prompts, self.splits) if s != name}
        split = self.split(name)
        split = split.take(split.valid_rows()).canonical()
        if not others:
            return split, 0
        keep = np.array([prompt_key(p) not in others for p in split.prompts], dtype=bool)
        return split.take(keep), int((~keep).sum())

    def canonical(self) -> FullInfoDataset:
        """These rows ordered by prompt digest, then prompt id, then text: an order that belongs to
        the rows, not to the file (shuffling the file's lines used to train another artifact)."""
        digests = [prompt_digest(p) for p in self.prompts]
        order = sorted(range(len(self)), key=lambda i: (digests[i], self.prompt_ids[i], self.prompts[i]))
        return self.take(np.asarray(order, dtype=np.int64))

    def valid_rows(self) -> np.ndarray:
        """Mask of rows whose every score is in [0, 1], every cost in [0, :data:`MAX_COST_USD_PER_CALL`]
        (so finite) and whose prompt is not empty."""
        ok_scores = (
            np.isfinite(self.scores).all(axis=1) & (self.scores >= 0).all(axis=1) & (self.scores <= 1).all(axis=1)
        )
        ok_costs = valid_costs(self.costs).all(axis=1)
        return ok_scores & ok_costs & np.array([bool(p.strip()) for p in self.prompts], dtype=bool)


def best_model(scores: np.ndarray) -> int:
    """Column of the best single model of a ``(rows, models)`` score array: the highest mean
    score, the first such column on a tie (columns follow ``models``, sorted).

    Everything "vs best" is measured against it: the data-quality check that it has a price,
    the evaluation's reference and the baseline's cost unit.

    >>> best_model(np.array([[0.5, 0.9, 0.9], [0.5, 0.3, 0.3]]))  # means 0.5, 0.6, 0.6
    1
    """
    return int(np.argmax(scores.mean(axis=0)))


def valid_costs(costs: np.ndarray) -> np.ndarray:
    """Mask of the costs a row may carry: finite, ≥ 0 and ≤ :data:`MAX_COST_USD_PER_CALL`.

    >>> valid_costs(np.array([0.0, 0.002, -1.0, 1e300, np.inf, np.nan])).tolist()
    [True, True, False, False, False, False]
    """
    return np.isfinite(costs) & (costs >= 0) & (costs <= MAX_COST_USD_PER_CALL)


def load_dataset(path: str | Path) -> FullInfoDataset:
    """Read a full-information dataset file (``.jsonl`` or ``.jsonl.gz``).

    Context windows for the guardrail are read from a sibling ``<name>.models.json``
    when its entries carry ``ctx_in``.

    Raises:
        DatasetError: the file is missing, unreadable, or has no decodable row.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"dataset {path} is a directory, not a JSONL(.gz) file")
    if not path.is_file():
        raise DatasetError(f"dataset {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    decoder = msgspec.json.Decoder(_Row)
    rows: list[_Row] = []
    problems: list[str] = []
    malformed_by_split: dict[str, int] = {}
    lines = 0
    try:
        with opener(path, "rb") as handle:
            number = 0
            # Bounded reads: a compressed file of one endless line (an outside test: 6.8 MB of gzip,
            # 1.5 GB without a newline) must not be read whole into memory.
            while line := handle.readline(MAX_LINE_BYTES + 1):
                number += 1
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    raise DatasetError(
                        f"dataset {path}: line {number} is longer than {MAX_LINE_BYTES / 2**20:g} MiB; "
                        "not a dataset row (split very long prompts, or fix the file)"
                    )
                if not line.strip():
                    continue
                lines += 1
                try:
                    rows.append(decoder.decode(line))
                except msgspec.DecodeError as exc:
                    problems.append(f"line {number}: {exc}")
                    named = _SPLIT_FIELD.search(line)
                    split = named.group(1).decode("utf-8", "replace") if named else ""
                    malformed_by_split[split] = malformed_by_split.get(split, 0) + 1
    except (OSError, EOFError) as exc:
        raise DatasetError(f"dataset {path} cannot be read: {exc}") from None
    if not rows:
        first = f"; first: {problems[0]}" if problems else ""
        raise DatasetError(f"dataset {path} has no readable rows ({lines} lines, {len(problems)} malformed{first})")
    models = tuple(sorted({m for row in rows for m in row.scores} | {m for row in rows for m in row.cost_usd}))
    scores = np.full((len(rows), len(models)), np.nan)
    costs = np.full((len(rows), len(models)), np.nan)
    column = {m: j for j, m in enumerate(models)}
    for i, row in enumerate(rows):
        for m, v in row.scores.items():
            if v is not None:
                scores[i, column[m]] = v
        for m, v in row.cost_usd.items():
            if v is not None:
                costs[i, column[m]] = v
    return FullInfoDataset(
        prompt_ids=[r.prompt_id for r in rows],
        prompts=[r.prompt for r in rows],
        tasks=np.array([r.task for r in rows], dtype=object),
        splits=np.array([r.split for r in rows], dtype=object),
        models=models,
        scores=scores,
        costs=costs,
        source=str(path),
        lines=lines,
        problems=problems,
        malformed_by_split=malformed_by_split,
        context=_context_windows(path, models),
    )


def models_file(path: Path) -> Path:
    """``x.jsonl.gz`` → ``x.models.json`` (the catalog the dataset was priced with)."""
    name = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return path.with_name(f"{name}.models.json")


def _context_windows(path: Path, models: tuple[str, ...]) -> dict[str, int]:
    file = models_file(path)
    try:
        catalog = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for model in models:
        entry = catalog.get(model) if isinstance(catalog, dict) else None
        ctx = entry.get("ctx_in") if isinstance(entry, dict) else None
        if isinstance(ctx, (int, float)) and ctx > 0:
            out[model] = int(ctx)
    return out
