"""Which bifrost package may import which: the table, and an ``ast`` checker against it.

Why here, under ``tests/``: the table constrains the source tree, not the running
program. Nothing installed needs it, so it stays out of the wheel (no production module
can come to depend on it), and it runs where every other check runs: ``pytest`` in
``.ci/run``. A contributor who adds an import across packages that the table does not
allow gets a failing test naming the file, line and rule, and either drops the import or
changes the table here, in review, with its reason.

Units are the top-level packages of the ``bifrost`` namespace (``bifrost.<folder>``, as
``[tool.setuptools] package-dir`` maps them), the ``bench`` and ``tests`` folders, and
single modules inside a production package that exist only for development (``cli.up``:
the all-in-one local loop that starts a throwaway broker). Each unit is production or
development code:

* production code imports only what its row lists, at any depth (module level, inside
  functions, under ``TYPE_CHECKING``). An import is an ``import``/``from`` statement or a
  call ``importlib.import_module("bifrost.…")`` / ``__import__("bifrost.…")`` with a string
  literal naming one of our modules (``bifrost.``, ``bench.``, ``tests.``): eager at module
  level (``_q = __import__("bifrost.x")`` too), lazy inside a function;
* development code (``devkafka``, ``gatesim``, ``bench``, ``tests``, ``cli.up``) is never imported by
  production code at module level. A production unit may list a development unit under
  ``lazy``: it may then import it only inside a function (the dev-only command that needs
  it), so ``import bifrost.cli.main`` never loads a broker launcher nor the gate simulator.
  A row's ``lazy_in`` narrows that to the modules that host the dev-only commands: the
  ``cli`` row allows its lazy imports (``devkafka``, ``cli.up``, ``gatesim``) in
  ``cli.main`` only, which dispatches ``kafka``, ``up`` and ``simulate-gates``; any other
  ``cli`` module (``cli/rollout_cmd.py``…) importing them, even inside a function, fails;
* a module may always import its own package, except a production module importing a
  development module of that package, which again must be lazy (and in ``lazy_in``).

The rules the table must keep (checked by ``table_problems``, over the transitive closure
of the rows, so a chain of individually harmless edits is caught too): ``schemas`` and
``router`` are leaves (they reach no other bifrost package, ``common`` aside); ``streams``
and ``trainer`` never reach each other through any chain of eager or lazy imports; no
production unit reaches a development unit through eager imports.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bifrost"


@dataclass(frozen=True)
class Unit:
    """One row of the table: what a package (or dev-only module) may import, and why."""

    dev: bool
    imports: frozenset[str]
    why: str
    lazy: frozenset[str] = field(default_factory=frozenset)
    #: Modules (dotted, below ``bifrost.``) that may hold the ``lazy`` imports; empty: any module of the unit.
    lazy_in: frozenset[str] = field(default_factory=frozenset)


def _unit(*imports: str, why: str, dev: bool = False, lazy: Iterable[str] = (), lazy_in: Iterable[str] = ()) -> Unit:
    return Unit(dev=dev, imports=frozenset(imports), why=why, lazy=frozenset(lazy), lazy_in=frozenset(lazy_in))


_PRODUCTION = (
    "schemas",
    "router",
    "common",
    "kafka",
    "storage",
    "config",
    "trainer",
    "client",
    "streams",
    "catalog",
    "webhooks",
    "cli",
)

TABLE: dict[str, Unit] = {
    # Leaves.
    "schemas": _unit(
        "common", why="wire formats and codecs of every topic: everyone reads them, they read only common"
    ),
    "router": _unit(
        "common",
        why="the routing library a router embeds (artifact format, features, policy, off-policy "
        "estimates): must install and run with nothing else of bifrost",
    ),
    "common": _unit(why="settings machinery, exit codes, atomic writes: small helpers every package shares"),
    "kafka": _unit("common", why="Kafka client security settings and the connection preflight"),
    "storage": _unit(
        "router",
        "common",
        why="on-disk formats both sides of the loop read: the versioned artifact store, the "
        "full-information dataset format, the warehouse's logged events",
    ),
    # Services and libraries.
    "config": _unit("kafka", "schemas", "common", why="the worker's settings (BIFROST_*)"),
    "trainer": _unit(
        "schemas",
        "router",
        "kafka",
        "storage",
        "common",
        why="a separate service: trains and signs artifacts; never imports the stream worker",
    ),
    "client": _unit(
        "schemas",
        "router",
        "kafka",
        "storage",
        "common",
        why="what applications embed to publish events and commands, and the traffic simulator",
    ),
    "streams": _unit(
        "schemas",
        "router",
        "kafka",
        "storage",
        "config",
        "client",
        "common",
        why="the Faust worker; it publishes rollout commands with the client library and never imports the trainer",
    ),
    "webhooks": _unit(
        "schemas",
        "kafka",
        "config",
        "storage",
        "streams",
        "catalog",
        "common",
        why="delivers catalog changes; reuses the catalog's HTTP helpers and metrics",
    ),
    "catalog": _unit(
        "schemas",
        "router",
        "kafka",
        "config",
        "storage",
        "streams",
        "common",
        lazy=("webhooks",),
        why="the price catalog refresher; its process starts the webhook deliverers, which import "
        "the catalog, so it loads them lazily, when it starts them",
    ),
    "cli": _unit(
        *(name for name in _PRODUCTION if name != "cli"),
        lazy=("devkafka", "cli.up", "gatesim"),
        lazy_in=("cli.main",),
        why="the command line composes everything; `kafka`, `up` and `simulate-gates` are dev-only "
        "commands, dispatched by cli.main, that load their dev modules when run (no other cli module may)",
    ),
    # Development and test code.
    "devkafka": _unit("kafka", "common", dev=True, why="a throwaway local broker for development and tests"),
    "gatesim": _unit(
        "streams",
        "schemas",
        dev=True,
        why="the gate simulator (Monte-Carlo rollouts through the real gates and controller, the "
        "README's scenario suite, the naive baseline, `bifrost-opt simulate-gates`): it measures the "
        "worker's gates and must never ship inside them, so the worker is checked not to load it",
    ),
    "cli.up": _unit(
        *(name for name in _PRODUCTION if name != "cli"),
        "cli",
        "devkafka",
        dev=True,
        why="`bifrost-opt up`: the whole loop on one machine, with a local broker",
    ),
    "bench": _unit(
        *_PRODUCTION,
        "devkafka",
        "gatesim",
        "cli.up",
        "tests",
        dev=True,
        why="benchmarks (they reuse the test harness)",
    ),
    "tests": _unit(*_PRODUCTION, "devkafka", "gatesim", "cli.up", "bench", dev=True, why="tests"),
}

#: Imports the table does not allow that the tree still has: (importing module, imported unit) -> why.
#: The test fails on an entry no import matches any more, so this list only shrinks.
EXCEPTIONS: dict[tuple[str, str], str] = {}

#: Folders of development code outside the ``bifrost`` namespace (imported as ``bench.x``, ``tests.x``).
DEV_FOLDERS = ("bench", "tests")


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to an absolute dotted name."""

    module: str  # the importing module, dotted
    path: Path
    line: int
    target: str
    lazy: bool  # inside a function or an ``if TYPE_CHECKING:`` block: not run on import


@dataclass(frozen=True)
class Violation:
    """An import the table does not allow."""

    imp: Import
    source: str
    target: str
    reason: str

    def __str__(self) -> str:
        where = self.imp.path.relative_to(ROOT) if self.imp.path.is_relative_to(ROOT) else self.imp.path
        return f"{where}:{self.imp.line}: {self.imp.target} ({self.source} -> {self.target}: {self.reason})"


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """``bifrost.<name>`` folders as ``pyproject.toml`` installs them, plus the dev folders."""
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: root / folder for name, folder in tool["package-dir"].items()}
    folders.update({name: root / name for name in DEV_FOLDERS})
    return folders


def module_name(package: str, folder: Path, path: Path) -> str:
    """Dotted name of ``path`` inside ``folder``, which is installed as ``package``."""
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def iter_modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """Every Python module the table governs: (dotted name, file)."""
    for package, folder in sorted(package_dirs(root).items()):
        for path in sorted(folder.rglob("*.py")):
            yield module_name(package, folder, path), path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(source: str, module: str, path: Path, *, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (module level, in functions, in classes), with absolute targets.

    ``from a.b import c`` yields ``a.b.c``: ``c`` may be a module (``from bifrost.cli import up``).
    """
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(module, path, node.lineno, alias.name, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            found.extend(
                Import(module, path, node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base, lazy)
                for alias in node.names
            )
        elif isinstance(node, ast.Call) and (target := _dynamic_target(node)) is not None:
            found.append(Import(module, path, node.lineno, target, lazy))
        for child in ast.iter_child_nodes(node):
            inner = (
                lazy
                or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                or (isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body)
            )
            visit(child, inner)

    visit(ast.parse(source, filename=str(path)), False)
    return found


#: Prefixes of a string literal passed to ``importlib.import_module`` / ``__import__`` that name our code.
_OUR_PREFIXES = (f"{NAMESPACE}.", *(f"{folder}." for folder in DEV_FOLDERS))


def _dynamic_target(call: ast.Call) -> str | None:
    """The module a call ``importlib.import_module("…")`` / ``import_module("…")`` / ``__import__("…")`` loads.

    Only a string literal naming our code counts (``bifrost.…``, ``bench.…``, ``tests.…``): a
    computed name cannot be checked statically, and a third-party name is not the table's business.
    """
    func = call.func
    dynamic = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    if not dynamic or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith(_OUR_PREFIXES):
        return first.value
    return None


def unit_of(dotted: str, table: Mapping[str, Unit] = TABLE) -> str | None:
    """The table row that governs a dotted module name (None: not ours, e.g. a third-party module)."""
    parts = dotted.split(".")
    if parts[0] in DEV_FOLDERS:
        return parts[0]
    if parts[0] != NAMESPACE or len(parts) < 2:
        return None
    for cut in range(len(parts), 1, -1):  # the longest row wins: ``cli.up`` before ``cli``
        name = ".".join(parts[1:cut])
        if name in table:
            return name
    return parts[1]  # a package missing from the table: reported by check()


def check_import(imp: Import, table: Mapping[str, Unit] = TABLE) -> Violation | None:
    """Whether one import keeps to the table."""
    source, target = unit_of(imp.module, table), unit_of(imp.target, table)
    if source is None or target is None or source == target:
        return None
    if source not in table:
        return Violation(imp, source, target, "importing package is not in the table")
    if target not in table:
        return Violation(imp, source, target, "imported package is not in the table")
    row, imported = table[source], table[target]
    same_package = target.split(".")[0] == source.split(".")[0]
    if target in row.lazy and row.lazy_in and not _in_modules(imp.module, row.lazy_in):
        where = ", ".join(sorted(row.lazy_in))
        return Violation(imp, source, target, f"allowed only in {where}, inside the command that needs it")
    if imported.dev and not row.dev:
        if target in row.lazy and imp.lazy:
            return None
        if target in row.lazy:
            return Violation(imp, source, target, "development code: import it inside the dev-only command")
        return Violation(imp, source, target, "production code must not import development code")
    if same_package or target in row.imports:
        return None
    if target in row.lazy:
        return None if imp.lazy else Violation(imp, source, target, "allowed only inside a function")
    return Violation(imp, source, target, "not allowed by the table")


def _in_modules(module: str, modules: Iterable[str]) -> bool:
    """Whether dotted ``module`` is one of ``modules`` (named below ``bifrost.``) or inside one."""
    name = module.removeprefix(f"{NAMESPACE}.")
    return any(name == m or name.startswith(f"{m}.") for m in modules)


def check_source(
    source: str, module: str, path: Path, table: Mapping[str, Unit] = TABLE, *, is_package: bool = False
) -> list[Violation]:
    """Violations of one module's source text."""
    found = (check_import(imp, table) for imp in imports_of(source, module, path, is_package=is_package))
    return [v for v in found if v is not None]


def check(root: Path = ROOT, table: Mapping[str, Unit] = TABLE) -> list[Violation]:
    """Violations of every module under ``root``."""
    return [
        violation
        for module, path in iter_modules(root)
        for violation in check_source(path.read_text(), module, path, table, is_package=path.name == "__init__.py")
    ]


def split_exceptions(
    violations: Iterable[Violation],
    exceptions: Mapping[tuple[str, str], str] = EXCEPTIONS,
) -> tuple[list[Violation], list[tuple[str, str]]]:
    """(violations no exception covers, exceptions no violation uses any more)."""
    violations = list(violations)
    used = {(v.imp.module, v.target) for v in violations}
    return [v for v in violations if (v.imp.module, v.target) not in exceptions], sorted(exceptions.keys() - used)


def reach(table: Mapping[str, Unit], start: str, *, eager_only: bool = False) -> dict[str, list[str]]:
    """Every unit ``start`` reaches through chains of rows, each with one chain to it (``[start, …, unit]``).

    Edges are a row's ``imports`` and (unless ``eager_only``) its ``lazy`` units; units missing
    from the table end a chain (``table_problems`` reports them). Breadth first: the chain is a shortest one.
    """
    paths = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop(0)
        row = table.get(current)
        if row is None:
            continue
        for nxt in sorted(row.imports if eager_only else row.imports | row.lazy):
            if nxt not in paths:
                paths[nxt] = [*paths[current], nxt]
                queue.append(nxt)
    del paths[start]
    return paths


def table_problems(table: Mapping[str, Unit] = TABLE) -> list[str]:
    """Rules the table itself must keep (so that editing it cannot quietly undo the architecture).

    Checked on the transitive closure: adding ``trainer`` to the ``client`` row breaks
    "streams never reaches trainer", since ``streams`` lists ``client``.
    """
    problems = []
    for leaf in ("schemas", "router"):
        extra = sorted(reach(table, leaf).keys() - {"common"})
        if extra:
            problems.append(f"{leaf} is a leaf but reaches {extra}")
    for one, other in (("streams", "trainer"), ("trainer", "streams")):
        chain = reach(table, one).get(other)
        if chain:
            problems.append(f"{one} reaches {other}: {' -> '.join(chain)}")
    for name, row in table.items():
        unknown = (row.imports | row.lazy) - table.keys()
        if unknown:
            problems.append(f"{name} lists unknown units {sorted(unknown)}")
        if not row.dev:
            eager = reach(table, name, eager_only=True)
            dev = sorted(t for t in eager if t in table and table[t].dev)
            if dev:
                chains = "; ".join(" -> ".join(eager[t]) for t in dev)
                problems.append(f"production {name} reaches development code {dev} eagerly ({chains})")
    return problems


def production_modules(root: Path = ROOT, table: Mapping[str, Unit] = TABLE) -> list[str]:
    """Dotted names of every production module under ``root`` (dev units such as ``cli.up`` left out)."""
    return [
        module
        for module, _ in iter_modules(root)
        if (unit := unit_of(module, table)) is not None and unit in table and not table[unit].dev
    ]


def dev_prefixes(table: Mapping[str, Unit] = TABLE) -> tuple[str, ...]:
    """Dotted names whose modules (and submodules) are development code: ``bifrost.devkafka``, ``tests``…"""
    return tuple(
        sorted(name if name in DEV_FOLDERS else f"{NAMESPACE}.{name}" for name, row in table.items() if row.dev)
    )


_PROBE = """
import importlib, json, sys
modules, dev = json.loads(sys.stdin.read())
def is_dev(name):
    return any(name == p or name.startswith(p + ".") for p in dev)
culprit, loaded = "(interpreter start)", sorted(filter(is_dev, sys.modules))
for name in modules:
    if loaded:
        break
    importlib.import_module(name)
    culprit, loaded = name, sorted(filter(is_dev, sys.modules))
print(json.dumps([culprit, loaded] if loaded else None))
"""


def load_probe(
    modules: Iterable[str], dev: Iterable[str], *, path: Iterable[Path] = ()
) -> tuple[str, list[str]] | None:
    """Import ``modules`` one at a time in one fresh interpreter; the first that loads a ``dev`` module.

    Returns (that module, the dev modules then in ``sys.modules``), or None if all of them
    imported without loading any. Runs from ``/`` so that the repository's ``tests`` and
    ``bench`` folders are importable only if something puts them on the path; ``path`` is
    prepended to ``PYTHONPATH`` (for synthetic trees).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        input=json.dumps([list(modules), list(dev)]),
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the import probe failed:\n{done.stderr}")
    found = json.loads(done.stdout)
    return None if found is None else (found[0], found[1])
