"""Command-line entry points of the trainer (wired into ``bifrost-opt`` by the CLI).

Each takes ``argv`` (without the command name) and returns an exit code: 0 success,
1 the work failed (data quality, validation, verification), 2 misuse (bad arguments,
missing files or keys, unknown versions). Failures print one clear line, no traceback.

Keys: signing uses ``--key FILE``, else ``BIFROST_SIGNING_KEY`` / ``BIFROST_SIGNING_KEY_FILE``,
else ``var/keys/artifact-signing.pem`` (``train`` creates it, owner-only, if absent).
Verification uses ``--key FILE`` (public or private PEM / base64), else
``BIFROST_VERIFY_KEY``, else the signing-key sources above.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.common.argtypes import bounded_int
from bifrost.common.errors import ExitCode, Unavailable, UsageError, exit_code_of, run_guarded
from bifrost.common.variables import ARTIFACT_STORE
from bifrost.router.artifact import Artifact, ArtifactVerificationError, ArtifactVersionError
from bifrost.router.keys import (
    DEFAULT_KEY_PATH,
    SIGNING_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    VERIFY_KEY_ENV,
    SigningKeyError,
    find_public_key,
    generate_private_key,
    key_id,
    load_private_key,
)
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.artifact_store import DEFAULT_ROOT, ArtifactStore, StoreError
from bifrost.storage.dataset import FullInfoDataset, load_dataset, prompt_key
from bifrost.trainer.evaluate import EvaluationError, evaluate_artifact, lineage_root, training_rows_warning
from bifrost.trainer.quality import (
    Check,
    DataQualityError,
    QualityThresholds,
    add_shift_from_parent,
    assess_dataset,
)
from bifrost.trainer.settings import TrainerSettings
from bifrost.trainer.stress import VARIANTS, stress_variant

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = int(ExitCode.OK), int(ExitCode.FAILURE), int(ExitCode.USAGE)
MAX_CLUSTERS = 1000
log = logging.getLogger("bifrost.trainer")


_Usage = UsageError  # misuse: message for the operator, exit code 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(f"{self.prog}: {message}")


def _guard(run: Callable[[], int]) -> int:
    """Run a command in the shared guard (:func:`run_guarded`): a failure that carries its
    exit code becomes one line on stderr (after its report) and that code."""
    try:
        return run_guarded(run, report_note="; nothing was published")
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


def _default_store() -> str:
    return os.environ.get(ARTIFACT_STORE.env) or ARTIFACT_STORE.default


def _lineage_root(store: ArtifactStore, parent: Artifact | None, public_key: Ed25519PublicKey) -> Artifact | None:
    """The first artifact of the parent's lineage, when it is another one and still in the store
    (a note says so when it cannot be compared with: removed, or signed with another key)."""
    version = lineage_root(parent)
    if parent is None or version is None or version == parent.version:
        return None
    try:
        return store.verify(version, public_key)
    except (StoreError, ArtifactVersionError, ArtifactVerificationError) as exc:
        _say(
            f"note: the lineage's first artifact {version} cannot be compared with ({exc}); the new artifact "
            "is validated against its parent only"
        )
        return None


def _dataset_file(value: str) -> Path:
    """``--dataset``: an existing file (a folder or a missing path is a usage error that says which)."""
    path = Path(value)
    if path.is_dir():
        raise _Usage(f"--dataset {path} is a directory; pass a full-information JSONL(.gz) file")
    if not path.exists():
        raise _Usage(f"--dataset {path} does not exist")
    if not path.is_file():
        raise _Usage(f"--dataset {path} is not a regular file; pass a full-information JSONL(.gz) file")
    return path


def _say(text: str) -> None:
    print(text.rstrip("\n"), file=sys.stderr)


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("bifrost.trainer").setLevel(logging.INFO if verbose else logging.WARNING)


# -- train ----------------------------------------------------------------------------------


def main_train(argv: Sequence[str] | None = None) -> int:
    """``train --dataset FILE [--trials N] [--seed S] [--store DIR] [--key FILE]``: bootstrap and publish."""
    parser = train_parser()
    return _guard(lambda: _train(parser.parse_args(argv)))


def train_parser() -> argparse.ArgumentParser:
    """The arguments of ``bifrost-opt train``."""
    parser = _Parser(
        prog="bifrost-opt train",
        description="Bootstrap a signed artifact from a full-information dataset "
        "(every model's score and cost per prompt), validate it and publish it in the artifact store.",
    )
    parser.add_argument("--dataset", required=True, help="full-information JSONL(.gz) file")
    parser.add_argument(
        "--trials", type=bounded_int("--trials", 1, 100_000), default=200, help="Optuna trials (default 200)"
    )
    parser.add_argument(
        "--seed", type=bounded_int("--seed", 0, 2**32 - 1), default=0, help="seed of every random step (default 0)"
    )
    parser.add_argument(
        "--store",
        default=_default_store(),
        help=f"artifact store folder (default $BIFROST_ARTIFACT_STORE, else {DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--key",
        help=f"Ed25519 signing key file (default ${SIGNING_KEY_ENV}, ${SIGNING_KEY_FILE_ENV}, "
        f"else {DEFAULT_KEY_PATH}, created if missing)",
    )
    parser.add_argument(
        "--clusters",
        type=bounded_int("--clusters", 1, MAX_CLUSTERS),
        help=f"number of prompt clusters, 1..{MAX_CLUSTERS} and at most a tenth of the training prompts (default 48)",
    )
    parser.add_argument(
        "--max-cost-share",
        type=float,
        metavar="X",
        help="cost/quality knob: the best score whose mean cost is ≤ X × the best single model's on "
        "new prompts (95%% prediction bound from out-of-fold estimates; checked on the holdout, "
        "refused if not met); default 0.40: 10 points of headroom for the 50%% goal on a shifted task mix",
    )
    parser.add_argument(
        "--min-quality-share",
        type=float,
        metavar="Q",
        help="cost/quality knob (non-inferiority): the lowest cost whose score is ≥ Q × the best "
        "single model's on new prompts drawn like the training prompts (95%% prediction bound, "
        "checked on the holdout), e.g. 0.98; not a promise for another task mix (0.98 gave "
        "97.7-98.7%% on the bundled test split's); alone it lifts the default cost cap, with "
        "--max-cost-share both must hold; unreachable targets are refused",
    )
    parser.add_argument(
        "--stress",
        choices=VARIANTS,
        help="train on a stress variant of the dataset, made in code "
        "(binary: scores binarized at 0.5; premium: the best model ×15 price, best on a minority; "
        "specialist: a cheap model good on one task only; noisy: binary, then 15%% of outcomes flipped)",
    )
    parser.add_argument("--no-parent", action="store_true", help="do not validate against the store's current artifact")
    parser.add_argument("--no-publish", action="store_true", help="train and validate only")
    parser.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _train(args: argparse.Namespace) -> int:
    from bifrost.trainer.bootstrap import BootstrapConfig, bootstrap_artifact  # lightgbm/optuna load here only
    from bifrost.trainer.search import SearchObjective

    if args.trials < 1:
        raise _Usage("--trials must be at least 1")
    for name in ("max_cost_share", "min_quality_share"):
        value = getattr(args, name)
        if value is not None and not 0.0 < value <= 10.0:
            raise _Usage(
                f"--{name.replace('_', '-')} must be a share of the best single model's above 0 and at most 10 "
                f"(e.g. 0.5 for half), not {value}"
            )
    dataset = _dataset_file(args.dataset)
    _setup_logging(not args.quiet)
    key, key_source = _signing_key(args.key)
    store = ArtifactStore(args.store)
    store.check_index()  # a damaged index would read as "no current artifact": no comparison, lost history
    parent = None
    if not args.no_parent and (current := store.current()):
        try:
            parent = store.verify(current, key.public_key())
        except ArtifactVersionError as exc:  # an artifact of an older format cannot be compared: train without it
            _say(f"note: {exc}; training without a parent (the new artifact does not claim to be non-inferior to it)")
        except ArtifactVerificationError as exc:
            raise ArtifactVerificationError(
                f"{exc}. The current artifact {current} in {store.root} was checked with signing key "
                f"{key_id(key)} ({key_source}): pass --key with the key that signed it, or --no-parent"
            ) from None
    replaced = store.current() if args.no_parent and not args.no_publish else None
    if replaced:
        _say(
            f"note: --no-parent: the store's current artifact {replaced} will be replaced without a comparison "
            "(a new lineage starts; its validation does not claim non-inferiority to it)"
        )
    root = _lineage_root(store, parent, key.public_key())
    config = BootstrapConfig() if args.clusters is None else BootstrapConfig(clusters=args.clusters)
    if args.max_cost_share is not None or args.min_quality_share is not None:
        config = msgspec.structs.replace(
            config,
            objective=SearchObjective(max_cost_share=args.max_cost_share, min_quality_share=args.min_quality_share),
        )
    full = load_dataset(dataset)
    if full.problems:  # under the 1% limit (else refused by the data-quality checks): skipped, and said
        _say(f"note: {len(full.problems)} malformed line(s) of {dataset.name} skipped; first: {full.problems[0]}")
    if args.stress:
        full = stress_variant(full, args.stress)
    if parent is not None and (missing := sorted(set(parent.models) - set(full.models))):
        raise EvaluationError(
            f"the current artifact {parent.version} routes to {', '.join(missing)}, which {dataset.name} has no "
            "labels for: validation could not compare the new artifact with it. Train on a dataset with every "
            "model the current artifact routes to, or pass --no-parent"
        )
    in_train = full.splits == config.train_split
    train_prompts = len({prompt_key(p) for p, ok in zip(full.prompts, in_train) if ok})
    if args.clusters is not None and args.clusters > max(1, train_prompts // 10):
        raise _Usage(
            f"--clusters {args.clusters} is too many for {train_prompts} distinct training prompts (at most "
            f"{max(1, train_prompts // 10)}: a tenth of them, so a cluster has prompts to describe)"
        )
    try:
        artifact, report = bootstrap_artifact(
            full, trials=args.trials, seed=args.seed, signing_key=key, parent=parent, config=config, root=root
        )
    except Exception as exc:
        if exit_code_of(exc) is not None:  # a refusal: repeat the data-quality warnings; --json: say it on stdout
            warnings = _quality_warnings(exc, full, config.quality, config.train_split, parent)
            _say_warnings(warnings)
            if args.json:
                sys.stdout.write(_refusal_json(exc, warnings) + "\n")
        raise
    from bifrost.router.artifact import encode

    _say_warnings(report.quality.warnings)  # even with --quiet: they are not progress
    test = None
    if (full.splits == "test").any():
        test = evaluate_artifact(artifact, full, split="test", baseline=True, seed=args.seed)
    if not args.no_publish:
        reports = {"report.json": report.to_json(), "report.md": report.to_markdown().encode()}
        if test is not None:
            reports["evaluation-test.json"] = test.to_json()
            reports["evaluation-test.md"] = test.to_markdown().encode()
        reason = f"bootstrap from {dataset.name}" + (
            f" (--no-parent: replaced {replaced} without a comparison)" if replaced else ""
        )
        store.publish(encode(artifact), report.signature, reports=reports, reason=reason)
    if args.json:
        sys.stdout.write(report.to_json().decode() + "\n")
    else:
        v = report.validation
        print(f"artifact {artifact.version} sha256 {report.sha256} signed by {report.key_id}")
        print(f"published in {store.root} (current)" if not args.no_publish else "not published (--no-publish)")
        print(
            f"search: {report.search.objective.describe()}; α={report.search.alpha:.4f} τ_cheap="
            f"{report.search.tau_cheap:.3f} τ_hard={report.search.tau_hard:.3f}; estimated "
            f"{report.search.score:.4f} at "
            f"{report.search.cost_ratio:.1%} ({'feasible' if report.search.feasible else 'NOT feasible'})"
        )
        print(
            f"holdout ({v.rows} rows): score {v.candidate.score:.4f} at {v.candidate.cost_vs_best:.1%} of "
            f"{v.best_single.name}'s cost (its score {v.best_single.score:.4f}); oracle {v.oracle.score:.4f}"
        )
        if test is not None:
            dropped = report.rows.get("dropped_overlap", 0)
            print(
                f"test split ({test.rows} prompts; no test prompt was trained on: {dropped} training rows with a "
                f"test prompt's text were dropped): score {test.policy.score:.4f} at "
                f"{test.policy.cost_vs_best:.1%} of {test.best_single.name}'s cost (its score "
                f"{test.best_single.score:.4f}; "
                f"the best single model on the {test.reference_chosen_on}"
                + (
                    f"; the test split's own best is {test.best_on_split.name}, {test.best_on_split.score:.4f}"
                    if test.best_on_split is not None
                    else ""
                )
                + f"); goal {'met' if test.goal.met else 'not met'}"
            )
            if test.baseline is not None:
                b = test.baseline
                print(
                    f"logistic baseline (λ chosen on train): {b.policy.score:.4f} at {b.policy.cost_vs_best:.1%}; "
                    f"artifact − baseline {b.score_difference.difference:+.4f} ± "
                    f"{b.score_difference.standard_error:.4f} "
                    f"(SE); baseline frontier at the artifact's cost {b.frontier_score_at_cost:.4f}"
                )
        print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report.timings.items()))
    return EXIT_OK


def _say_warnings(checks: Sequence[Check]) -> None:
    for check in checks:
        _say(f"warning: data quality {check.name} = {check.value} (threshold {check.threshold}): {check.message}")


def _quality_warnings(
    exc: BaseException,
    full: FullInfoDataset,
    thresholds: QualityThresholds,
    train_split: str,
    parent: Artifact | None = None,
) -> list[Check]:
    """The data-quality warnings a refused ``train`` had collected: the failed report's own (a
    data-quality refusal carries it, training-set checks included), else those of the dataset
    checks, assessed again as training assessed them (same rows, thresholds, train split and
    comparison with the parent's training data)."""
    if isinstance(exc, DataQualityError):
        return exc.report.warnings
    report = assess_dataset(full, thresholds, train_split=train_split)
    if parent is not None:
        add_shift_from_parent(report, parent.reports.training)
    return report.warnings


def _refusal_json(exc: BaseException, warnings: Sequence[Check] = ()) -> str:
    """``train --json``'s answer when the run is refused: the reason, the exit code, the data-quality
    warnings collected before it and the report it carries."""
    payload: dict[str, object] = {
        "refused": True,
        "error": str(exc),
        "exit_code": exit_code_of(exc),
        "warnings": msgspec.to_builtins(list(warnings)),
    }
    detail = getattr(exc, "report", None)
    if detail is not None:
        try:
            payload["report"] = msgspec.to_builtins(detail)
        except TypeError:  # a report type msgspec cannot encode: the message still says why
            pass
    return msgspec.json.encode(payload).decode()


def _signing_key(path: str | None) -> tuple[Ed25519PrivateKey, str]:
    """(the signing key, where it came from: for messages that must say which key was used)."""
    if path is not None:
        return load_private_key(path), f"--key {path}"
    try:
        return load_private_key(), f"${SIGNING_KEY_ENV} or ${SIGNING_KEY_FILE_ENV}"
    except SigningKeyError:
        pass
    if DEFAULT_KEY_PATH.exists():
        return load_private_key(DEFAULT_KEY_PATH), f"the default {DEFAULT_KEY_PATH.resolve()}"
    key = generate_private_key(DEFAULT_KEY_PATH)
    _say(
        f"note: no signing key configured; created {DEFAULT_KEY_PATH.resolve()} ({key_id(key)}). Keep it secret; "
        f"routers verify with its public half."
    )
    return key, f"the default {DEFAULT_KEY_PATH.resolve()}, just created"


VERIFY_KEY_FILE_ENV = "BIFROST_VERIFY_KEY_FILE"


def _key_path(path: str | None) -> str | None:
    """``--key``, else ``BIFROST_VERIFY_KEY_FILE`` unless an inline ``BIFROST_VERIFY_KEY`` wins (as in the worker)."""
    if path is None and not os.environ.get(VERIFY_KEY_ENV) and os.environ.get(VERIFY_KEY_FILE_ENV):
        return os.environ[VERIFY_KEY_FILE_ENV]
    return path


def _verify_key(path: str | None) -> Ed25519PublicKey:
    key = find_public_key(_key_path(path))
    if key is None:
        raise SigningKeyError(
            f"no verification key: pass --key FILE, or set ${VERIFY_KEY_ENV} or ${VERIFY_KEY_FILE_ENV}"
        )
    return key


# -- evaluate -------------------------------------------------------------------------------


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    """``evaluate ARTIFACT --dataset FILE [--against V] [--frontier [--plot PNG]] [--stress V] [--json]``."""
    parser = evaluate_parser()
    return _guard(lambda: _evaluate(parser.parse_args(argv)))


def evaluate_parser() -> argparse.ArgumentParser:
    """The arguments of ``bifrost-opt evaluate``."""
    parser = _Parser(
        prog="bifrost-opt evaluate",
        description="Evaluate an artifact on a full-information dataset: "
        "quality and cost per task, vs every single model, the oracle, another artifact and the "
        "baseline to beat (per-model logistic regression on the same features, λ chosen on the train "
        "split to spend what the artifact spends); --frontier sweeps the cost/quality knob.",
    )
    parser.add_argument(
        "artifact", metavar="ARTIFACT", help="version in the store, a version folder, or an artifact.json path"
    )
    parser.add_argument("--dataset", required=True, help="full-information JSONL(.gz) file")
    parser.add_argument(
        "--against",
        metavar="VERSION",
        help="compare with this artifact (version or path; 'current' for the store's current one)",
    )
    parser.add_argument(
        "--split", default="test", help="dataset split to evaluate on (default test; 'all' for every row)"
    )
    parser.add_argument(
        "--store",
        default=_default_store(),
        help=f"artifact store folder (default $BIFROST_ARTIFACT_STORE, else {DEFAULT_ROOT})",
    )
    parser.add_argument("--key", help="verification key file (public or private Ed25519, PEM or base64)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--stress", choices=VARIANTS, help="evaluate on a stress variant of the dataset (as train --stress)"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the logistic-regression baseline (fitted on the train split)"
    )
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="also sweep the cost/quality knob (α) on the split and print the frontier, with the "
        "baseline's, every single model and the oracle",
    )
    parser.add_argument(
        "--plot",
        metavar="PNG",
        help="with --frontier: also write the frontier plot to this PNG file (its folder must exist; "
        "without --plot no file is written)",
    )
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    dataset = _dataset_file(args.dataset)
    if args.plot is not None and not args.frontier:
        raise _Usage("--plot needs --frontier (the plot is of the frontier)")
    if args.plot is not None:
        if Path(args.plot).is_dir():
            raise _Usage(
                f"--plot {args.plot} is a folder: give the PNG file to write, e.g. {Path(args.plot) / 'frontier.png'}"
            )
        if Path(args.plot).suffix.lower() != ".png":
            raise _Usage(
                f"--plot {args.plot}: the plot is written as PNG; give a file name ending in .png, "
                f"e.g. {Path(args.plot).with_suffix('.png')}"
            )
        folder = Path(args.plot).parent
        if not folder.is_dir():
            raise _Usage(f"--plot {args.plot}: folder {folder} does not exist")
    key = _verify_key(args.key)
    store = ArtifactStore(args.store)
    router = _open(args.artifact, store, key)
    against = _open(args.against, store, key) if args.against else None
    full = load_dataset(dataset)
    splits = sorted(set(full.splits.tolist()))
    if args.split != "all" and args.split not in splits:
        raise _Usage(f"--split {args.split}: {dataset} has splits {', '.join(splits) or 'none'} (or 'all')")
    if args.stress:
        full = stress_variant(full, args.stress)
    baseline = not args.no_baseline and (full.splits == "train").any()
    fitted = None
    if baseline or args.frontier:
        from bifrost.trainer.evaluate import fit_baseline

        fitted = fit_baseline(router, full) if (full.splits == "train").any() else None
    report = evaluate_artifact(
        router, full, split=args.split, against=against, baseline=baseline and fitted is not None, fitted=fitted
    )
    problem = report.unusable_problem()
    if problem is not None:
        raise EvaluationError(problem)
    if args.split == "all" and (warning := training_rows_warning("all", int((full.splits == "train").sum()))):
        report = msgspec.structs.replace(report, warnings=[*report.warnings, warning])
    for warning in report.warnings:
        _say(f"warning: {warning}")
    frontier = None
    if args.frontier:
        if fitted is None:
            raise _Usage("--frontier needs a train split to fit the baseline on")
        from bifrost.trainer.frontier import frontier_report, plot_frontier

        frontier = frontier_report(router, full, split=args.split, fitted=fitted)
        if args.plot is not None:  # only where asked: never a file in the current folder by default
            plot = plot_frontier(frontier, args.plot)
            _say(f"frontier plot written to {plot}")
    if args.json:
        payload = {"evaluation": msgspec.to_builtins(report)}
        if frontier is not None:
            payload["frontier"] = msgspec.to_builtins(frontier)
        sys.stdout.write(
            msgspec.json.encode(payload).decode() + "\n" if frontier is not None else report.to_json().decode() + "\n"
        )
    else:
        sys.stdout.write(report.to_markdown())
        if frontier is not None:
            sys.stdout.write("\n" + frontier.to_markdown())
    return EXIT_OK


def _open(reference: str, store: ArtifactStore, key: Ed25519PublicKey) -> ReferenceRouter:
    """A verified router from a store version, 'current', a version folder or an artifact.json path."""
    if reference == "current":
        current = store.current()
        if current is None:
            raise StoreError(f"{store.root} has no current artifact")
        reference = current
    path = Path(reference)
    if path.is_dir() and not (path / "artifact.json").is_file():
        raise StoreError(
            f"{reference} is a folder without artifact.json: give a version folder, an artifact.json, "
            f"a version in {store.root} or 'current'"
        )
    if path.exists():
        return ReferenceRouter.load(path, key)
    if any(m.version == reference for m in store.list()):
        return ReferenceRouter(store.verify(reference, key))
    raise StoreError(f"{reference!r} is neither a file nor a version in {store.root}")


# -- artifacts ------------------------------------------------------------------------------


def main_artifacts(argv: Sequence[str] | None = None) -> int:
    """``artifacts list|show V|verify V|rollback V [--store DIR] [--key FILE]``."""
    parser = artifacts_parser()
    return _guard(lambda: _artifacts(parser.parse_args(argv)))


def artifacts_parser() -> argparse.ArgumentParser:
    """The arguments of ``bifrost-opt artifacts``."""
    parser = _Parser(prog="bifrost-opt artifacts", description="List, inspect, verify and roll back stored artifacts.")

    def common(p: argparse.ArgumentParser, *, top: bool) -> None:
        # Given before or after the action (`artifacts --store X list` = `artifacts list --store X`):
        # the action's copies keep the top level's value unless they are given.
        keep = argparse.SUPPRESS
        p.add_argument(
            "--store",
            default=_default_store() if top else keep,
            help=f"artifact store folder (default $BIFROST_ARTIFACT_STORE, else {DEFAULT_ROOT})",
        )
        p.add_argument(
            "--key",
            default=None if top else keep,
            help="verification key file (verify, rollback; default $BIFROST_VERIFY_KEY, else $BIFROST_VERIFY_KEY_FILE)",
        )
        p.add_argument("--json", action="store_true", default=False if top else keep, help="print JSON")

    common(parser, top=True)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    common(sub.add_parser("list", help="every complete version, oldest first; * marks the current one"), top=False)
    for name, text in (
        ("show", "metadata and routing parameters"),
        ("verify", "check digest and signature"),
        ("rollback", "make an earlier version current again"),
    ):
        p = sub.add_parser(name, help=text)
        common(p, top=False)
        p.add_argument("version")
        if name == "rollback":
            p.add_argument("--reason", default="manual rollback", help="recorded in the index history")
    return parser


def _artifacts(args: argparse.Namespace) -> int:
    store = ArtifactStore(args.store)
    if args.action == "list":
        versions, current = store.list(), store.current()
        invalidated = {m.version: store.invalidation(m.version) for m in versions}
        if args.json:
            sys.stdout.write(
                msgspec.json.encode(
                    {
                        "current": current,
                        "versions": versions,
                        "invalidated": {v: i for v, i in invalidated.items() if i},
                    }
                ).decode()
                + "\n"
            )
        elif not versions:
            print(f"no artifacts in {store.root}")
        else:
            for m in versions:
                mark = "*" if m.version == current else " "
                why = invalidated[m.version]
                print(
                    f"{mark} {m.version}  created {m.created_at}  parent {m.parent or '-'}  sha256 {m.sha256[:16]}…"
                    + (f"  INVALIDATED: {why.reason}" if why else "")
                )
        return EXIT_OK
    if args.action == "show":
        info = store.show(args.version)
        if args.json:
            sys.stdout.write(msgspec.json.encode(info).decode() + "\n")
        else:
            for name, value in info.items():
                print(f"{name}: {value}")
        return EXIT_OK
    if args.action == "verify":
        key = _verify_key(args.key)
        try:
            artifact = store.verify(args.version, key)
        except ArtifactVerificationError as exc:
            _say(f"FAILED {args.version}: {exc}")
            return EXIT_FAILURE
        print(
            f"OK {artifact.version}: sha256 {store.meta(args.version).sha256} and signature by {key_id(key)} verified"
        )
        return EXIT_OK
    public_key = find_public_key(_key_path(args.key))
    previous = store.rollback(args.version, reason=args.reason, public_key=public_key)
    print(
        f"current is now {args.version} (was {previous or '-'})"
        + ("" if public_key else "; signature not checked (no key)")
    )
    return EXIT_OK


# -- trainer service -----------------------------------------------------------------------


def main_service(argv: Sequence[str] | None = None) -> int:
    """``trainer [--once]``: the trainer service (consumes training-triggers)."""
    parser = service_parser()

    def run() -> int:
        args = parser.parse_args(argv)
        settings = TrainerSettings.from_env()  # SettingsError: a usage error
        _setup_logging(True)
        # --key, else an inline BIFROST_SIGNING_KEY, else the key file setting (env or default).
        inline = args.key is None and bool(os.environ.get(SIGNING_KEY_ENV))
        key = load_private_key() if inline else load_private_key(args.key or settings.signing_key_file)
        log.info("event=trainer.key key=%s", key_id(key))
        return _serve(settings, key, once=args.once)

    return _guard(run)


def service_parser() -> argparse.ArgumentParser:
    """The arguments of ``bifrost-opt trainer``."""
    parser = _Parser(
        prog="bifrost-opt trainer",
        description="Run the trainer service: consume training-triggers in the "
        "consumer group <app_id>-trainer, retrain from the warehouse, publish signed artifacts on "
        "artifacts. Settings: BIFROST_* variables (bifrost-opt config).",
    )
    parser.add_argument("--once", action="store_true", help="exit after handling one trigger")
    parser.add_argument("--key", help="signing key file (default BIFROST_SIGNING_KEY, else BIFROST_SIGNING_KEY_FILE)")
    return parser


def _serve(settings: TrainerSettings, key: Ed25519PrivateKey, *, once: bool) -> int:
    import asyncio

    from aiokafka.errors import KafkaConnectionError

    from bifrost.trainer.service import TrainerService

    try:
        asyncio.run(TrainerService(settings, key).run(stop_after=1 if once else None))
    except KafkaConnectionError as exc:
        raise Unavailable(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from None
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    return EXIT_OK
