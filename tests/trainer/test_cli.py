"""trainer CLI entry points: exit codes, one-line errors, and the train → list → show → verify → rollback path."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import bifrost.trainer.bootstrap as bootstrap_module
from bifrost.router.artifact import Artifact, Thresholds, encode, sign
from bifrost.router.keys import generate_private_key, key_id, load_private_key, public_key_pem
from bifrost.router.reference import ARTIFACT_FILE, DIGEST_FILE
from bifrost.storage.artifact_store import ArtifactStore
from bifrost.storage.dataset import load_dataset
from bifrost.trainer.bootstrap import BootstrapConfig
from bifrost.trainer.cli import main_artifacts, main_evaluate, main_train
from bifrost.trainer.validate import TargetUnreachable
from tests.router.artifacts import CODE_PROMPTS, QUESTION_PROMPTS, make_artifact, prompt_models
from tests.trainer.conftest import write_sample_file
from tests.trainer.synthetic import row, write_lines

Main = Callable[[Sequence[str] | None], int]


class LenientConfig(BootstrapConfig, frozen=True, kw_only=True):
    """The default bootstrap config without a decision-latency budget (tests must not depend on speed)."""

    decision_slo_ms: float = 1e9


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 lines of the real dataset (the `sample` fixture's rows, train and test) in a gzip file."""
    return write_sample_file(tmp_path_factory.mktemp("data") / "sample.jsonl.gz", 1500, seed=0)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key from the environment, relative paths (var/keys/…) inside tmp_path, no latency budget."""
    for name in ("BIFROST_SIGNING_KEY", "BIFROST_SIGNING_KEY_FILE", "BIFROST_VERIFY_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bootstrap_module, "BootstrapConfig", LenientConfig)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing.pem"
    generate_private_key(path)
    return path


def run(main: Main, args: list[str | Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one CLI call."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single stderr line of a misuse, checked to be one clear line without a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def refusal_line(err: str) -> str:
    """The error line of a refused ``train`` without a report: one line, after the data-quality warnings it repeats
    (and the notes it gives before training, e.g. on ``--no-parent``)."""
    *warnings, last = err.strip().splitlines()
    assert all(w.startswith(("warning: data quality ", "note: ")) for w in warnings), err
    assert last.startswith("error: ") and "Traceback" not in err
    return last


def load_key(path: Path) -> Ed25519PrivateKey:
    """The private key in a key file."""
    return load_private_key(path, environ={})


def cheapest_only(artifact: Artifact, models: tuple[str, ...]) -> Artifact:
    """The hand-made artifact re-labelled for the dataset's models, routing everything to the cheapest one."""
    n_clusters = len(artifact.centroids)
    cheapest = "gemma-2-9b-it"  # the lowest price of the catalog (0.1 USD / M tokens)
    assert cheapest in models
    chat = {m: 1.0 for m in models}
    chat[cheapest] = 0.1
    qhat = {m: [0.5] * n_clusters for m in models}
    return msgspec.structs.replace(
        artifact,
        alpha=0.0,
        thresholds=Thresholds(cheap=0.0, hard=1.0),
        qhat=qhat,
        chat=chat,
        penalties={},
        context={},
        buckets={"cheap": [cheapest], "mid": [cheapest], "hard": list(models)},
        prompt_models=prompt_models(len(artifact.gbdt.feature_schema.names), qhat, chat),
    ).check()


# -- misuse ---------------------------------------------------------------------------------


def test_train_misuse(tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(main_train, ["--dataset", tmp_path / "missing.jsonl", "--key", key_file], capsys)
    assert code == 2 and out == ""
    assert one_error_line(err) == f"error: --dataset {tmp_path / 'missing.jsonl'} does not exist"

    code, out, err = run(main_train, ["--dataset", "/dev/null", "--key", key_file], capsys)
    assert code == 2 and one_error_line(err).startswith("error: --dataset /dev/null is not a regular file")

    code, _, err = run(main_train, ["--dataset", dataset_file, "--trials", "0", "--key", key_file], capsys)
    assert (
        code == 2
        and one_error_line(err) == "error: bifrost-opt train: argument --trials: must be between 1 and 100000, not '0'"
    )

    code, _, err = run(main_train, [], capsys)
    assert code == 2 and "the following arguments are required: --dataset" in one_error_line(err)

    code, _, err = run(main_train, ["--dataset", dataset_file, "--trials", "many"], capsys)
    assert code == 2 and "argument --trials: must be a whole number, not 'many'" in one_error_line(err)

    code, _, err = run(main_train, ["--dataset", dataset_file, "--key", tmp_path / "nokey.pem", "--quiet"], capsys)
    assert code == 2 and one_error_line(err) == f"error: key file {tmp_path / 'nokey.pem'} does not exist"
    assert not (tmp_path / "var").exists()


def test_train_and_evaluate_say_what_is_wrong_with_their_options(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(main_train, ["--dataset", tmp_path, "--key", key_file], capsys)
    assert (
        code == 2
        and one_error_line(err)
        == f"error: --dataset {tmp_path} is a directory; pass a full-information JSONL(.gz) file"
    )
    code, _, err = run(main_evaluate, ["v1", "--dataset", tmp_path, "--key", key_file], capsys)
    assert code == 2 and "is a directory" in one_error_line(err)
    for clusters in ("0", "-3", "1001", "1e9"):
        code, _, err = run(main_train, ["--dataset", dataset_file, "--clusters", clusters, "--key", key_file], capsys)
        assert code == 2 and "argument --clusters: must be" in one_error_line(err), clusters
    code, _, err = run(
        main_train, ["--dataset", dataset_file, "--clusters", "500", "--key", key_file, "--quiet"], capsys
    )
    assert code == 2 and "--clusters 500 is too many for 1" in one_error_line(err)
    assert not (tmp_path / "var" / "artifacts").exists()
    code, _, err = run(main_evaluate, ["v1", "--dataset", dataset_file, "--key", key_file, "--plot", "x.png"], capsys)
    assert code == 2 and one_error_line(err) == "error: --plot needs --frontier (the plot is of the frontier)"
    missing = tmp_path / "no" / "such" / "f.png"
    code, _, err = run(
        main_evaluate, ["v1", "--dataset", dataset_file, "--key", key_file, "--frontier", "--plot", missing], capsys
    )
    assert code == 2 and one_error_line(err) == f"error: --plot {missing}: folder {missing.parent} does not exist"
    assert not missing.parent.exists()
    code, _, err = run(
        main_evaluate, ["v1", "--dataset", dataset_file, "--key", key_file, "--frontier", "--plot", tmp_path], capsys
    )
    assert code == 2 and one_error_line(err).startswith(f"error: --plot {tmp_path} is a folder")
    jpeg = tmp_path / "frontier.jpg"
    code, _, err = run(
        main_evaluate, ["v1", "--dataset", dataset_file, "--key", key_file, "--frontier", "--plot", jpeg], capsys
    )
    assert code == 2 and one_error_line(err) == (
        f"error: --plot {jpeg}: the plot is written as PNG; give a file name ending in .png, "
        f"e.g. {tmp_path / 'frontier.png'}"
    )
    assert not jpeg.exists()


def test_evaluate_misuse(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    code, _, err = run(main_evaluate, ["v1", "--dataset", tmp_path / "nope.jsonl", "--key", key_file], capsys)
    assert code == 2 and "does not exist" in one_error_line(err)

    code, _, err = run(
        main_evaluate, ["v-unknown", "--dataset", dataset_file, "--store", store, "--key", key_file], capsys
    )
    assert code == 2
    assert one_error_line(err) == f"error: 'v-unknown' is neither a file nor a version in {store}"
    code, _, err = run(
        main_evaluate, [tmp_path, "--dataset", dataset_file, "--store", store, "--key", key_file], capsys
    )
    assert code == 2 and one_error_line(err).startswith(f"error: {tmp_path} is a folder without artifact.json")

    code, _, err = run(
        main_evaluate, ["current", "--dataset", dataset_file, "--store", store, "--key", key_file], capsys
    )
    assert code == 2 and one_error_line(err) == f"error: {store} has no current artifact"

    code, _, err = run(main_evaluate, ["v1", "--dataset", dataset_file, "--store", store], capsys)
    assert code == 2 and "no verification key" in one_error_line(err)

    code, _, err = run(main_evaluate, ["v1"], capsys)
    assert code == 2 and "--dataset" in one_error_line(err)


def test_artifacts_misuse(tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    code, _, err = run(main_artifacts, ["--store", store, "frobnicate"], capsys)
    assert code == 2 and "invalid choice: 'frobnicate'" in one_error_line(err)

    code, _, err = run(main_artifacts, [], capsys)
    assert code == 2 and "required" in one_error_line(err)

    for action in ("show", "verify", "rollback"):
        code, _, err = run(main_artifacts, ["--store", store, "--key", key_file, action, "v9"], capsys)
        assert code == 2, action
        assert one_error_line(err) == f"error: no complete version 'v9' in {store} (the store is empty)"

    code, _, err = run(main_artifacts, ["--store", store, "rollback"], capsys)
    assert code == 2 and "version" in one_error_line(err)

    code, out, err = run(main_artifacts, ["--store", store, "list"], capsys)
    assert code == 0 and out.strip() == f"no artifacts in {store}" and err == ""


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    for main in (main_train, main_evaluate, main_artifacts):
        code, out, _ = run(main, ["--help"], capsys)
        assert code == 0 and out.startswith("usage: bifrost-opt")


def test_data_quality_failure(tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = write_lines(tmp_path / "small.jsonl", [row(f"p{i}") for i in range(30)])
    store = tmp_path / "store"
    code, out, err = run(main_train, ["--dataset", small, "--store", store, "--key", key_file, "--quiet"], capsys)
    assert code == 1 and out == ""
    assert "## Data quality: FAILED" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: data quality check failed (train_rows:") and last.endswith("nothing was published")
    assert "Traceback" not in err
    # --json: the refusal is on stdout too, as one JSON object with the report.
    code, out, err = run(
        main_train, ["--dataset", small, "--store", store, "--key", key_file, "--quiet", "--json"], capsys
    )
    refusal = json.loads(out)
    assert code == 1 and refusal["refused"] is True and refusal["exit_code"] == 1
    assert refusal["error"].startswith("data quality check failed (train_rows:")
    assert any(c["name"] == "train_rows" and c["status"] == "fail" for c in refusal["report"]["checks"])
    assert ArtifactStore(store).list() == []


# -- the happy path -------------------------------------------------------------------------


def test_train_list_show_verify_evaluate_rollback(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    store = ArtifactStore(store_dir)
    train: list[str | Path] = [
        "--dataset",
        dataset_file,
        "--trials",
        "20",
        "--clusters",
        "8",
        "--store",
        store_dir,
        "--key",
        key_file,
        "--quiet",
    ]
    code, out, err = run(main_train, train, capsys)
    assert code == 0, err
    first = store.current()
    assert first is not None and [m.version for m in store.list()] == [first]
    lines = out.splitlines()
    assert lines[0].startswith(f"artifact {first} sha256 {store.meta(first).sha256} signed by ed25519:")
    assert lines[1] == f"published in {store_dir} (current)"
    assert any(line.startswith("test split (") for line in lines)
    folder_files = {p.name for p in (store_dir / first).iterdir()}
    assert {"report.json", "report.md", "evaluation-test.json", "evaluation-test.md"} <= folder_files

    # A second run validates against the first (same data, same seed: identical routing) and becomes current.
    code, _, err = run(main_train, train, capsys)
    assert code == 0, err
    second = store.current()
    assert second is not None and second != first and store.meta(second).parent == first
    report = json.loads((store_dir / second / "report.json").read_text())
    assert report["validation"]["parent"]["name"] == f"against {first}"

    code, out, _ = run(main_artifacts, ["--store", store_dir, "list"], capsys)
    assert code == 0
    listed = out.splitlines()
    assert len(listed) == 2
    assert listed[0].startswith(f"  {first}  created ") and listed[1].startswith(f"* {second}  created ")
    assert f"parent {first}" in listed[1]
    code, out, _ = run(main_artifacts, ["--store", store_dir, "--json", "list"], capsys)
    listing = json.loads(out)
    assert listing["current"] == second and [v["version"] for v in listing["versions"]] == [first, second]

    code, out, _ = run(main_artifacts, ["--store", store_dir, "show", first], capsys)
    assert code == 0 and f"version: {first}" in out and "current: False" in out and "sha256_matches: True" in out
    code, out, _ = run(main_artifacts, ["--store", store_dir, "--json", "show", second], capsys)
    shown = json.loads(out)
    assert shown["current"] is True and shown["clusters"] == 8 and shown["validation"]["passed"] is True

    key = load_key(key_file)
    code, out, _ = run(main_artifacts, ["--store", store_dir, "--key", key_file, "verify", first], capsys)
    assert code == 0
    assert out.strip() == f"OK {first}: sha256 {store.meta(first).sha256} and signature by {key_id(key)} verified"
    public = tmp_path / "verify.pem"
    public.write_bytes(public_key_pem(key))
    code, _, _ = run(main_artifacts, ["--store", store_dir, "--key", public, "verify", second], capsys)
    assert code == 0

    code, out, _ = run(
        main_evaluate,
        [first, "--dataset", dataset_file, "--store", store_dir, "--key", public, "--against", "current"],
        capsys,
    )
    assert code == 0 and out.startswith(f"## Evaluation of {first} on sample.jsonl.gz (test, ")
    assert f"| against {second} |" in out
    code, out, _ = run(
        main_evaluate,
        [store_dir / first, "--dataset", dataset_file, "--key", public, "--json", "--split", "all"],
        capsys,
    )
    assert code == 0 and json.loads(out)["rows"] == 1500

    code, out, _ = run(
        main_artifacts, ["--store", store_dir, "--key", key_file, "rollback", first, "--reason", "test"], capsys
    )
    assert code == 0 and out.strip() == f"current is now {first} (was {second})"
    assert store.current() == first and store.history()[-1].reason == "test"

    code, _, err = run(main_artifacts, ["--store", store_dir, "rollback", second], capsys)
    assert code == 2
    assert one_error_line(err) == f"error: {second} is newer than the current {first}; use activate to move forward"
    assert store.current() == first

    # Another signing key cannot vouch for the current parent: the error names the key used and its source.
    other = tmp_path / "other.pem"
    generate_private_key(other)
    code, out, err = run(main_train, [*train[:-2], other, "--quiet"], capsys)
    assert code != 0 and out == "" and "Traceback" not in err
    assert f"checked with signing key {key_id(load_key(other))} (--key {other})" in one_error_line(err)
    assert one_error_line(err).endswith("pass --key with the key that signed it, or --no-parent")
    assert store.current() == first

    # Tampering: verify fails with exit code 1 and FAILED, for the artifact and for a wiped digest.
    path = store_dir / second / ARTIFACT_FILE
    path.write_bytes(path.read_bytes().replace(b'"alpha":', b'"alpha": ', 1))
    code, out, err = run(main_artifacts, ["--store", store_dir, "--key", key_file, "verify", second], capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"FAILED {second}: sha256 mismatch") and "Traceback" not in err
    (store_dir / first / DIGEST_FILE).write_text("")
    code, _, err = run(main_artifacts, ["--store", store_dir, "--key", key_file, "verify", first], capsys)
    assert code == 1 and err.startswith(f"FAILED {first}:") and "Traceback" not in err


def test_retrains_are_compared_with_the_lineages_first_artifact(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A chain of retrains, each within the margin of its parent, drifted −0.030 from the first (an
    # outside test): from the third artifact on, validation also compares with the lineage's first.
    store_dir = tmp_path / "store"
    store = ArtifactStore(store_dir)
    train: list[str | Path] = [
        *("--dataset", dataset_file, "--trials", "20", "--clusters", "8"),
        *("--store", store_dir, "--key", key_file, "--quiet"),
    ]
    versions: list[str] = []
    for _ in range(3):
        code, _, err = run(main_train, train, capsys)
        assert code == 0, err
        current = store.current()
        assert current is not None
        versions.append(current)
    first, second, third = versions
    checks = {c["name"]: c for c in json.loads((store_dir / third / "report.json").read_text())["validation"]["checks"]}
    assert checks["quality_non_inferior"]["passed"] and f"against {second}" in checks["quality_non_inferior"]["message"]
    root = checks["quality_non_inferior_to_root"]
    assert root["passed"] and f"first artifact {first}" in root["message"]
    second_checks = json.loads((store_dir / second / "report.json").read_text())["validation"]["checks"]
    assert "quality_non_inferior_to_root" not in {c["name"] for c in second_checks}  # its parent is the first
    # The first artifact gone from the store: said, and the parent alone is compared with.
    shutil.rmtree(store_dir / first)
    code, _, err = run(main_train, train, capsys)
    assert code == 0, err
    assert f"note: the lineage's first artifact {first} cannot be compared with" in err
    assert "validated against its parent only" in err


def test_train_refused_by_validation_publishes_nothing(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    store = ArtifactStore(store_dir)
    key = load_key(key_file)
    # The current artifact routes everything to the cheapest model: any candidate that pays more fails.
    models = load_dataset(dataset_file).models
    data = encode(cheapest_only(make_artifact(version="v-cheap"), models))
    store.publish(data, sign(data, key))
    code, out, err = run(
        main_train,
        [
            "--dataset",
            dataset_file,
            "--trials",
            "20",
            "--clusters",
            "8",
            "--store",
            store_dir,
            "--key",
            key_file,
            "--quiet",
        ],
        capsys,
    )
    assert code == 1 and out == ""
    assert "## Validation: FAILED" in err and "| cost_not_higher | NO |" in err
    assert "warning: data quality split_overlap = 6 (threshold 0):" in err  # the warning before the refusal
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: candidate failed validation (cost_not_higher:")
    assert last.endswith("nothing was published")
    assert [m.version for m in store.list()] == ["v-cheap"] and store.current() == "v-cheap"

    # --no-parent skips the comparison; --no-publish keeps the store as it is; --json prints the report.
    code, out, err = run(
        main_train,
        [
            "--dataset",
            dataset_file,
            "--trials",
            "20",
            "--clusters",
            "8",
            "--store",
            store_dir,
            "--key",
            key_file,
            "--quiet",
            "--no-parent",
            "--no-publish",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["parent"] is None and report["validation"]["passed"] is True and report["signature"]
    assert [m.version for m in store.list()] == ["v-cheap"]


def test_train_creates_a_default_key_when_none_is_configured(
    tmp_path: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    code, out, err = run(
        main_train,
        [
            "--dataset",
            dataset_file,
            "--trials",
            "20",
            "--clusters",
            "8",
            "--store",
            store_dir,
            "--quiet",
            "--no-publish",
        ],
        capsys,
    )
    assert code == 0, err
    created = tmp_path / "var" / "keys" / "artifact-signing.pem"
    assert created.is_file() and stat.S_IMODE(created.stat().st_mode) == 0o600
    assert f"note: no signing key configured; created {created.resolve()} ({key_id(load_key(created))})" in err
    assert "not published (--no-publish)" in out
    assert created.read_text() not in err


def test_knob_frontier_baseline_and_stress(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    base: list[str | Path] = [
        "--dataset",
        dataset_file,
        "--trials",
        "15",
        "--clusters",
        "8",
        "--store",
        store_dir,
        "--key",
        key_file,
        "--quiet",
        "--no-parent",
    ]
    # The knob: a tight cost budget, then non-inferiority (≥ 90% of the best single model's score: on this
    # 1,500-row sample a 95% prediction bound for ~200 held-out prompts cannot promise 98%).
    code, out, err = run(main_train, [*base, "--max-cost-share", "0.3"], capsys)
    assert code == 0, err
    assert "search: best score at ≤ 30% of the reference's cost (95% bound on held-out prompts)" in out
    assert "logistic baseline (λ chosen on train)" in out and "artifact − baseline" in out
    assert "no test prompt was trained on" in out
    tight = ArtifactStore(store_dir).current()
    assert tight is not None
    report = json.loads((store_dir / tight / "report.json").read_text())
    assert report["search"]["cost_upper"] <= 0.3 and report["validation"]["candidate"]["cost_vs_best"] <= 0.3
    code, out, err = run(main_train, [*base, "--min-quality-share", "0.9"], capsys)
    assert code == 0, err
    assert "search: lowest cost with score ≥ 90% of the reference's" in out
    # --no-parent over a current artifact: said, and kept in the store's history (an outside test replaced a
    # better artifact with a worse one and nothing showed it).
    assert f"note: --no-parent: the store's current artifact {tight} will be replaced without a comparison" in err
    last = ArtifactStore(store_dir).history()[-1]
    assert last.reason.endswith(f"(--no-parent: replaced {tight} without a comparison)")
    current = ArtifactStore(store_dir).current()
    assert current is not None
    report = json.loads((store_dir / current / "report.json").read_text())
    assert report["search"]["objective"]["min_quality_share"] == 0.9
    assert report["search"]["objective"]["max_cost_share"] is None
    assert report["search"]["share_lower"] >= 0.9 and report["validation"]["candidate"]["score_vs_best"] >= 0.9
    published = [m.version for m in ArtifactStore(store_dir).list()]
    # Unreachable targets are refused with the figures the search reached; nothing is published.
    code, out, err = run(main_train, [*base, "--min-quality-share", "2"], capsys)
    assert code == 1 and out == ""
    assert refusal_line(err).startswith(
        "error: the requested target cannot be met: no searched policy scores ≥ "
        "200.0% of llama-3.1-nemotron-51b-instruct's score with 95% confidence"
    )
    assert "nothing was signed" in err
    code, _, err = run(main_train, [*base, "--max-cost-share", "0.02"], capsys)
    assert code == 1 and "no searched policy costs ≤ 2.0% of" in refusal_line(err)
    assert [m.version for m in ArtifactStore(store_dir).list()] == published

    # evaluate: the baseline comparison, and --frontier with its PNG.
    plot = tmp_path / "plots" / "frontier.png"
    plot.parent.mkdir()  # an existing folder: evaluate does not create folders
    code, out, err = run(
        main_evaluate,
        [tight, "--dataset", dataset_file, "--store", store_dir, "--key", key_file, "--frontier", "--plot", plot],
        capsys,
    )
    assert code == 0, err
    assert "Baseline (per-model logistic regression on the artifact's features" in out
    assert "Artifact − baseline:" in out and "(SE, paired bootstrap" in out
    assert "## Cost/quality frontier of" in out and "| λ | α | artifact score |" in out and "gate off" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"frontier plot written to {plot}" in err
    code, out, _ = run(
        main_evaluate,
        [
            tight,
            "--dataset",
            dataset_file,
            "--store",
            store_dir,
            "--key",
            key_file,
            "--frontier",
            "--plot",
            plot,
            "--json",
        ],
        capsys,
    )
    payload = json.loads(out)
    curve = payload["frontier"]["artifact_curve"]
    assert len(curve) == len(payload["frontier"]["baseline_curve"]) > 10
    assert curve[0]["alpha"] == 1.0 and curve[-1]["cost_vs_best"] <= curve[0]["cost_vs_best"]
    assert payload["evaluation"]["baseline"]["score_difference"]["rows"] == payload["evaluation"]["rows"]
    code, out, _ = run(
        main_evaluate,
        [tight, "--dataset", dataset_file, "--store", store_dir, "--key", key_file, "--no-baseline"],
        capsys,
    )
    assert code == 0 and "Baseline (" not in out

    # A stress variant: train and evaluate on it (the specialist adds a model, so the artifact routes to it).
    code, out, err = run(main_train, [*base, "--stress", "specialist"], capsys)
    assert code == 0, err
    special = ArtifactStore(store_dir).current()
    assert special is not None
    assert any(
        m.startswith("specialist-")
        for m in ArtifactStore(store_dir).verify(special, load_key(key_file).public_key()).models
    )
    code, out, err = run(
        main_evaluate,
        [
            special,
            "--dataset",
            dataset_file,
            "--store",
            store_dir,
            "--key",
            key_file,
            "--stress",
            "specialist",
            "--no-baseline",
        ],
        capsys,
    )
    assert code == 0, err
    # Evaluated on the plain dataset it has no labels for its specialist: a clear error.
    code, _, err = run(
        main_evaluate,
        [special, "--dataset", dataset_file, "--store", store_dir, "--key", key_file, "--no-baseline"],
        capsys,
    )
    assert code == 1 and "has labels for 9 of them" in one_error_line(err) and "Missing: specialist-" in err
    # The same with the baseline on (it is fitted first): the same clear error, no traceback.
    code, _, err = run(
        main_evaluate, [special, "--dataset", dataset_file, "--store", store_dir, "--key", key_file], capsys
    )
    assert code == 1 and "Missing: specialist-" in one_error_line(err)
    # A dataset with only two of the artifact's models (the outsider's twomodels file): the same.
    two = [json.loads(line) for line in __import__("gzip").open(dataset_file, "rt")]
    keep = ("llama-3.1-nemotron-51b-instruct", "gemma-2-9b-it")
    for line in two:
        line["scores"] = {m: line["scores"][m] for m in keep}
        line["cost_usd"] = {m: line["cost_usd"][m] for m in keep}
    two_file = write_lines(tmp_path / "two.jsonl", two)
    code, _, err = run(main_evaluate, [tight, "--dataset", two_file, "--store", store_dir, "--key", key_file], capsys)
    assert code == 1 and "has labels for 2 of them (gemma-2-9b-it, llama-3.1-nemotron-51b-instruct)" in one_error_line(
        err
    )

    code, _, err = run(main_train, [*base, "--max-cost-share", "0"], capsys)
    assert code == 2 and one_error_line(err) == (
        "error: --max-cost-share must be a share of the best single model's above 0 and at most 10 "
        "(e.g. 0.5 for half), not 0.0"
    )
    code, _, err = run(main_train, [*base, "--min-quality-share", "1e9"], capsys)
    assert code == 2 and "--min-quality-share must be a share" in one_error_line(err) and "at most 10" in err


def test_train_over_an_artifact_of_an_older_format(
    tmp_path: Path,
    key_file: Path,
    dataset_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store's current artifact was written by an older trainer (format 1): it cannot be compared with,
    # so the new one is trained without a parent and says so (instead of failing `bifrost-opt up`).
    from bifrost.router.artifact import ArtifactVersionError

    store_dir = tmp_path / "store"
    args: list[str | Path] = [
        "--dataset",
        dataset_file,
        "--trials",
        "5",
        "--clusters",
        "8",
        "--store",
        store_dir,
        "--key",
        key_file,
        "--quiet",
    ]
    assert run(main_train, args, capsys)[0] == 0
    old = ArtifactStore(store_dir).current()

    def refuse(self: ArtifactStore, version: str, key: object) -> None:
        raise ArtifactVersionError(f"artifact {version} has format 1; this router reads format 2")

    monkeypatch.setattr(ArtifactStore, "verify", refuse)
    code, _, err = run(main_train, args, capsys)
    assert code == 0, err
    assert f"note: artifact {old} has format 1; this router reads format 2; training without a parent" in err
    new = ArtifactStore(store_dir).current()
    assert new is not None and new != old and ArtifactStore(store_dir).meta(new).parent is None


def test_frontier_writes_a_png_only_where_asked(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    base: list[str | Path] = ["--dataset", dataset_file, "--store", store, "--key", key_file]
    code, _, err = run(main_train, [*base, "--trials", "5", "--clusters", "4", "--quiet", "--no-parent"], capsys)
    assert code == 0, err
    version = ArtifactStore(store).current()
    assert version is not None
    before = set(Path.cwd().iterdir())  # the autouse `isolated` fixture made tmp_path the cwd
    for extra in (["--json"], []):
        code, out, err = run(main_evaluate, [version, *base, "--frontier", *extra], capsys)
        assert code == 0, err
        assert set(Path.cwd().iterdir()) == before, "a PNG nobody asked for"
        assert "frontier plot written" not in err
    plot = tmp_path / "plots" / "f.png"
    plot.parent.mkdir()
    code, out, err = run(main_evaluate, [version, *base, "--frontier", "--json", "--plot", plot], capsys)
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"frontier plot written to {plot}" in err
    assert json.loads(out)["frontier"]["artifact_curve"]  # stdout stays JSON only


# -- warnings: evaluating on training rows, and the data-quality warnings of a refused train ----------------


def test_evaluate_on_training_rows_warns(tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = CODE_PROMPTS + QUESTION_PROMPTS
    lines = [
        row(
            f"{split}-{i}",
            split=split,
            prompt=prompt,
            scores={"large": 1.0, "medium": 0.9, "small": 0.5},
            costs={"large": 1.0, "medium": 0.3, "small": 0.1},
        )
        for split in ("train", "test")
        for i, prompt in enumerate(prompts)
    ]
    dataset = write_lines(tmp_path / "d.jsonl", lines)
    store_dir = tmp_path / "store"
    data = encode(make_artifact(version="v-hand"))
    ArtifactStore(store_dir).publish(data, sign(data, load_key(key_file)))
    evaluate: list[str | Path] = [
        "v-hand",
        "--dataset",
        dataset,
        "--store",
        store_dir,
        "--key",
        key_file,
        "--no-baseline",
    ]

    code, out, err = run(main_evaluate, [*evaluate, "--split", "train"], capsys)
    assert code == 0 and out.startswith("## Evaluation of v-hand on d.jsonl (train, 6 prompts)")
    assert err.startswith("warning: split 'train' is the training split") and "optimistic" in err
    assert "**Warning:** split 'train' is the training split" in out
    code, out, err = run(main_evaluate, [*evaluate, "--split", "train", "--json"], capsys)
    assert code == 0 and "optimistic" in err
    assert len(json.loads(out)["warnings"]) == 1 and "optimistic" in json.loads(out)["warnings"][0]
    code, out, err = run(main_evaluate, [*evaluate, "--split", "all", "--json"], capsys)
    assert code == 0 and err.startswith("warning: split 'all' includes the 6 rows of the training split 'train'")
    assert json.loads(out)["warnings"][0].startswith("split 'all' includes the 6 rows")
    code, out, err = run(main_evaluate, [*evaluate, "--json"], capsys)  # the test split: nothing to warn about
    assert code == 0 and err == "" and json.loads(out)["warnings"] == []
    code, out, err = run(main_evaluate, [*evaluate, "--split", "nosuch"], capsys)
    assert (
        code == 2
        and out == ""
        and one_error_line(err) == f"error: --split nosuch: {dataset} has splits test, train (or 'all')"
    )


def test_a_data_quality_refusal_repeats_the_warnings(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Too few rows (a failure) and a test row with the train rows' prompt (a warning: split_overlap).
    same = "What is 2 + 2?"
    small = write_lines(
        tmp_path / "small.jsonl",
        [row(f"p{i}", prompt=same) for i in range(30)] + [row("t0", prompt=same, split="test")],
    )
    train: list[str | Path] = ["--dataset", small, "--store", tmp_path / "store", "--key", key_file, "--quiet"]
    code, out, err = run(main_train, train, capsys)
    assert code == 1 and out == ""
    assert "warning: data quality split_overlap = 30 (threshold 0): rows of split 'train'" in err
    assert err.strip().splitlines()[-1].startswith("error: data quality check failed (train_rows:")
    code, out, err = run(main_train, [*train, "--json"], capsys)
    refusal = json.loads(out)
    assert code == 1 and refusal["refused"] is True
    assert [(c["name"], c["status"], c["value"]) for c in refusal["warnings"]] == [("split_overlap", "warn", 30)]


def test_a_refusal_after_the_quality_checks_repeats_their_warnings(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data passes with a warning (one train prompt is also a test prompt); the run is then refused
    # (here the knob's target, as a validation failure would be): the refusal repeats the warning.
    lines = [row(f"p{i}", prompt=f"question {i}: 2 + {i}?") for i in range(250)]
    dataset = write_lines(tmp_path / "d.jsonl", [*lines, row("t0", split="test", prompt="question 7: 2 + 7?")])

    def unreachable(*args: object, **kwargs: object) -> None:
        raise TargetUnreachable("no searched policy scores ≥ 99.0% of a's score")

    monkeypatch.setattr(bootstrap_module, "bootstrap_artifact", unreachable)
    train: list[str | Path] = ["--dataset", dataset, "--store", tmp_path / "store", "--key", key_file, "--quiet"]
    code, out, err = run(main_train, train, capsys)
    assert code == 1 and out == ""
    assert "warning: data quality split_overlap = 1 (threshold 0):" in err
    assert err.strip().splitlines()[-1].startswith("error: no searched policy scores")
    code, out, err = run(main_train, [*train, "--json"], capsys)
    refusal = json.loads(out)
    assert code == 1 and refusal["error"].startswith("no searched policy")
    assert [(c["name"], c["value"]) for c in refusal["warnings"]] == [("split_overlap", 1)]


def test_retraining_on_labels_that_moved_warns_even_when_quiet(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An outside test poisoned one model's labels (30% of its passes on train prompts set to 0):
    # validation compares with the parent on those labels only, so the retrain was signed unremarked.
    store_dir = tmp_path / "store"
    base: list[str | Path] = ["--trials", "20", "--clusters", "8", "--store", store_dir, "--key", key_file, "--quiet"]
    code, _, err = run(main_train, ["--dataset", dataset_file, *base], capsys)
    assert code == 0, err
    assert "warning: data quality split_overlap = 6" in err  # warnings are not progress: --quiet keeps them
    assert "label_shift" not in err and "best_model_shift" not in err
    # The same data again: nothing moved.
    code, _, err = run(main_train, ["--dataset", dataset_file, *base], capsys)
    assert "label_shift" not in err and "best_model_shift" not in err
    lines = [json.loads(line) for line in gzip.open(dataset_file, "rt")]
    best = max(lines[0]["scores"], key=lambda m: sum(r["scores"][m] for r in lines))
    rng = random.Random(0)
    for r in lines:
        if r["split"] == "train" and r["scores"][best] > 0.5 and rng.random() < 0.3:
            r["scores"][best] = 0.0
    poisoned = write_lines(tmp_path / "poisoned.jsonl", lines)
    code, _, err = run(main_train, ["--dataset", poisoned, *base], capsys)
    assert code in (0, 1), err  # signed or refused: either way the shift is named
    assert "warning: data quality label_shift = 1 (threshold |Δ mean score| < 10%" in err
    assert f"{best} 0." in err and "check it)" in err


def test_a_parent_routing_to_a_model_the_data_lacks_is_refused_before_training(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    store = ArtifactStore(store_dir)
    models = (*load_dataset(dataset_file).models, "ghost-model")
    data = encode(cheapest_only(make_artifact(version="v-ghost"), models))
    store.publish(data, sign(data, load_key(key_file)))
    train: list[str | Path] = ["--dataset", dataset_file, "--store", store_dir, "--key", key_file, "--quiet"]
    code, out, err = run(main_train, train, capsys)
    assert code == 1 and out == ""
    assert one_error_line(err) == (
        "error: the current artifact v-ghost routes to ghost-model, which sample.jsonl.gz has no labels for: "
        "validation could not compare the new artifact with it. Train on a dataset with every model the current "
        "artifact routes to, or pass --no-parent"
    )
    assert store.current() == "v-ghost"


def test_labels_without_signal_are_refused_as_such(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [row(f"p{i}", prompt=f"question {i}?", scores={"a": 1.0, "b": 1.0}) for i in range(300)]
    dataset = write_lines(tmp_path / "ones.jsonl", lines)
    code, out, err = run(
        main_train, ["--dataset", dataset, "--store", tmp_path / "store", "--key", key_file, "--quiet"], capsys
    )
    assert code == 1 and out == ""
    assert err.strip().splitlines()[-1].startswith("error: data quality check failed (label_signal:")


def test_a_damaged_index_without_a_backup_is_refused_before_training(
    tmp_path: Path, key_file: Path, dataset_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An outside test: a truncated index.json read as "no current artifact", so train skipped the
    # comparison with the current one and its publication started a new history over the old one.
    store_dir = tmp_path / "store"
    store = ArtifactStore(store_dir)
    data = encode(make_artifact(version="v-one"))
    store.publish(data, sign(data, load_key(key_file)))
    (store_dir / "index.json").write_text('{"current": "v-one", "hist')
    code, out, err = run(main_train, ["--dataset", dataset_file, "--store", store_dir, "--key", key_file], capsys)
    assert code != 0 and out == ""
    assert one_error_line(err).startswith(f"error: the index of {store_dir} is damaged and has no readable backup")
    assert (store_dir / "index.json").read_text() == '{"current": "v-one", "hist'
    assert [m.version for m in store.list()] == ["v-one"]
