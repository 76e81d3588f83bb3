"""Prompt text → the triage feature vector the router logs (``RoutingEvent.features``).

The vector has two parts, named in :class:`FeatureSchema` (recorded in the artifact):

* ``BASE_FEATURES``: surface signals that need nothing learned: length (characters,
  approximate tokens, words, lines), code signals (keywords, brackets, indentation),
  math signals (numbers, operators, LaTeX, math words), reasoning and question-format
  signals (reasoning words, multiple-choice markers, numbered clues).
* ``sim_0 … sim_{k-1}``: cosine similarity of the prompt's hashed TF-IDF vector
  (:mod:`bifrost.router.text`) to each of the artifact's ``k`` centroids. The cluster id
  is the index of the largest one.

Bump ``FEATURE_SCHEMA_VERSION`` whenever a base feature changes meaning.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec
import numpy as np

from bifrost.router.text import DEFAULT_MAX_CHARS, HashedTfidf, TextSpec

FEATURE_SCHEMA_NAME = "bifrost-triage"
FEATURE_SCHEMA_VERSION = 1
CHARS_PER_TOKEN = 4.0

_CODE_KEYWORDS = re.compile(
    r"\b(?:def|return|import|class|lambda|elif|self|print|function|const|var|void|int|str|list|dict|"
    r"none|true|false|null|python|java|javascript|code|program|implement)\b"
)
_CODE_SYMBOLS = re.compile(r"[{}\[\]();]|==|!=|->|=>|::|\+=|<=|>=")
_FUNCTION_CALL = re.compile(r"\b[a-z_][a-z0-9_]*\([^()\n]{0,80}\)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_MATH_OPERATOR = re.compile(r"[+*/^=<>%]|(?<=\d)\s*-\s*(?=\d)")
_LATEX = re.compile(r"\\[a-z]+|\$")
_MATH_WORDS = re.compile(
    r"\b(?:sum|product|integer|integers|equation|solve|calculate|compute|probability|percent|"
    r"remainder|divisible|fraction|ratio|total|how many|how much|average|square|prime|digits?)\b"
)
_REASONING_WORDS = re.compile(
    r"\b(?:why|explain|reason|reasoning|step|steps|prove|therefore|because|deduce|infer|clue|"
    r"logic|determine|conclude|assume|hypothesis|following)\b"
)
_INSTRUCTION_WORDS = re.compile(r"\b(?:write|generate|create|compose|describe|list|summarize|translate|sentence)\b")
_QUESTION_START = re.compile(r"^\W*(?:q:\s*)?(?:what|who|whom|when|where|which|why|how|is|are|do|does|can)\b")
_CHOICE_MARKER = re.compile(r"^\s*\(?[a-e][.:)]\s|\([a-e]\)", re.MULTILINE)
_NUMBERED_LINE = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_WORD = re.compile(r"\w+")
_HOW_MANY = re.compile(r"\bhow m(?:any|uch)\b")


def _single_words(pattern: re.Pattern[str]) -> frozenset[str]:
    """The one-word alternatives of a ``\\b(?:a|b|…)\\b`` keyword pattern (``digits?`` → digit, digits)."""
    body = pattern.pattern[len(r"\b(?:") : -len(r")\b")]
    words: set[str] = set()
    for alternative in body.split("|"):
        if " " in alternative:
            continue
        if alternative.endswith("?"):
            words |= {alternative[:-2], alternative[:-1]}
        else:
            words.add(alternative)
    return frozenset(words)


# Keyword counts from one tokenization: a ``\b(?:…)\b`` alternation of
# single words matches exactly the maximal ``\w+`` runs equal to one of them, so counting
# tokens gives the same numbers as the four ``findall`` scans (asserted on the dataset in
# tests/router/test_text_features.py); the two-word "how many" / "how much" keep a regex.
_KEYWORD_SETS = tuple(_single_words(p) for p in (_MATH_WORDS, _CODE_KEYWORDS, _REASONING_WORDS, _INSTRUCTION_WORDS))
_KEYWORD_BITS: dict[str, int] = {}
for _bit, _words in enumerate(_KEYWORD_SETS):
    for _word in _words:
        _KEYWORD_BITS[_word] = _KEYWORD_BITS.get(_word, 0) | (1 << _bit)


def _keyword_counts(
    lower: str, words: list[str], ascii_text: bool, *, lowered: bool = False
) -> tuple[int, int, int, int]:
    """(math words, code keywords, reasoning words, instruction words) of the lower-cased text.

    ``words``: the text's ``\\w+`` runs (``lowered``: already lower-cased; other tokens
    such as punctuation marks may be among them, they are never keywords).
    """
    if not ascii_text:
        # Lower-casing can split a word ("İ" → "i" + a combining dot, not a \w): tokenize the
        # lower-cased text itself, as the scans read it; its tokens need no further lowering.
        words, lowered = _WORD.findall(lower), True
    counts = [0, 0, 0, 0]
    bits = _KEYWORD_BITS
    for word in words:
        hit = bits.get(word if lowered else word.lower())
        if hit:
            for bit in range(4):
                if hit >> bit & 1:
                    counts[bit] += 1
    counts[0] += len(_HOW_MANY.findall(lower)) if "how m" in lower else 0
    return counts[0], counts[1], counts[2], counts[3]


# The ASCII bytes each character count below counts, derived from the same str predicates
# (so the bytes.translate fast path counts exactly what the per-character path counts).
_ASCII_DIGIT = bytes(b for b in range(128) if chr(b).isdigit())
_ASCII_UPPER = bytes(b for b in range(128) if chr(b).isupper())
_ASCII_ALNUM_SPACE = bytes(b for b in range(128) if chr(b).isalnum() or chr(b).isspace())
# What ``\w`` and ``[\w\s]`` match among ASCII characters, read from the regex engine itself.
_ASCII_WORD = bytes(b for b in range(128) if re.fullmatch(r"\w", chr(b)))
_ASCII_WORD_SPACE = bytes(b for b in range(128) if re.fullmatch(r"[\w\s]", chr(b)))

BASE_FEATURES: tuple[str, ...] = (
    "chars",
    "tokens_approx",
    "words",
    "lines",
    "mean_word_chars",
    "frac_digits",
    "frac_upper",
    "frac_punct",
    "frac_non_ascii",
    "numbers",
    "math_operators",
    "latex",
    "math_words",
    "code_keywords",
    "code_symbols",
    "function_calls",
    "indented_lines",
    "code_fences",
    "reasoning_words",
    "instruction_words",
    "question_marks",
    "question_start",
    "ends_with_question",
    "choice_markers",
    "numbered_lines",
    "sentences",
)


class FeatureSchema(msgspec.Struct, frozen=True, kw_only=True):
    """Names and version of the feature vector, and the text representation behind it."""

    name: str = FEATURE_SCHEMA_NAME
    version: int = FEATURE_SCHEMA_VERSION
    names: list[str] = []
    text: TextSpec = TextSpec()
    clusters: int = 0

    @classmethod
    def build(cls, text: TextSpec, clusters: int) -> FeatureSchema:
        """The schema of base features followed by ``clusters`` similarity features."""
        return cls(names=[*BASE_FEATURES, *(f"sim_{c}" for c in range(clusters))], text=text, clusters=clusters)


_ASCII_MATH_OPERATOR = b"+*/^=<>%"
_MINUS_BETWEEN_DIGITS = re.compile(r"(?<=\d)\s*-\s*(?=\d)")


def _math_operators(text: str, raw: bytes | None) -> int:
    """``len(_MATH_OPERATOR.findall(text))``, faster: operator characters and the digit-minus-digit
    pattern never share a character, so their counts add up to the alternation's."""
    if raw is None:
        return len(_MATH_OPERATOR.findall(text))
    count = len(raw) - len(raw.translate(None, _ASCII_MATH_OPERATOR))
    return count + (len(_MINUS_BETWEEN_DIGITS.findall(text)) if "-" in text else 0)


def _char_counts(text: str) -> Iterable[tuple[str, int]]:
    """(character, count) of every distinct character; numpy's sort beats ``Counter`` on long text."""
    if len(text) < 200:
        return Counter(text).items()
    codes, counts = np.unique(
        np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32), return_counts=True
    )
    return zip(map(chr, codes.tolist()), counts.tolist())


def base_features(prompt: str, *, max_chars: int = DEFAULT_MAX_CHARS, tokens: list[str] | None = None) -> list[float]:
    """The ``BASE_FEATURES`` of one prompt, in order (lengths are of the whole prompt, the
    other signals of its first ``max_chars`` characters).

    ``tokens``: the hashed TF-IDF's tokens of the same characters
    (:meth:`~bifrost.router.text.HashedTfidf.tokens`), when the caller has them: on ASCII
    text they are the lower-cased words and one token per other non-space character, so
    words need no second scan (same values; asserted on the dataset in the tests).
    """
    n_chars = len(prompt)
    text = prompt[:max_chars]
    lower = text.lower()
    n = max(len(text), 1)
    ascii_text = text.isascii()
    raw: bytes | None = text.encode("ascii") if ascii_text else None
    if raw is not None and tokens is not None:
        word_chars = len(raw) - len(raw.translate(None, _ASCII_WORD))
        n_words = len(tokens) - len(raw.translate(None, _ASCII_WORD_SPACE))  # one token per other character
        words, lowered = tokens, True
    else:
        words, lowered = _WORD.findall(text), False
        n_words, word_chars = len(words), sum(map(len, words))
    if raw is not None:  # nearly every prompt: count in C, one pass per set
        digits = len(raw) - len(raw.translate(None, _ASCII_DIGIT))
        upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
        alnum_space = len(raw) - len(raw.translate(None, _ASCII_ALNUM_SPACE))
        non_ascii = 0
    else:  # one pass per distinct character, not per character
        digits = upper = non_ascii = alnum_space = 0
        for ch, k in _char_counts(text):
            digits += k if ch.isdigit() else 0
            upper += k if ch.isupper() else 0
            non_ascii += k if ord(ch) > 127 else 0
            alnum_space += k if (ch.isalnum() or ch.isspace()) else 0
    lines = text.split("\n")
    stripped = lower.rstrip()
    math_words, code_keywords, reasoning_words, instruction_words = _keyword_counts(
        lower, words, ascii_text, lowered=lowered
    )
    return [
        float(n_chars),
        n_chars / CHARS_PER_TOKEN,
        float(n_words),
        float(len(lines)),
        (word_chars / n_words) if n_words else 0.0,
        digits / n,
        upper / n,
        (len(text) - alnum_space) / n,
        non_ascii / n,
        float(len(_NUMBER.findall(text))),
        float(_math_operators(text, raw)),
        float(len(_LATEX.findall(lower))) if ("\\" in lower or "$" in lower) else 0.0,
        float(math_words),
        float(code_keywords),
        float(len(_CODE_SYMBOLS.findall(text))),
        float(len(_FUNCTION_CALL.findall(lower))) if "(" in lower else 0.0,
        float(sum(1 for line in lines if line.startswith(("    ", "\t")))),
        float(text.count("```")),
        float(reasoning_words),
        float(instruction_words),
        float(text.count("?")),
        1.0 if _QUESTION_START.match(lower) else 0.0,
        1.0 if stripped.endswith("?") else 0.0,
        float(len(_CHOICE_MARKER.findall(lower))),
        float(len(_NUMBERED_LINE.findall(text))),
        float(len(_SENTENCE_END.findall(text))),
    ]


class FeatureExtractor:
    """Computes the full feature vector and cluster id, given a schema and centroids.

    ``centroids`` are unit-length rows over the hashed TF-IDF space (``k × dimensions``).

    Example:
        >>> from bifrost.router.text import fit_idf
        >>> schema = FeatureSchema.build(fit_idf(["a b", "c d"], dimensions=16), clusters=1)
        >>> vector, cluster = FeatureExtractor(schema, [[0.25] * 16]).extract("a b")
        >>> len(vector) == len(schema.names), cluster
        (True, 0)
    """

    def __init__(self, schema: FeatureSchema, centroids: Sequence[Sequence[float]] | np.ndarray) -> None:
        if schema.name != FEATURE_SCHEMA_NAME or schema.version != FEATURE_SCHEMA_VERSION:
            raise ValueError(
                f"feature schema {schema.name} v{schema.version} is not the one this router computes "
                f"({FEATURE_SCHEMA_NAME} v{FEATURE_SCHEMA_VERSION})"
            )
        self.schema = schema
        self.vectorizer = HashedTfidf(schema.text)
        self.centroids = np.ascontiguousarray(np.asarray(centroids, dtype=np.float64).reshape(len(centroids), -1))
        if self.centroids.shape != (schema.clusters, schema.text.dimensions):
            raise ValueError(
                f"centroids are {self.centroids.shape}, the schema says {schema.clusters} × {schema.text.dimensions}"
            )
        if list(schema.names) != [*BASE_FEATURES, *(f"sim_{c}" for c in range(schema.clusters))]:
            raise ValueError("feature names differ from this router's base features plus sim_0..sim_{k-1}")
        self.n_base = len(BASE_FEATURES)
        # One row per TF-IDF dimension: a prompt's few hundred dimensions are gathered as
        # contiguous rows (5× faster than the same columns of ``centroids`` on long prompts).
        self._by_dimension = np.ascontiguousarray(self.centroids.T)

    def similarities(self, prompt: str) -> np.ndarray:
        """Cosine similarity of the prompt to every centroid."""
        return self._similarities(self.vectorizer.tokens(prompt))

    def _similarities(self, tokens: list[str]) -> np.ndarray:
        idx, weights = self.vectorizer.sparse_of_tokens(tokens)
        if idx.size == 0:
            return np.zeros(self.schema.clusters)
        similarities: np.ndarray = weights @ self._by_dimension[idx]
        return similarities

    def extract(self, prompt: str) -> tuple[list[float], int]:
        """(feature vector in schema order, cluster id) of one prompt."""
        tokens = self.vectorizer.tokens(prompt)
        sims = self._similarities(tokens)
        vector = base_features(prompt, max_chars=self.schema.text.max_chars, tokens=tokens)
        vector.extend(sims.tolist())
        return vector, int(np.argmax(sims)) if sims.size else 0

    def cluster_of(self, features: Sequence[float] | np.ndarray) -> int:
        """Cluster id encoded in a logged feature vector (largest similarity)."""
        sims = features[self.n_base :]
        if len(sims) != self.schema.clusters:
            raise ValueError(f"feature vector has {len(features)} values, the schema {len(self.schema.names)}")
        return int(np.argmax(sims)) if len(sims) else 0
