"""`bifrost-opt keys …`: Ed25519 keys for signed rollout commands (and public halves of any key).

``keys create --name alice --out var/keys`` writes ``var/keys/alice.pem`` (PKCS#8, mode
0600) and prints its allow-list line ``alice:operator:BASE64`` for the workers'
``BIFROST_COMMAND_KEYS``. ``keys export-public --key FILE`` prints that line for an
existing private key, or its public PEM (``--pem``, or ``--out FILE`` to write it) — the
form a worker's ``BIFROST_VERIFY_KEY_FILE`` takes for the artifact signing key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bifrost.cli.errors import EXIT_OK, UsageError
from bifrost.common.files import write_atomic

ROLES = ("operator", "pipeline")


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="create signing keys for rollout commands; export public keys")
    actions = keys.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser(
        "create", help="write a new Ed25519 private key (PEM, mode 0600); print its allow-list line"
    )
    create.add_argument("--name", required=True, help="key name on the allow-list (letters, digits, . _ @ -)")
    create.add_argument("--out", required=True, metavar="DIR", help="folder for NAME.pem (created if missing)")
    create.add_argument("--role", choices=ROLES, default="operator", help="role in the printed line (default operator)")
    export = actions.add_parser("export-public", help="print the public key of a private key: allow-list line or PEM")
    export.add_argument("--key", required=True, metavar="FILE", help="private key file (PEM or base64 seed)")
    export.add_argument("--name", help="key name in the printed line (default: the file name without .pem)")
    export.add_argument("--role", choices=ROLES, default="operator", help="role in the printed line (default operator)")
    export.add_argument("--pem", action="store_true", help="print the public key as PEM instead of an allow-list line")
    export.add_argument(
        "--out", metavar="FILE", help="also write the public key as PEM to FILE (e.g. artifact-signing.pub.pem)"
    )


def run_keys(args: argparse.Namespace) -> int:
    from bifrost.router.keys import SigningKeyError, generate_private_key, load_private_key, public_key_pem
    from bifrost.streams.rollout.auth import NAME, public_line

    if args.action == "create":
        if not NAME.match(args.name):
            raise UsageError(
                f"--name {args.name!r}: 1-64 of letters, digits, '.', '_', '@', '-' (starting with a letter or digit)"
            )
        path = Path(args.out) / f"{args.name}.pem"
        try:
            key = generate_private_key(path)
        except SigningKeyError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        print(public_line(args.name, args.role, key))
        print(
            f"wrote the private key to {path} (mode 0600; keep it secret). Add the line above to the workers' "
            f"BIFROST_COMMAND_KEYS, and sign with BIFROST_{'OPERATOR' if args.role == 'operator' else 'PIPELINE'}"
            f"_KEY_FILE={path} BIFROST_{'OPERATOR' if args.role == 'operator' else 'PIPELINE'}_KEY_NAME={args.name}",
            file=sys.stderr,
        )
        return EXIT_OK
    try:
        key = load_private_key(args.key)
    except SigningKeyError as exc:
        raise UsageError(str(exc)) from None
    pem = public_key_pem(key)
    if args.out:
        _write_public(Path(args.out), pem)
        print(f"wrote the public key to {args.out}", file=sys.stderr)
    if args.pem:
        sys.stdout.write(pem.decode())
        return EXIT_OK
    name = args.name or Path(args.key).name.removesuffix(".pem")
    if not NAME.match(name):
        raise UsageError(f"key name {name!r}: pass --name (1-64 of letters, digits, '.', '_', '@', '-')")
    print(public_line(name, args.role, key))
    return EXIT_OK


def _write_public(path: Path, pem: bytes) -> None:
    try:
        write_atomic(path, pem, mode=0o644)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
