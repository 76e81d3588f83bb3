"""Reading full-information datasets: the real file and small synthetic ones."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bifrost.storage.dataset import (
    MAX_COST_USD_PER_CALL,
    DatasetError,
    FullInfoDataset,
    best_model,
    load_dataset,
    models_file,
    valid_costs,
)
from tests.trainer.synthetic import make_dataset, row, write_lines


def test_real_dataset(real_dataset: FullInfoDataset) -> None:
    d = real_dataset
    assert len(d) == 6108 == d.lines
    assert len(d.models) == 9 and list(d.models) == sorted(d.models)
    assert d.problems == []
    assert d.scores.shape == d.costs.shape == (6108, 9)
    assert {str(s) for s in d.splits} == {"train", "test"}
    assert int((d.splits == "train").sum()) == 5608 and int((d.splits == "test").sum()) == 500
    assert len(set(d.tasks.tolist())) == 14
    assert d.valid_rows().all()
    for split in ("train", "test"):  # ids are unique within a split; some test prompts repeat train ones
        ids = [p for p, s in zip(d.prompt_ids, d.splits) if s == split]
        assert len(set(ids)) == len(ids)
    assert d.context == {}  # its model catalog has prices but no context windows
    assert d.source.endswith("llmrouter-dc.jsonl.gz")


def test_take_split_sample(real_dataset: FullInfoDataset) -> None:
    test = real_dataset.split("test")
    assert len(test) == 500 and set(test.splits.tolist()) == {"test"}
    first = real_dataset.take(np.array([0, 5, 7]))
    assert first.prompt_ids == [real_dataset.prompt_ids[i] for i in (0, 5, 7)]
    assert np.array_equal(first.scores, real_dataset.scores[[0, 5, 7]])
    mask = np.zeros(len(real_dataset), dtype=bool)
    mask[[1, 2]] = True
    assert real_dataset.take(mask).prompt_ids == real_dataset.prompt_ids[1:3]
    a, b = real_dataset.sample(100, seed=3), real_dataset.sample(100, seed=3)
    assert a.prompt_ids == b.prompt_ids and len(set(a.prompt_ids)) == 100
    assert real_dataset.sample(100, seed=4).prompt_ids != a.prompt_ids
    order = [real_dataset.prompt_ids.index(p) for p in a.prompt_ids]
    assert order == sorted(order)  # sampled rows keep the file order
    assert real_dataset.sample(10_000) is real_dataset
    assert len(real_dataset.split("nope")) == 0


@pytest.mark.parametrize("name", ["data.jsonl", "data.jsonl.gz"])
def test_synthetic_file_plain_and_gz(tmp_path: Path, name: str) -> None:
    path = write_lines(
        tmp_path / name,
        [
            row("p1", scores={"b": 0.5, "a": 1.0}, costs={"a": 0.2, "b": 0.1}),
            "",
            row(
                "p2", split="test", task="code", prompt="def f(): pass", scores={"a": 0.0, "b": None}, costs={"a": 0.3}
            ),
        ],
    )
    d = load_dataset(path)
    assert len(d) == 2 and d.lines == 2 and d.problems == []
    assert d.models == ("a", "b")
    assert d.prompt_ids == ["p1", "p2"]
    assert d.tasks.tolist() == ["math", "code"] and d.splits.tolist() == ["train", "test"]
    assert d.scores[0].tolist() == [1.0, 0.5]
    assert d.scores[1, 0] == 0.0 and np.isnan(d.scores[1, 1])  # null → NaN
    assert np.isnan(d.costs[1, 1])  # missing → NaN
    assert d.valid_rows().tolist() == [True, False]


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "d.jsonl",
        [
            row("p1"),
            "{not json",
            json.dumps({"prompt_id": "p2"}),  # missing fields
            json.dumps({**row("p3"), "scores": {"a": "high"}}),  # wrong type
            b"\xff\xfe garbage",
            row("p4"),
        ],
    )
    d = load_dataset(path)
    assert len(d) == 2 and d.lines == 6
    assert len(d.problems) == 4
    assert [p.split(":")[0] for p in d.problems] == ["line 2", "line 3", "line 4", "line 5"]


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    d = load_dataset(write_lines(tmp_path / "d.jsonl", [{**row("p1"), "extra": [1, 2]}]))
    assert len(d) == 1 and d.problems == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="is a directory, not a JSONL"):
        load_dataset(tmp_path)  # a folder is not a dataset


def test_no_readable_rows(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no readable rows \(2 lines, 2 malformed; first: line 1: "):
        load_dataset(write_lines(tmp_path / "bad.jsonl", ["nope", "{}"]))
    # Scores written as booleans: the message says what is wrong with them (an outside test read only
    # "6108 lines, 6108 malformed").
    boolean = '{"prompt_id": "a", "prompt": "p", "split": "train", "scores": {"m": true}, "cost_usd": {"m": 0.1}}'
    with pytest.raises(DatasetError, match=r"first: line 1: Expected `float \| null`, got `bool` - at `\$.scores"):
        load_dataset(write_lines(tmp_path / "bool.jsonl", [boolean]))
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"no readable rows \(0 lines"):
        load_dataset(empty)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DatasetError, match="cannot be read"):
        load_dataset(path)
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(gzip.compress(b"\n".join(json.dumps(row(f"p{i}")).encode() for i in range(50)))[:-20])
    with pytest.raises(DatasetError, match="cannot be read"):
        load_dataset(truncated)


def test_models_file_name() -> None:
    assert models_file(Path("/x/data.jsonl.gz")) == Path("/x/data.models.json")
    assert models_file(Path("/x/data.jsonl")) == Path("/x/data.models.json")
    assert models_file(Path("data.json")) == Path("data.models.json")


def test_context_windows_from_the_models_file(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "d.jsonl.gz",
        [row("p1", scores={"a": 1.0, "b": 0.5, "c": 0.1}, costs={"a": 1.0, "b": 0.5, "c": 0.1})],
    )
    (tmp_path / "d.models.json").write_text(
        json.dumps(
            {
                "a": {"ctx_in": 8192},
                "b": {"ctx_in": 0},
                "c": {"pricing": {}},
                "unused": {"ctx_in": 10},
            }
        )
    )
    assert load_dataset(path).context == {"a": 8192}
    (tmp_path / "d.models.json").write_text("not json")
    assert load_dataset(path).context == {}
    (tmp_path / "d.models.json").write_text("[1, 2]")
    assert load_dataset(path).context == {}


def test_costs_must_be_finite_non_negative_and_sane() -> None:
    # A per-call cost above MAX_COST_USD_PER_CALL (1e300, inf) is as invalid as a negative one:
    # kept, it would swamp (or overflow to inf) every mean cost shares are taken of.
    costs = np.array(
        [[0.001, 0.002], [MAX_COST_USD_PER_CALL, 0.0], [1e300, 0.001], [np.inf, 0.001], [0.001, -0.5], [0.001, 1000.01]]
    )
    data = make_dataset(np.full(costs.shape, 0.5), costs)
    assert data.valid_rows().tolist() == [True, True, False, False, False, False]
    assert valid_costs(costs).all(axis=1).tolist() == data.valid_rows().tolist()


def test_best_model_is_the_highest_mean_score_first_on_a_tie() -> None:
    scores = np.array([[0.2, 0.9, 0.9, 0.1], [0.4, 0.5, 0.5, 1.0]])  # means 0.3, 0.7, 0.7, 0.55
    assert best_model(scores) == 1
    assert best_model(scores[:, ::-1]) == 1  # reversed: columns 1 and 2 tie again, the first wins


def test_an_endless_line_is_refused_without_reading_it_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An outside test: 6.8 MB of gzip holding one 1.5 GB line without a newline ran out of memory.
    import gzip

    import bifrost.storage.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "MAX_LINE_BYTES", 2000)
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(json.dumps(row("p0")).encode() + b"\n" + b"x" * 100_000)
    with pytest.raises(DatasetError, match="line 2 is longer than"):
        load_dataset(path)
    ok = write_lines(tmp_path / "ok.jsonl", [row("p0"), row("p1", prompt="y" * 900)])  # under the limit
    assert len(load_dataset(ok)) == 2


def test_malformed_lines_are_counted_by_the_split_they_name(tmp_path: Path) -> None:
    good = [row(f"p{i}") for i in range(5)]
    broken = [b'{"prompt_id": "x", "split": "train", "task": "math", "prompt": "cut sho', b"not json at all"]
    data = load_dataset(write_lines(tmp_path / "d.jsonl", [*good, *broken]))
    assert len(data) == 5 and len(data.problems) == 2
    assert data.malformed_by_split == {"train": 1, "": 1}
    assert data.take(np.arange(2)).malformed_by_split == {"train": 1, "": 1}  # carried with the rows
