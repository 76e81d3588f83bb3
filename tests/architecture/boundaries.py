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
  functions, under ``TYPE_CHECKING``). An import is an ``import``/``from`` statement, or
  any call given a string literal (positional or keyword) that names one of our modules:
  ``"bifrost.<package>…"`` with identifier parts (``"bifrost.x:attr"`` too), ``"bench.…"``,
  ``"tests.…"``, ``__import__("bifrost", fromlist=["trainer"])``, a relative
  ``import_module(".trainer", "bifrost")``; so aliases of ``import_module``,
  ``builtins.__import__``, ``runpy.run_module``, ``find_spec`` count, and so does an
  ``import`` inside a string run by ``exec``/``eval``/``compile`` (``logging.getLogger``'s
  names do not). It is lazy only inside a function body or under ``if TYPE_CHECKING:`` with
  ``TYPE_CHECKING`` from ``typing``; decorators and default values run with the ``def``, at import;
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
of the rows and from every row, a sub-module row such as ``streams.compat`` counting as part
of its package, so a chain of individually harmless edits is caught too): ``schemas`` and
``router`` are leaves (they reach no other bifrost package, ``common`` aside); ``streams``
and ``trainer`` never reach each other through any chain of eager or lazy imports; no
production unit reaches a development unit through eager imports; only the ``cli`` row lists
development units under ``lazy``, pinned to ``cli.main``; no ``EXCEPTIONS`` entry waives one
of these rules. At run time, ``load_probe`` and ``apart_probe`` import every production
module from the repository root and check that none loads development code and that no
``streams`` module loads the trainer nor the other way round.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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


def _type_checking_names(tree: ast.Module) -> tuple[frozenset[str], frozenset[str]]:
    """(names bound to ``typing.TYPE_CHECKING``, names bound to the ``typing`` module) in ``tree``.

    Only ``from typing import TYPE_CHECKING`` (or ``typing.TYPE_CHECKING``) is trusted: a
    variable of the module called ``TYPE_CHECKING`` is true or false as the module decides,
    and a name that is also assigned anywhere in the module is not trusted either.
    """
    flags: set[str] = set()
    modules: set[str] = set()
    stored: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "typing" and node.level == 0:
            flags.update(a.asname or a.name for a in node.names if a.name == "TYPE_CHECKING")
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "typing")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            stored.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(node.name)
    return frozenset(flags - stored), frozenset(modules - stored)


def _is_type_checking(test: ast.expr, flags: frozenset[str], modules: frozenset[str]) -> bool:
    return (isinstance(test, ast.Name) and test.id in flags) or (
        isinstance(test, ast.Attribute)
        and test.attr == "TYPE_CHECKING"
        and isinstance(test.value, ast.Name)
        and test.value.id in modules
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
    tree = ast.parse(source, filename=str(path))
    flags, typing_modules = _type_checking_names(tree)

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(module, path, node.lineno, alias.name, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            found.extend(
                Import(module, path, node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base, lazy)
                for alias in node.names
            )
        elif isinstance(node, ast.Call):
            found.extend(Import(module, path, node.lineno, t, lazy) for t in _dynamic_targets(node))
            found.extend(
                replace(imp, line=node.lineno, lazy=imp.lazy or lazy)
                for imp in _exec_imports(node, module, path, is_package)
            )
        for child in ast.iter_child_nodes(node):
            # A function's body runs when it is called; its decorators, default values and
            # annotations when the ``def`` runs (at import, for a module-level function).
            deferred = (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and child in node.body) or (
                isinstance(node, ast.Lambda) and child is node.body
            )
            guarded = (
                isinstance(node, ast.If) and _is_type_checking(node.test, flags, typing_modules) and child in node.body
            )
            visit(child, lazy or deferred or guarded)

    visit(tree, False)
    return found


#: First names of the modules that are ours: the ``bifrost`` namespace and the dev folders.
_OUR_ROOTS = (NAMESPACE, *DEV_FOLDERS)
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


@functools.cache
def _known_units() -> frozenset[str]:
    """Names that may follow ``bifrost.`` in a module name: the table's packages and the installed folders."""
    try:
        installed = {name.removeprefix(f"{NAMESPACE}.") for name in package_dirs()}
    except (OSError, KeyError):
        installed = set()
    return frozenset({name.split(".")[0] for name in TABLE} | installed)


def _our_module(value: object) -> str | None:
    """``value`` if it is a string naming one of our modules (``bifrost.trainer.quality``), else None.

    ``"bifrost.x:attr"`` (``pkgutil.resolve_name``) names module ``bifrost.x``. Every part must
    be an identifier (``"bifrost.routing-events"`` is a topic, ``"bifrost.streams started"``
    a message) and, below ``bifrost.``, the first one a package of ours (``bifrost.routing``
    is a topic prefix, not a package).
    """
    if not isinstance(value, str):
        return None
    name = value.split(":", 1)[0] if value.count(":") == 1 else value
    if not _DOTTED.fullmatch(name):
        return None
    parts = name.split(".")
    if parts[0] not in _OUR_ROOTS or (parts[0] == NAMESPACE and parts[1] not in _known_units()):
        return None
    return name


def _strings(node: ast.expr | None) -> list[str]:
    """The string literals ``node`` is: one, or the items of a literal list/tuple/set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


#: Calls whose string arguments look like our module names but load nothing.
_NOT_IMPORTS = frozenset({"getLogger"})


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _dynamic_targets(call: ast.Call) -> list[str]:
    """The modules of ours a call names with string literals: it may import them, so they count as imports.

    Any call, whatever it is called (an alias of ``import_module``, ``builtins.__import__``,
    ``runpy.run_module``, ``importlib.util.find_spec``, ``pkgutil.resolve_name``…): a string
    literal argument, positional or keyword, that names our code (see ``_our_module``). Also
    ``__import__("bifrost", fromlist=["trainer"])`` (``bifrost.trainer``) and a relative
    ``import_module(".trainer.quality", "bifrost")`` (``bifrost.trainer.quality``). A computed
    name cannot be checked statically, and a third-party name is not the table's business.
    ``logging.getLogger("bifrost.trainer")`` names a logger, not a module: not an import.
    """
    if _callee(call) in _NOT_IMPORTS:
        return []
    args = [*call.args, *(k.value for k in call.keywords)]
    found = [name for arg in args for text in _strings(arg) if (name := _our_module(text)) is not None]
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        head = first.value
        if _callee(call) == "__import__":
            fromlist = next((k.value for k in call.keywords if k.arg == "fromlist"), None)
            if fromlist is None and len(call.args) >= 4:
                fromlist = call.args[3]
            found += [name for item in _strings(fromlist) if item != "*" and (name := _our_module(f"{head}.{item}"))]
        if head.startswith(".") and head.strip("."):
            package = next((k.value for k in call.keywords if k.arg == "package"), None)
            package = call.args[1] if package is None and len(call.args) >= 2 else package
            for base in _strings(package):
                level = len(head) - len(head.lstrip("."))
                parts = base.split(".")
                if level - 1 < len(parts):
                    anchor = parts[: len(parts) - (level - 1)]
                    if (name := _our_module(".".join([*anchor, head.lstrip(".")]))) is not None:
                        found.append(name)
    return list(dict.fromkeys(found))


_EXEC_IMPORT = re.compile(r"\b(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))")


def _exec_imports(call: ast.Call, module: str, path: Path, is_package: bool) -> list[Import]:
    """Imports inside a string literal run by ``exec``/``eval``/``compile`` (``exec("import bifrost.trainer")``)."""
    if _callee(call) not in ("exec", "eval", "compile") or not call.args:
        return []
    found: list[Import] = []
    for text in _strings(call.args[0]):
        try:
            found += imports_of(text, module, path, is_package=is_package)
        except SyntaxError:
            found += [
                Import(module, path, call.lineno, name, False)
                for match in _EXEC_IMPORT.finditer(text)
                if (name := match.group(1) or match.group(2)).split(".")[0] in _OUR_ROOTS
            ]
    return found


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


def package_of(unit: str) -> str:
    """The package a row belongs to: ``streams.compat`` and ``streams`` are both ``streams``."""
    return unit.split(".")[0]


def _edges(table: Mapping[str, Unit], name: str, *, eager_only: bool) -> set[str]:
    """Rows ``name``'s modules may import: its ``imports`` (and ``lazy``), and the other rows of its package.

    A module may always import its own package, so a sub-module row (``streams.compat``) and
    its package row reach each other; a production row reaches a development row of its own
    package only through ``lazy`` (``cli`` -> ``cli.up``), as ``check_import`` rules.
    """
    row = table[name]
    edges = set(row.imports if eager_only else row.imports | row.lazy)
    edges |= {
        other
        for other in table
        if other != name and package_of(other) == package_of(name) and (row.dev or not table[other].dev)
    }
    return edges


def reach(table: Mapping[str, Unit], start: str, *, eager_only: bool = False) -> dict[str, list[str]]:
    """Every unit ``start`` reaches through chains of rows, each with one chain to it (``[start, …, unit]``).

    Edges are a row's ``imports``, (unless ``eager_only``) its ``lazy`` units, and the other
    rows of its own package; units missing from the table end a chain (``table_problems``
    reports them). Breadth first: the chain is a shortest one.
    """
    paths = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop(0)
        if current not in table:
            continue
        for nxt in sorted(_edges(table, current, eager_only=eager_only)):
            if nxt not in paths:
                paths[nxt] = [*paths[current], nxt]
                queue.append(nxt)
    del paths[start]
    return paths


#: The packages that reach nothing of bifrost but ``common``.
LEAVES = ("schemas", "router")
#: Pairs of packages that never reach each other.
APART = (("streams", "trainer"), ("trainer", "streams"))
#: The one row that may list development units under ``lazy``, and the modules it must pin them to.
LAZY_DEV = ("cli", frozenset({"cli.main"}))


def _hard_rule(source: str, target: str, table: Mapping[str, Unit]) -> str | None:
    """The hard rule an import from row ``source`` into row ``target`` breaks, if any (None: a table matter)."""
    one, other = package_of(source), package_of(target)
    if one == other:
        return None
    if one in LEAVES and other != "common":
        return f"{one} is a leaf"
    if (one, other) in APART:
        return f"{one} never reaches {other}"
    if source in table and target in table and not table[source].dev and table[target].dev:
        return "production code never imports development code"
    return None


def table_problems(
    table: Mapping[str, Unit] = TABLE, exceptions: Mapping[tuple[str, str], str] | None = None
) -> list[str]:
    """Rules the table itself must keep (so that editing it cannot quietly undo the architecture).

    Checked on the transitive closure and from every row: adding ``trainer`` to the ``client``
    row breaks "streams never reaches trainer", since ``streams`` lists ``client``; a
    sub-module row (``"streams.compat": _unit("trainer", …)``) is part of its package, so it
    breaks it too. Only the ``cli`` row may list development units under ``lazy``, pinned to
    ``cli.main``; an ``EXCEPTIONS`` entry may waive a table row, never one of these rules.
    """
    exceptions = EXCEPTIONS if exceptions is None else exceptions
    problems = []
    for name in table:
        if package_of(name) in LEAVES:
            extra = sorted(u for u in reach(table, name) if package_of(u) not in {package_of(name), "common"})
            if extra:
                problems.append(f"{name} is a leaf but reaches {extra}")
    for one, other in APART:
        for name in (n for n in table if package_of(n) == one):
            paths = [path for unit, path in reach(table, name).items() if package_of(unit) == other]
            if paths:
                shortest = min(paths, key=lambda p: (len(p), p))
                problems.append(f"{name} reaches {other}: {' -> '.join(shortest)}")
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
            lazy_dev = sorted(t for t in row.lazy if t in table and table[t].dev)
            if lazy_dev and (name, row.lazy_in) != LAZY_DEV:
                problems.append(
                    f"production {name} lists development code {lazy_dev} under lazy: only the "
                    f"{LAZY_DEV[0]} row may, pinned to {', '.join(sorted(LAZY_DEV[1]))} by lazy_in"
                )
    for (module, target), _why in exceptions.items():
        source = unit_of(module, table)
        rule = None if source is None else _hard_rule(source, target, table)
        if rule is not None:
            problems.append(f"exception ({module}, {target}) waives a hard rule: {rule}")
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
    modules: Iterable[str], dev: Iterable[str], *, path: Iterable[Path] = (), cwd: Path = ROOT
) -> tuple[str, list[str]] | None:
    """Import ``modules`` one at a time in one fresh interpreter; the first that loads a ``dev`` module.

    Returns (that module, the dev modules then in ``sys.modules``), or None if all of them
    imported without loading any. Runs from ``cwd``, the repository root, which ``python -c``
    puts first on ``sys.path``: the ``tests`` and ``bench`` folders are importable there, so a
    production module that imports them inside ``try: … except ImportError`` is seen loading
    them (run from elsewhere, its ImportError would be swallowed and hide it). ``path`` is
    prepended to ``PYTHONPATH`` (for synthetic trees).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        input=json.dumps([list(modules), list(dev)]),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the import probe failed:\n{done.stderr}")
    found = json.loads(done.stdout)
    return None if found is None else (found[0], found[1])


#: (package, the package its modules must never load): the worker and the trainer, at run time.
APART_AT_RUN_TIME = ((f"{NAMESPACE}.streams", f"{NAMESPACE}.trainer"), (f"{NAMESPACE}.trainer", f"{NAMESPACE}.streams"))


def apart_probe(
    modules: Iterable[str],
    pairs: Iterable[tuple[str, str]] = APART_AT_RUN_TIME,
    *,
    path: Iterable[Path] = (),
    cwd: Path = ROOT,
) -> list[tuple[str, str, list[str]]]:
    """For each (package, other) pair: the first module of ``package`` in ``modules`` that loads ``other``.

    Returns (package, that module, the modules of ``other`` then loaded) per pair that breaks.
    One fresh interpreter per pair, importing only that package's modules one at a time: in an
    interpreter that had already imported the other package's modules, an import of them
    would find them cached and could not be told apart.
    """
    modules = list(modules)
    found = []
    for package, other in pairs:
        own = [m for m in modules if m == package or m.startswith(f"{package}.")]
        culprit = load_probe(own, [other], path=path, cwd=cwd)
        if culprit is not None:
            found.append((package, *culprit))
    return found
