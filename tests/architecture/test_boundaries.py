"""Every module keeps to the import table of :mod:`tests.architecture.boundaries`, and the checker catches a breach."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.architecture import boundaries
from tests.architecture.boundaries import (
    ROOT,
    TABLE,
    Unit,
    _unit,
    check,
    check_source,
    iter_modules,
    split_exceptions,
    table_problems,
)


def test_every_module_keeps_to_the_table() -> None:
    uncovered, stale = split_exceptions(check())
    assert [str(v) for v in uncovered] == []
    assert stale == []  # an exception whose import is gone: delete it from EXCEPTIONS


def test_the_table_keeps_the_architecture_rules() -> None:
    assert table_problems() == []


def test_every_python_folder_is_checked() -> None:
    checked = {path.relative_to(ROOT).parts[0] for _, path in iter_modules()}
    skipped = {"build", "scripts", "data"}  # build output; shell scripts; data files
    folders = {
        path.relative_to(ROOT).parts[0]
        for path in ROOT.glob("*/**/*.py")
        if not path.relative_to(ROOT).parts[0].startswith(".")
    }
    assert folders - skipped - checked == set()
    assert {name.removeprefix("bifrost.") for name in boundaries.package_dirs()} <= TABLE.keys()


STREAMS_MODULE = Path("streams/fake.py")
STREAMS = "bifrost.streams.fake", STREAMS_MODULE
CLI_MAIN = "bifrost.cli.main", Path("cli/main.py")


@pytest.mark.parametrize(
    "source",
    [
        "from bifrost.trainer.store import ArtifactStore\n",
        "import bifrost.trainer.logged\n",
        "def later():\n    from bifrost.trainer import retrain\n",  # a function-level import counts too
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bifrost.trainer.store import ArtifactStore\n",
        "from bifrost import trainer\n",
    ],
)
def test_the_checker_fails_on_streams_importing_the_trainer(source: str) -> None:
    (violation,) = check_source(source, "bifrost.streams.fake", STREAMS_MODULE)
    assert (violation.source, violation.target) == ("streams", "trainer")


def test_the_checker_fails_on_a_leaf_importing_a_package() -> None:
    (violation,) = check_source("from bifrost.config import Settings\n", "bifrost.router.fake", Path("router/fake.py"))
    assert (violation.source, violation.target) == ("router", "config")


def test_relative_imports_are_resolved() -> None:
    (violation,) = check_source("from ..trainer import store\n", "bifrost.streams.fake", STREAMS_MODULE)
    assert violation.imp.target == "bifrost.trainer.store"
    assert (
        check_source("from .ingest import fold\n", "bifrost.streams", Path("streams/__init__.py"), is_package=True)
        == []
    )


def test_production_code_imports_dev_code_only_lazily_and_only_where_listed() -> None:
    cli_main = "bifrost.cli.main", Path("cli/main.py")
    eager = check_source("from bifrost.devkafka import LocalBroker\n", *cli_main)
    lazy = check_source("def kafka():\n    from bifrost.devkafka import LocalBroker\n", *cli_main)
    own_dev_module = check_source("from bifrost.cli.up import run_local_loop\n", *cli_main)
    own_dev_module_lazy = check_source("def up():\n    from bifrost.cli import up\n", *cli_main)
    not_listed = check_source(
        "def f():\n    from bifrost.devkafka import LocalBroker\n",
        "bifrost.streams.preflight",
        Path("streams/preflight.py"),
    )
    assert [v.target for v in eager] == ["devkafka"]
    assert lazy == []
    assert [v.target for v in own_dev_module] == ["cli.up"]
    assert own_dev_module_lazy == []
    assert [v.reason for v in not_listed] == ["production code must not import development code"]


def test_the_gates_may_not_import_the_gate_simulator() -> None:
    """The simulator measures the worker's gates; the gates package must not re-export any of it."""
    gates = "bifrost.streams.rollout.gates", Path("streams/rollout/gates/__init__.py")
    (eager,) = check_source("from bifrost.gatesim.naive import naive_gates\n", *gates, is_package=True)
    (lazy,) = check_source("def f():\n    from bifrost.gatesim import simulation\n", *gates, is_package=True)
    assert (eager.source, eager.target, eager.reason) == (
        "streams",
        "gatesim",
        "production code must not import development code",
    )
    assert lazy.reason == "production code must not import development code"  # only cli lists it under lazy
    assert (
        check_source(
            "def simulate():\n    from bifrost.gatesim.cli import main_simulate_gates\n",
            "bifrost.cli.main",
            Path("cli/main.py"),
        )
        == []
    )


def test_dev_and_test_code_may_import_dev_code() -> None:
    assert (
        check_source(
            "from bifrost.devkafka import LocalBroker\nfrom bench.chaos import ChaosConfig\n",
            "tests.fake",
            Path("tests/fake.py"),
        )
        == []
    )


def test_an_exception_covers_only_its_own_import_and_goes_stale_without_it() -> None:
    leak = check_source("from bifrost.trainer.store import ArtifactStore\n", "bifrost.streams.fake", STREAMS_MODULE)
    other = check_source("from bifrost.trainer.store import ArtifactStore\n", "bifrost.streams.other", STREAMS_MODULE)
    exceptions = {("bifrost.streams.fake", "trainer"): "why"}
    assert split_exceptions(leak + other, exceptions) == (other, [])
    assert split_exceptions([], exceptions) == ([], [("bifrost.streams.fake", "trainer")])


def test_a_package_missing_from_the_table_is_reported() -> None:
    (violation,) = check_source("import bifrost.newthing\n", "bifrost.streams.fake", STREAMS_MODULE)
    assert violation.reason == "imported package is not in the table"


def test_a_table_that_breaks_the_rules_is_reported() -> None:
    broken = dict(TABLE)
    broken["router"] = Unit(dev=False, imports=frozenset({"config"}), why="")
    broken["streams"] = Unit(dev=False, imports=TABLE["streams"].imports | {"trainer", "devkafka"}, why="")
    assert table_problems(broken) == [
        "router is a leaf but reaches ['config', 'kafka', 'schemas']",
        "streams reaches trainer: streams -> trainer",
        "production streams reaches development code ['devkafka'] eagerly (streams -> devkafka)",
        # every production unit that lists streams now loads the broker too
        "production webhooks reaches development code ['devkafka'] eagerly (webhooks -> streams -> devkafka)",
        "production catalog reaches development code ['devkafka'] eagerly (catalog -> streams -> devkafka)",
        "production cli reaches development code ['devkafka'] eagerly (cli -> streams -> devkafka)",
    ]


def _with(table: dict[str, Unit], name: str, *, add: str = "", lazy: str = "") -> dict[str, Unit]:
    """A copy of ``table`` whose row ``name`` also lists ``add`` (eagerly) and/or ``lazy``."""
    row = table[name]
    changed = dict(table)
    changed[name] = replace(
        row,
        imports=row.imports | ({add} if add else set()),
        lazy=row.lazy | ({lazy} if lazy else set()),
    )
    return changed


def test_table_rules_are_checked_through_chains_of_rows() -> None:
    """Each edit below passes a row-by-row check; the closure catches them (the reviewer's client -> trainer)."""
    via_client = table_problems(_with(dict(TABLE), "client", add="trainer"))
    assert "streams reaches trainer: streams -> client -> trainer" in via_client
    via_lazy = table_problems(_with(dict(TABLE), "storage", lazy="catalog"))  # trainer -> storage ~> catalog -> streams
    assert "trainer reaches streams: trainer -> storage -> catalog -> streams" in via_lazy
    leaf = table_problems(_with(dict(TABLE), "common", add="kafka"))  # router -> common -> kafka
    assert "router is a leaf but reaches ['kafka']" in leaf
    assert "schemas is a leaf but reaches ['kafka']" in leaf
    dev_by_chain = table_problems(_with(dict(TABLE), "kafka", add="devkafka"))  # config -> kafka -> devkafka
    assert (
        "production config reaches development code ['devkafka'] eagerly (config -> kafka -> devkafka)" in dev_by_chain
    )
    assert table_problems(_with(dict(TABLE), "catalog", lazy="trainer")) == []  # a lazy production edge is a row matter


def test_dynamic_imports_of_our_modules_count_as_imports() -> None:
    eager_call = check_source('import importlib\nq = importlib.import_module("bifrost.trainer.quality")\n', *STREAMS)
    eager_dunder = check_source('_b = __import__("bifrost.devkafka.broker")\n', *STREAMS)
    bare = check_source('from importlib import import_module\nimport_module("bifrost.trainer.store")\n', *STREAMS)
    lazy = check_source('def f():\n    return __import__("bifrost.devkafka.broker")\n', *CLI_MAIN)
    dev_folder = check_source('__import__("bench.chaos")\n', *STREAMS)
    assert [(v.target, v.imp.line, v.imp.lazy) for v in eager_call] == [("trainer", 2, False)]
    assert [(v.target, v.imp.lazy) for v in eager_dunder] == [("devkafka", False)]
    assert [v.target for v in bare] == ["trainer"]
    assert lazy == []  # cli.main may load devkafka inside its dev-only command
    assert [v.target for v in dev_folder] == ["bench"]
    eager_in_cli = check_source('_b = __import__("bifrost.devkafka.broker")\n', *CLI_MAIN)
    assert [v.reason for v in eager_in_cli] == ["development code: import it inside the dev-only command"]
    # Computed names and third-party modules are not the table's business.
    assert check_source('import importlib\nimportlib.import_module(NAME)\n__import__("gzip")\n', *STREAMS) == []


def test_the_checker_finds_a_dynamic_import_written_into_the_tree(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    (tree / "streams" / "kafka_transport.py").write_text('import os\n\n_q = __import__("bifrost.trainer.quality")\n')
    (violation,) = check(tree)
    assert (violation.imp.module, violation.imp.line, violation.target) == (
        "bifrost.streams.kafka_transport",
        3,
        "trainer",
    )


def test_only_cli_main_may_lazily_import_the_dev_code() -> None:
    """The reviewer's breach: a lazy devkafka import in an ordinary command module of the cli package."""
    rollout_cmd = "bifrost.cli.rollout_cmd", Path("cli/rollout_cmd.py")
    for source in (
        "def run():\n    from bifrost.devkafka.broker import LocalBroker\n",
        "def run():\n    from bifrost.gatesim.cli import main_simulate_gates\n",
        "def run():\n    from bifrost.cli import up\n",
        'def run():\n    __import__("bifrost.devkafka.broker")\n',
    ):
        (violation,) = check_source(source, *rollout_cmd)
        assert violation.reason == "allowed only in cli.main, inside the command that needs it", source
    assert check_source("def kafka():\n    from bifrost.devkafka.broker import LocalBroker\n", *CLI_MAIN) == []
    assert TABLE["cli"].lazy_in == frozenset({"cli.main"})


def _tree(tmp_path: Path) -> Path:
    """A small repository: packages streams and trainer, folders bench and tests."""
    tree = tmp_path / "repo"
    (tree / "streams").mkdir(parents=True)
    (tree / "trainer").mkdir()
    (tree / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "bifrost.streams" = "streams", "bifrost.trainer" = "trainer" }\n'
    )
    for folder in ("streams", "trainer", "bench", "tests"):
        (tree / folder).mkdir(exist_ok=True)
        (tree / folder / "__init__.py").write_text("")
    return tree


def test_the_checker_fails_on_a_wrong_import_written_into_the_tree(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    (tree / "streams" / "ok.py").write_text("from bifrost.schemas.events import RoutingEvent\n")
    assert check(tree) == []
    (tree / "streams" / "leak.py").write_text("import os\n\n\ndef f():\n    from bifrost.trainer.retrain import run\n")
    (violation,) = check(tree)
    assert (violation.imp.module, violation.imp.line, violation.source, violation.target) == (
        "bifrost.streams.leak",
        5,
        "streams",
        "trainer",
    )


DEV_CODE = (
    "bifrost.devkafka",
    "bifrost.cli.up",
    "bench",
    "tests",
    "bifrost.gatesim",
)


@pytest.mark.parametrize(
    ("entry_point", "never_loaded"),
    [
        ("bifrost.cli.main", DEV_CODE),
        ("bifrost.streams.app", (*DEV_CODE, "bifrost.trainer")),
        ("bifrost.trainer.service", (*DEV_CODE, "bifrost.streams")),
        ("bifrost.trainer.cli", (*DEV_CODE, "bifrost.streams")),
        ("bifrost.catalog.service", DEV_CODE),
    ],
)
def test_importing_a_service_loads_no_dev_code_nor_the_other_service(
    entry_point: str, never_loaded: tuple[str, ...]
) -> None:
    """The same rules at run time: what a fresh interpreter has loaded after importing the entry point."""
    probe = f"import importlib, sys; importlib.import_module({entry_point!r}); print(*sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    names = loaded.stdout.split()
    assert entry_point in names
    assert [n for n in names if n in never_loaded or n.startswith(tuple(f"{p}." for p in never_loaded))] == []


def test_importing_every_production_module_loads_no_dev_code() -> None:
    """Every production module, not only the entry points: a dev import hidden in a command module shows here."""
    modules = boundaries.production_modules()
    assert {"bifrost.cli.rollout_cmd", "bifrost.streams.kafka_transport", "bifrost.webhooks.deliverer"} <= set(modules)
    assert not [m for m in modules if m.startswith(("bifrost.cli.up", "bifrost.devkafka", "bifrost.gatesim"))]
    assert boundaries.dev_prefixes() == ("bench", "bifrost.cli.up", "bifrost.devkafka", "bifrost.gatesim", "tests")
    assert boundaries.load_probe(modules, boundaries.dev_prefixes()) is None


def test_the_probe_names_the_first_module_that_loads_dev_code(tmp_path: Path) -> None:
    package = tmp_path / "fakeprod"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "ok.py").write_text("import json\n")
    (package / "leak.py").write_text('import importlib\n_b = importlib.import_module("fakedev.broker")\n')
    (package / "after.py").write_text("")
    (tmp_path / "fakedev").mkdir()
    (tmp_path / "fakedev" / "__init__.py").write_text("")
    (tmp_path / "fakedev" / "broker.py").write_text("")
    modules = ["fakeprod.ok", "fakeprod.leak", "fakeprod.after"]
    assert boundaries.load_probe(modules, ["fakedev"], path=[tmp_path]) == (
        "fakeprod.leak",
        ["fakedev", "fakedev.broker"],
    )
    assert boundaries.load_probe(["fakeprod.ok", "fakeprod.after"], ["fakedev"], path=[tmp_path]) is None


# Second review: string literals naming our code in any call, eager decorators and defaults,
# TYPE_CHECKING only from typing, the table's hard rules from every row, the probe's blind spots.


@pytest.mark.parametrize(
    "source",
    [
        '_im = __import__("importlib").import_module\n_im("bifrost.trainer.quality")\n',
        'import importlib\nimportlib.__import__("bifrost.trainer.quality")\n',
        'import builtins\nbuiltins.__import__("bifrost.trainer.quality")\n',
        '__import__("bifrost", fromlist=["trainer"])\n',
        '__import__("bifrost", None, None, ("trainer",))\n',
        'import importlib\nimportlib.import_module(".trainer.quality", "bifrost")\n',
        'import importlib\nimportlib.import_module("..trainer", package="bifrost.streams")\n',
        'import runpy\nrunpy.run_module("bifrost.trainer.cli", run_name="__main__")\n',
        'import runpy\nrunpy.run_module(mod_name="bifrost.trainer.cli")\n',
        'from importlib.util import find_spec\nfind_spec("bifrost.trainer")\n',
        'import pkgutil\nscore = pkgutil.resolve_name("bifrost.trainer.quality:score")\n',
        'exec("import bifrost.trainer.quality")\n',
        'exec("from bifrost.trainer import quality")\n',
        'eval(compile("__import__(\'bifrost.trainer\')", "<x>", "eval"))\n',
    ],
)
def test_a_string_naming_our_code_passed_to_any_call_is_an_import(source: str) -> None:
    (violation,) = check_source(source, *STREAMS)
    assert (violation.source, violation.target, violation.imp.lazy) == ("streams", "trainer", False), source
    assert violation.imp.target.startswith("bifrost.trainer"), violation.imp.target


def test_strings_that_only_look_like_our_modules_are_not_imports() -> None:
    source = (
        "import logging\n"
        'log = logging.getLogger("bifrost.trainer")\n'  # a logger name, not a module
        'log.info("bifrost.trainer started")\n'  # a message
        'send("bifrost.routing-events")\n'  # a topic: a hyphen is no module name
        'send(topic="bifrost.routing.decisions")\n'  # "routing" is no package of ours
        'f("bifrost.trainer.")\n'
        'exec("x = 1")\n'
    )
    assert check_source(source, *STREAMS) == []


def test_the_checker_finds_an_aliased_dynamic_import_written_into_the_tree(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    (tree / "streams" / "quality_view.py").write_text(
        'import runpy\n\n_im = __import__("importlib").import_module\n_q = _im("bifrost.trainer.quality")\n'
        'TOPIC = "bifrost.routing-events"\n'
    )
    (violation,) = check(tree)
    assert (violation.imp.module, violation.imp.line, violation.target) == (
        "bifrost.streams.quality_view",
        4,
        "trainer",
    )


@pytest.mark.parametrize(
    "source",
    [
        "def f(x=__import__('bifrost.devkafka.broker')):\n    return x\n",
        "def f(*, x=__import__('bifrost.devkafka.broker')):\n    return x\n",
        "@__import__('bifrost.devkafka.broker').wrap\ndef f():\n    pass\n",
        "class C:\n    def f(self, x=__import__('bifrost.devkafka.broker')):\n        return x\n",
        "g = lambda x=__import__('bifrost.devkafka.broker'): x\n",
    ],
)
def test_decorators_and_default_values_run_at_import(source: str) -> None:
    """cli.main may load devkafka only inside a function body: a default or a decorator runs with the def."""
    (violation,) = check_source(source, *CLI_MAIN)
    assert (violation.target, violation.imp.lazy) == ("devkafka", False)
    assert violation.reason == "development code: import it inside the dev-only command"
    body = check_source("def f(x=1):\n    return __import__('bifrost.devkafka.broker')\n", *CLI_MAIN)
    assert body == []  # the body itself still runs only when called


@pytest.mark.parametrize(
    ("source", "trusted"),
    [
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bifrost.devkafka\n", True),
        ("import typing\nif typing.TYPE_CHECKING:\n    import bifrost.devkafka\n", True),
        ("from typing import TYPE_CHECKING as TC\nif TC:\n    import bifrost.devkafka\n", True),
        ("TYPE_CHECKING = True\nif TYPE_CHECKING:\n    import bifrost.devkafka\n", False),
        ("from settings import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bifrost.devkafka\n", False),
        ("import os as typing\nif typing.TYPE_CHECKING:\n    import bifrost.devkafka\n", False),
        (
            "from typing import TYPE_CHECKING\nTYPE_CHECKING = True\nif TYPE_CHECKING:\n    import bifrost.devkafka\n",
            False,
        ),
    ],
)
def test_only_typing_type_checking_makes_an_import_lazy(source: str, trusted: bool) -> None:
    violations = check_source(source, *CLI_MAIN)  # cli.main: devkafka lazily yes, eagerly no
    assert boundaries.imports_of(source, *CLI_MAIN)[-1].lazy is trusted, source
    expected = [] if trusted else ["development code: import it inside the dev-only command"]
    assert [v.reason for v in violations] == expected


def test_a_sub_module_row_is_part_of_its_package_for_the_hard_rules() -> None:
    compat = dict(TABLE, **{"streams.compat": _unit("trainer", why="")})
    assert table_problems(compat) == [
        "streams reaches trainer: streams -> streams.compat -> trainer",
        "streams.compat reaches trainer: streams.compat -> trainer",
    ]
    extra = dict(TABLE, **{"router.extra": _unit("config", why="")})
    assert table_problems(extra) == [
        "router is a leaf but reaches ['config', 'kafka', 'schemas']",
        "router.extra is a leaf but reaches ['config', 'kafka', 'schemas']",
    ]
    back = dict(TABLE, **{"trainer.bridge": _unit("client", "catalog", why="")})  # catalog -> streams
    assert "trainer.bridge reaches streams: trainer.bridge -> catalog -> streams" in table_problems(back)
    dev = dict(TABLE, **{"storage.fixtures": _unit("devkafka", why="")})
    assert (
        "production storage reaches development code ['devkafka'] eagerly (storage -> storage.fixtures -> devkafka)"
        in table_problems(dev)
    )


def test_only_the_cli_row_may_list_dev_code_under_lazy_pinned_to_cli_main() -> None:
    webhooks = table_problems(_with(dict(TABLE), "webhooks", lazy="devkafka"))
    assert webhooks == [
        "production webhooks lists development code ['devkafka'] under lazy: only the cli row may, "
        "pinned to cli.main by lazy_in"
    ]
    unpinned = dict(TABLE, cli=replace(TABLE["cli"], lazy_in=frozenset()))
    assert [p.split(":")[0] for p in table_problems(unpinned)] == [
        "production cli lists development code ['cli.up', 'devkafka', 'gatesim'] under lazy"
    ]


def test_an_exception_may_not_waive_a_hard_rule() -> None:
    exceptions = {
        ("bifrost.streams.fake", "trainer"): "",
        ("bifrost.router.fake", "config"): "",
        ("bifrost.webhooks.fake", "devkafka"): "",
        ("bifrost.client.fake", "trainer"): "",  # not a hard rule: a row matter
    }
    assert table_problems(TABLE, exceptions) == [
        "exception (bifrost.streams.fake, trainer) waives a hard rule: streams never reaches trainer",
        "exception (bifrost.router.fake, config) waives a hard rule: router is a leaf",
        "exception (bifrost.webhooks.fake, devkafka) waives a hard rule: "
        "production code never imports development code",
    ]


def test_no_streams_module_loads_the_trainer_nor_the_other_way_round() -> None:
    modules = boundaries.production_modules()
    assert len([m for m in modules if m.startswith(("bifrost.streams.", "bifrost.trainer."))]) > 20
    assert boundaries.apart_probe(modules) == []


def _fake_packages(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_apart_probe_names_the_first_module_that_loads_the_other_package(tmp_path: Path) -> None:
    _fake_packages(
        tmp_path,
        {
            "fakeworker/__init__.py": "",
            "fakeworker/ok.py": "import json\n",
            "fakeworker/leak.py": "from faketrainer import quality\n",
            "faketrainer/__init__.py": "",
            # Loaded by fakeworker.leak in the first run; in its own run, seen loading fakeworker.
            "faketrainer/quality.py": "import fakeworker.ok\n",
        },
    )
    modules = ["fakeworker.ok", "fakeworker.leak", "faketrainer.quality"]
    pairs = [("fakeworker", "faketrainer"), ("faketrainer", "fakeworker")]
    assert boundaries.apart_probe(modules, pairs, path=[tmp_path]) == [
        ("fakeworker", "fakeworker.leak", ["faketrainer", "faketrainer.quality"]),
        ("faketrainer", "faketrainer.quality", ["fakeworker", "fakeworker.ok"]),
    ]
    assert boundaries.apart_probe(["fakeworker.ok"], pairs, path=[tmp_path]) == []


def test_the_probe_runs_from_the_repository_root(tmp_path: Path) -> None:
    """A swallowed ImportError hid this: run from ``/``, ``import tests…`` fails and the module seems clean."""
    _fake_packages(
        tmp_path,
        {
            "fakeprod/__init__.py": "",
            "fakeprod/hidden.py": "try:\n    import tests.architecture\nexcept ImportError:\n    pass\n",
        },
    )
    culprit = boundaries.load_probe(["fakeprod.hidden"], ["tests", "bench"], path=[tmp_path])
    assert culprit is not None and culprit[0] == "fakeprod.hidden"
    assert "tests.architecture" in culprit[1]
