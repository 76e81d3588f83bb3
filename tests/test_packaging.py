"""The built wheel installs one namespace and works without the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_under_one_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("bifrost_optimizer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"bifrost"}, top_level
    assert "bifrost/devkafka/pom.xml" in names
    import tomllib

    for name in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]:
        assert f"{name.replace('.', '/')}/py.typed" in names, name  # PEP 561, per package of the namespace
    for static in (
        "dashboard.html",
        "dashboard.js",
        "dashboard.css",
        "uPlot.iife.min.js",
        "uPlot.min.css",
        "uPlot.LICENSE",
    ):
        assert f"bifrost/streams/web/static/{static}" in names, static  # the dashboard works from an installed wheel

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True
    )
    probe = (
        "import bifrost.schemas, bifrost.streams.app, bifrost.cli.main, sys;"
        "print(bifrost.schemas.__file__);"
        "import importlib.util as u; print(u.find_spec('schemas'), u.find_spec('streams'))"
    )
    # -I: isolated mode, so neither the source tree nor an editable install is on the path.
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); " + probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith(str(target))
    assert second == "None None"  # no generic top-level names leak


def test_every_subpackage_is_listed() -> None:
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    for name, folder in tool["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            dotted = ".".join([name, *relative.parts]) if relative.parts else name
            assert dotted in listed, f"{dotted} is missing from [tool.setuptools] packages"
