"""`bifrost-opt init`: one-shot setup of a deployment's keys and first artifact (idempotent).

What a fresh deployment needs before its workers and trainer start, each written where only
the processes that need it can read it (``docker-compose.yml``'s ``bootstrap`` service runs
this with one volume per audience):

* ``--signing-key`` — the trainer's private Ed25519 artifact-signing key (trainer only);
* ``--worker-keys`` — what workers get: the *public* verification key
  (``artifact-signing.pub.pem``), the command allow-list (``command-keys``: pipeline and
  operator public keys), the pipeline key their artifact listener signs with
  (``pipeline.pem``) and the HTTP bearer token (``web-token``);
* ``--operator-keys`` — the operator's private command key (``operator.pem``) and a copy of
  the web token, for the people running the CLI (never mounted in a worker);
* ``--store`` — a first signed artifact bootstrapped from ``--dataset`` when the store has no
  current one.

Existing files are kept, so running it again changes nothing; a key that exists but is
unreadable is an error, never replaced.
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bifrost.cli.errors import EXIT_OK, UsageError
from bifrost.cli.options import bounded_int
from bifrost.common.files import write_atomic

if TYPE_CHECKING:  # the key library is imported where used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SIGNING_PUBLIC = "artifact-signing.pub.pem"
ALLOW_LIST = "command-keys"
PIPELINE_KEY = "pipeline.pem"
OPERATOR_KEY = "operator.pem"
WEB_TOKEN = "web-token"


def add_init_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = sub.add_parser(
        "init", help="one-shot setup: signing key, worker and operator keys, web token, first artifact"
    )
    init.add_argument(
        "--dataset", required=True, help="full-information dataset the first artifact is bootstrapped from"
    )
    init.add_argument("--store", help="artifact store folder (default BIFROST_ARTIFACT_STORE)")
    init.add_argument("--signing-key", help="the trainer's private signing key file (default BIFROST_SIGNING_KEY_FILE)")
    init.add_argument(
        "--worker-keys",
        required=True,
        metavar="DIR",
        help=f"folder for what workers get: {SIGNING_PUBLIC}, {ALLOW_LIST}, {PIPELINE_KEY}, {WEB_TOKEN}",
    )
    init.add_argument(
        "--operator-keys",
        required=True,
        metavar="DIR",
        help=f"folder for the operator's {OPERATOR_KEY} and a copy of the web token",
    )
    init.add_argument(
        "--trials",
        type=bounded_int("--trials", 1, 100_000),
        default=200,
        help="Optuna trials of the first artifact (default 200)",
    )


@dataclass(frozen=True, slots=True)
class InitPlan:
    """Where everything goes (pure; paths only)."""

    signing_key: Path
    worker_keys: Path
    operator_keys: Path
    store: Path

    def overlaps(self) -> list[str]:
        """Folders that would put a private key where it does not belong."""
        problems = []
        if self.signing_key.parent.resolve() == self.worker_keys.resolve():
            problems.append("the signing key must not be in --worker-keys (workers get only its public half)")
        if self.operator_keys.resolve() == self.worker_keys.resolve():
            problems.append("--operator-keys and --worker-keys must differ (workers never hold the operator key)")
        return problems


def run_init(args: argparse.Namespace, artifact_store: str, signing_key_file: str) -> int:
    plan = InitPlan(
        signing_key=Path(args.signing_key or signing_key_file),
        worker_keys=Path(args.worker_keys),
        operator_keys=Path(args.operator_keys),
        store=Path(args.store or artifact_store),
    )
    dataset = Path(args.dataset)
    if not dataset.is_file():
        raise UsageError(f"--dataset {dataset} does not exist (a full-information JSONL(.gz) file)")
    problems = plan.overlaps()
    if problems:
        raise UsageError("; ".join(problems))
    for line in initialize(plan, dataset, trials=args.trials):
        print(line, flush=True)
    return EXIT_OK


def initialize(plan: InitPlan, dataset: Path, *, trials: int = 200) -> list[str]:
    """Create what is missing; returns one line per thing done or kept."""
    from bifrost.router.keys import generate_private_key, load_private_key, public_key_pem
    from bifrost.streams.rollout.auth import public_line

    done: list[str] = []

    def key(path: Path) -> Ed25519PrivateKey:
        if path.exists():
            done.append(f"kept    {path}")
            return load_private_key(path)
        done.append(f"created {path}")
        return generate_private_key(path)

    signing = key(plan.signing_key)
    write_atomic(plan.worker_keys / SIGNING_PUBLIC, public_key_pem(signing), mode=0o644)
    done.append(f"wrote   {plan.worker_keys / SIGNING_PUBLIC} (public)")
    pipeline = key(plan.worker_keys / PIPELINE_KEY)
    operator = key(plan.operator_keys / OPERATOR_KEY)
    allow_list = (
        "\n".join(
            [
                "# name:role:public key (bifrost-opt init); add operators with `bifrost-opt keys create`",
                public_line("pipeline", "pipeline", pipeline),
                public_line("operator", "operator", operator),
            ]
        )
        + "\n"
    )
    existing = (plan.worker_keys / ALLOW_LIST).read_text() if (plan.worker_keys / ALLOW_LIST).exists() else None
    if existing is None:
        write_atomic(plan.worker_keys / ALLOW_LIST, allow_list.encode(), mode=0o644)
        done.append(f"wrote   {plan.worker_keys / ALLOW_LIST}")
    else:
        done.append(f"kept    {plan.worker_keys / ALLOW_LIST}")
    token_file = plan.worker_keys / WEB_TOKEN
    if not token_file.exists():
        write_atomic(token_file, secrets.token_hex(32).encode(), mode=0o600)
        done.append(f"created {token_file}")
    write_atomic(plan.operator_keys / WEB_TOKEN, token_file.read_bytes(), mode=0o600)
    done.append(f"copied  {token_file} to {plan.operator_keys / WEB_TOKEN}")
    done.extend(_first_artifact(dataset, plan.store, plan.signing_key, trials))
    return done


def _first_artifact(dataset: Path, store: Path, key_file: Path, trials: int) -> list[str]:
    from bifrost.storage.artifact_store import ArtifactStore
    from bifrost.trainer.cli import main_train

    current = ArtifactStore(store).current()
    if current is not None:
        return [f"kept    {store} (current artifact {current})"]
    code = main_train(
        ["--dataset", str(dataset), "--store", str(store), "--key", str(key_file), "--quiet", "--trials", str(trials)]
    )
    if code != 0:
        raise UsageError(f"could not bootstrap the first artifact from {dataset} (exit code {code}); see above")
    return [f"trained {store} (current artifact {ArtifactStore(store).current()})"]
