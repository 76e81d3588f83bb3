"""Hashed TF-IDF and the triage feature vector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.router import features
from bifrost.router.features import (
    BASE_FEATURES,
    FEATURE_SCHEMA_NAME,
    FeatureExtractor,
    FeatureSchema,
    base_features,
)
from bifrost.router.text import DEFAULT_MAX_CHARS, TOKEN_PATTERN, HashedTfidf, TextSpec, fit_idf
from tests.router.artifacts import CODE_PROMPTS, QUESTION_PROMPTS

CORPUS = CODE_PROMPTS + QUESTION_PROMPTS + ["Solve 3x + 5 = 20 for x.", "Explain why the sky is blue, step by step."]


def feature(prompt: str, name: str) -> float:
    """One named base feature of a prompt."""
    return base_features(prompt)[BASE_FEATURES.index(name)]


# -- hashed TF-IDF --------------------------------------------------------------------------


def test_fit_idf_is_deterministic_and_smoothed() -> None:
    a = fit_idf(CORPUS, dimensions=128)
    b = fit_idf(iter(CORPUS), dimensions=128)
    assert a == b
    assert len(a.idf) == 128
    n = len(CORPUS)
    # Unseen buckets get the maximum weight log((1+n)/1)+1; seen ones less.
    assert max(a.idf) == pytest.approx(np.log(1 + n) + 1, abs=1e-6)
    assert min(a.idf) >= 1.0 - 1e-6


def test_vectors_are_identical_across_instances_and_unit_norm() -> None:
    spec = fit_idf(CORPUS, dimensions=256)
    one, two = HashedTfidf(spec), HashedTfidf(spec)
    for text in CORPUS:
        i1, w1 = one.sparse(text)
        i2, w2 = two.sparse(text)
        assert np.array_equal(i1, i2) and np.array_equal(w1, w2)
        assert float(w1 @ w1) == pytest.approx(1.0, abs=1e-12)
        assert np.all(np.diff(i1) > 0)  # sorted, unique buckets
    dense = one.dense(CORPUS)
    assert dense.dtype == np.float32 and dense.shape == (len(CORPUS), 256)
    assert np.allclose(np.linalg.norm(dense, axis=1), 1.0, atol=1e-6)


def test_unigram_buckets_are_crc32() -> None:
    vectorizer = HashedTfidf(TextSpec(dimensions=1000, ngrams=1))
    assert vectorizer.hashes("Hello, World") == [zlib.crc32(t.encode()) % 1000 for t in ("hello", ",", "world")]
    bigrams = HashedTfidf(TextSpec(dimensions=1000, ngrams=2)).hashes("Hello, World")
    assert bigrams[:3] == vectorizer.hashes("Hello, World") and len(bigrams) == 5


def test_hashing_is_stable_across_processes() -> None:
    """Another interpreter with another hash seed computes the same buckets and weights."""
    spec = fit_idf(CORPUS, dimensions=512)
    text = "Write a python function that returns the 10th Fibonacci number, then explain it."
    idx, weights = HashedTfidf(spec).sparse(text)
    script = (
        "import json, sys\n"
        "from bifrost.router.text import HashedTfidf, fit_idf\n"
        "corpus, text = json.loads(sys.stdin.read())\n"
        "i, w = HashedTfidf(fit_idf(corpus, dimensions=512)).sparse(text)\n"
        "print(json.dumps([i.tolist(), w.tolist()]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps([CORPUS, text]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    other_idx, other_weights = json.loads(out.stdout)
    assert other_idx == idx.tolist()
    assert other_weights == weights.tolist()


def test_empty_text_has_an_empty_vector() -> None:
    vectorizer = HashedTfidf(fit_idf(CORPUS, dimensions=64))
    idx, weights = vectorizer.sparse("   ")
    assert idx.size == 0 and weights.size == 0
    assert not vectorizer.dense([""]).any()


def test_repeated_tokens_weigh_sublinearly() -> None:
    vectorizer = HashedTfidf(TextSpec(dimensions=4096, ngrams=1))
    idx, weights = vectorizer.sparse("apple apple apple apple pear")
    ratio = weights.max() / weights.min()
    assert ratio == pytest.approx(1 + np.log(4))


def test_max_chars_truncates() -> None:
    vectorizer = HashedTfidf(TextSpec(dimensions=64, max_chars=5))
    assert vectorizer.hashes("abcde fghij") == vectorizer.hashes("abcde")


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported text representation"):
        HashedTfidf(TextSpec(hash="md5"))
    with pytest.raises(ValueError, match="idf has 3 weights for 8 dimensions"):
        HashedTfidf(TextSpec(dimensions=8, idf=[1.0, 1.0, 1.0]))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_unit_or_empty_vector(text: str) -> None:
    idx, weights = HashedTfidf(TextSpec(dimensions=97)).sparse(text)
    assert len(idx) == len(weights)
    if idx.size:
        assert float(weights @ weights) == pytest.approx(1.0)
        assert idx.min() >= 0 and idx.max() < 97


# -- base features --------------------------------------------------------------------------


def test_feature_vector_length_matches_schema() -> None:
    spec = fit_idf(CORPUS, dimensions=64)
    schema = FeatureSchema.build(spec, 3)
    assert schema.names == [*BASE_FEATURES, "sim_0", "sim_1", "sim_2"]
    assert schema.name == FEATURE_SCHEMA_NAME and schema.clusters == 3
    rng = np.random.default_rng(0)
    centroids = rng.random((3, 64))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    extractor = FeatureExtractor(schema, centroids)
    for prompt in [*CORPUS, "", "x" * 50_000]:
        vector, cluster = extractor.extract(prompt)
        assert len(vector) == len(schema.names)
        assert all(np.isfinite(vector))
        assert 0 <= cluster < 3
    assert len(base_features("anything")) == len(BASE_FEATURES)


def test_code_signals() -> None:
    code = "```python\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\n```"
    prose = "Tell me about the history of Rome"
    assert feature(code, "code_keywords") >= 3  # def, return, print, python
    assert feature(code, "code_symbols") > 0
    assert feature(code, "function_calls") >= 2
    assert feature(code, "indented_lines") == 1
    assert feature(code, "code_fences") == 2
    for name in ("code_keywords", "code_symbols", "function_calls", "indented_lines", "code_fences"):
        assert feature(prose, name) == 0, name


def test_math_signals() -> None:
    math = "Calculate the sum of 12 and 30, then compute 7 * 6 = 42. What is the probability?"
    assert feature(math, "numbers") == 5
    assert feature(math, "math_words") >= 3
    assert feature(math, "math_operators") >= 2
    assert feature(r"Evaluate $\frac{1}{2}$", "latex") >= 3
    assert feature("Tell me a story", "numbers") == 0
    assert feature("5 - 3", "math_operators") == 1
    assert feature("well-known", "math_operators") == 0


def test_question_and_reasoning_signals() -> None:
    question = "What is the capital of France?"
    assert feature(question, "question_start") == 1
    assert feature(question, "ends_with_question") == 1
    assert feature(question, "question_marks") == 1
    assert feature("Paris is the capital.", "question_start") == 0
    choices = "Which is a fruit?\nA. apple\nB. stone\nC. iron"
    assert feature(choices, "choice_markers") == 3
    assert feature("1. first\n2. second\n3) third", "numbered_lines") == 3
    assert (
        feature("Explain why, step by step, because it follows.", "reasoning_words") == 5
    )  # explain why step step because
    assert feature("Write a sentence and summarize it.", "instruction_words") == 3


def test_length_and_fraction_features() -> None:
    prompt = "Hello World 42\nsecond line"
    values = dict(zip(BASE_FEATURES, base_features(prompt)))
    assert values["chars"] == len(prompt)
    assert values["tokens_approx"] == len(prompt) / 4
    assert values["words"] == 5
    assert values["lines"] == 2
    assert values["frac_digits"] == pytest.approx(2 / len(prompt))
    assert values["frac_upper"] == pytest.approx(2 / len(prompt))
    assert values["frac_non_ascii"] == 0
    assert feature("héllo", "frac_non_ascii") == pytest.approx(1 / 5)
    assert base_features("") == [0.0, 0.0, 0.0, 1.0, *[0.0] * (len(BASE_FEATURES) - 4)]


def test_lengths_count_the_whole_prompt_but_signals_only_max_chars() -> None:
    prompt = "def f(): return 1\n" + "word " * 100
    short = base_features(prompt, max_chars=10)
    full = base_features(prompt)
    assert short[0] == full[0] == len(prompt)
    assert short[BASE_FEATURES.index("words")] < full[BASE_FEATURES.index("words")]


def test_text_features_read_at_most_2000_characters_by_default() -> None:
    # Routing time is bounded whatever the prompt's length: lengths count everything, the rest the first 2000.
    assert TextSpec().max_chars == 2000 and fit_idf(CORPUS, dimensions=64).max_chars == 2000
    assert fit_idf(CORPUS, dimensions=64, max_chars=50).max_chars == 50
    head = "Solve 3 - 4 + x. def f(x): return (x)\n" * 40
    prompt = head + "why? 7 + 8 $x$ " * 2000
    capped, prefix = base_features(prompt), base_features(prompt[:2000])
    assert capped[0] == len(prompt) and capped[1] == len(prompt) / 4
    assert capped[2:] == prefix[2:]
    spec = fit_idf(CORPUS, dimensions=256)
    vectorizer = HashedTfidf(spec)
    assert np.array_equal(vectorizer.buckets(prompt), vectorizer.buckets(prompt[:2000]))


_ALPHABET = list("ab xy1 2-+*/^=<>%\n\t(){}[];$\\.?!:_") + [
    "é",
    "٣",
    "Ω",
    "İ",
    "Ａ",
    "ß",
    "😀",
    "\u00a0",
    "\u2028",
    "\ud800",
]


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(_ALPHABET), max_size=120)
    | st.text(alphabet=st.sampled_from(_ALPHABET), min_size=200, max_size=600)
)
def test_fast_counts_equal_their_plain_definitions(text: str) -> None:
    # Character classes (bytes.translate / one pass per distinct character, counted by numpy on
    # long text, lone surrogates included) and the operator count
    # (characters + digit-minus-digit) equal the per-character and single-regex definitions.
    values = dict(zip(BASE_FEATURES, base_features(text)))
    n = max(len(text), 1)
    lower = text.lower()
    assert values["frac_digits"] == sum(ch.isdigit() for ch in text) / n
    assert values["frac_upper"] == sum(ch.isupper() for ch in text) / n
    assert values["frac_non_ascii"] == sum(ord(ch) > 127 for ch in text) / n
    assert values["frac_punct"] == (len(text) - sum(ch.isalnum() or ch.isspace() for ch in text)) / n
    assert values["math_operators"] == len(features._MATH_OPERATOR.findall(text))
    assert values["latex"] == len(features._LATEX.findall(lower))
    assert values["function_calls"] == len(features._FUNCTION_CALL.findall(lower))
    assert values["math_words"] == len(features._MATH_WORDS.findall(lower))


# -- similarity and clusters ----------------------------------------------------------------


def test_cluster_id_is_the_most_similar_centroid() -> None:
    spec = fit_idf(CORPUS, dimensions=256)
    vectorizer = HashedTfidf(spec)
    dense = vectorizer.dense(CODE_PROMPTS + QUESTION_PROMPTS).astype(np.float64)
    centroids = np.stack([dense[3:].mean(axis=0), dense[:3].mean(axis=0)])  # 0 = questions, 1 = code
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    extractor = FeatureExtractor(FeatureSchema.build(spec, 2), centroids)
    for prompt in QUESTION_PROMPTS:
        vector, cluster = extractor.extract(prompt)
        sims = vector[len(BASE_FEATURES) :]
        assert cluster == 0 and sims[0] > sims[1]
        assert extractor.cluster_of(vector) == 0
    for prompt in CODE_PROMPTS:
        assert extractor.extract(prompt)[1] == 1
    # Similarities are cosines against the dense vectors.
    idx, weights = vectorizer.sparse(CODE_PROMPTS[0])
    expected = centroids @ vectorizer.dense([CODE_PROMPTS[0]])[0].astype(np.float64)
    assert np.allclose(extractor.similarities(CODE_PROMPTS[0]), expected, atol=1e-6)
    assert np.array_equal(extractor.similarities(""), np.zeros(2))


def test_cluster_of_a_logged_vector_picks_the_largest_similarity() -> None:
    spec = fit_idf(CORPUS, dimensions=16)
    extractor = FeatureExtractor(FeatureSchema.build(spec, 3), np.eye(3, 16))
    base = [0.0] * len(BASE_FEATURES)
    assert extractor.cluster_of(base + [0.1, 0.7, 0.3]) == 1
    assert extractor.cluster_of(base + [0.9, 0.7, 0.3]) == 0
    with pytest.raises(ValueError, match="feature vector has"):
        extractor.cluster_of(base + [0.1])


def test_extractor_rejects_mismatched_schema_and_centroids() -> None:
    spec = fit_idf(CORPUS, dimensions=16)
    schema = FeatureSchema.build(spec, 2)
    with pytest.raises(ValueError, match="centroids are"):
        FeatureExtractor(schema, np.ones((3, 16)))
    with pytest.raises(ValueError, match="centroids are"):
        FeatureExtractor(schema, np.ones((2, 8)))
    with pytest.raises(ValueError, match="is not the one this router computes"):
        FeatureExtractor(FeatureSchema(names=schema.names, text=spec, clusters=2, version=99), np.ones((2, 16)))
    renamed = FeatureSchema(names=[*schema.names[:-1], "other"], text=spec, clusters=2)
    with pytest.raises(ValueError, match="feature names differ"):
        FeatureExtractor(renamed, np.ones((2, 16)))


def _keyword_scans(text: str) -> tuple[int, int, int, int]:
    """The four keyword counts as the original ``findall`` scans compute them."""
    lower = text.lower()
    return (
        len(features._MATH_WORDS.findall(lower)),
        len(features._CODE_KEYWORDS.findall(lower)),
        len(features._REASONING_WORDS.findall(lower)),
        len(features._INSTRUCTION_WORDS.findall(lower)),
    )


def test_keyword_counts_from_tokens_equal_the_regex_scans() -> None:
    # Keywords are counted from one tokenization; it must give exactly the scans' numbers.
    from bifrost.storage.dataset import load_dataset
    from tests.datasets import routing_eval

    prompts = list(load_dataset(routing_eval()).prompts)
    rng = np.random.default_rng(0)
    pieces = list("abcdefghijklmnopqrstuvwxyz_0123456789 \n\t.,;:()-?!'\"") + [
        "how many",
        "How Much",
        "how  many",
        "howmany",
        "digits",
        "digit_",
        "def",
        "Sum",
        "integers",
        "why",
        "LIST",
        "éxplain",
        "ß",
        "İ",
        "Ω≈ç√∫",
        "ǅ",
        "ﬁ",
        "Σ",
        "ΣUM",
        "İNTEGERS",
        "\u0307",
        "\u00a0",
        "数",
        "٣",
    ]
    for _ in range(20_000):
        prompts.append("".join(pieces[i] for i in rng.integers(len(pieces), size=int(rng.integers(0, 60)))))
    for text in prompts:
        text = text[:20_000]
        got = features._keyword_counts(text.lower(), features._WORD.findall(text), text.isascii())
        assert got == _keyword_scans(text), text[:80]


def test_base_features_from_the_tfidf_tokens_equal_the_scans() -> None:
    # The router passes the TF-IDF's tokens to base_features (no second word scan on ASCII
    # text); every value must be exactly what the scans give, at any max_chars.
    from bifrost.storage.dataset import load_dataset
    from tests.datasets import routing_eval

    prompts = list(load_dataset(routing_eval()).prompts)
    rng = np.random.default_rng(1)
    pieces = list("abcXYZ_019 \n\t\x0b\x0c\x1c\x1f\r.,;:()-?!'\"$\\{}[]*+=<>")
    pieces += ["def ", "How many ", "WRITE", "é", "İ", "ǅ"]
    for _ in range(5_000):
        prompts.append("".join(pieces[i] for i in rng.integers(len(pieces), size=int(rng.integers(0, 80)))))
    for max_chars in (DEFAULT_MAX_CHARS, 7):
        vectorizer = HashedTfidf(TextSpec(dimensions=64, max_chars=max_chars))
        for text in prompts:
            tokens = vectorizer.tokens(text)
            assert base_features(text, max_chars=max_chars, tokens=tokens) == base_features(
                text, max_chars=max_chars
            ), text[:80]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab_9 \u3000\n.,,。、我们的é✓Ωİ\u00a0\u2028Ab")), max_size=60))
def test_tokens_equal_the_token_pattern_on_any_script(text: str) -> None:
    vectorizer = HashedTfidf(TextSpec(dimensions=64))
    lower = text.lower()
    assert vectorizer.tokens(text) == TOKEN_PATTERN.findall(lower)


def test_tokens_of_text_without_spaces_equal_the_token_pattern() -> None:
    from bifrost.storage.dataset import load_dataset
    from tests.datasets import routing_eval

    vectorizer = HashedTfidf(TextSpec(dimensions=64, max_chars=10**9))
    samples = [
        "我们今天讨论一下这个问题的解决方案。请用Python写一个函数，返回列表的和！" * 40,
        "日本語のテキスト、カタカナ、ひらがな。ABC_def 123" * 30,
        "Ω≈ç√∫" * 400,
        "Ünïcödé wörds – mostly Latin; but ß and İ appear." * 20,
    ]
    for text in [*samples, *load_dataset(routing_eval()).prompts]:
        assert vectorizer.tokens(text) == TOKEN_PATTERN.findall(text.lower()), text[:60]
