"""The package reads as its pipeline: imports flow one way, down the stages.

``crs → io → delineate → roster → lookup → publish → (server, demo) → cli``. A
module may import from its own stage and from stages before it, never after.
Function-level imports count too. ``gisgrid._errors`` and the top-level
``gisgrid`` (the version, the error names) are below every stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gisgrid

PACKAGE = Path(gisgrid.__file__).parent
STAGES = ["crs", "io", "delineate", "roster", "lookup", "publish", "server|demo", "cli"]
RANK = {name: i for i, group in enumerate(STAGES) for name in group.split("|")}


def _stage(module: str) -> str | None:
    """The stage folder of a dotted module name inside gisgrid (None for the base)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """Every gisgrid module a file imports, with the line."""
    module = "gisgrid." + ".".join(path.relative_to(root).with_suffix("").parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("gisgrid")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name.startswith("gisgrid"):
                # `from gisgrid.x import y` may name a module y: count it as gisgrid.x.y
                out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "node_modules" not in p.parts)


def _against_the_flow(path: Path, root: Path = PACKAGE) -> list[str]:
    """Imports of a file from its own stage's successors or siblings."""
    own = _stage("gisgrid." + ".".join(path.relative_to(root).parts))
    if own is None:
        return []
    return [
        f"line {line}: {name}"
        for line, name in _imports(path, root)
        if (other := _stage(name)) is not None and other != own and RANK[other] >= RANK[own]
    ]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_down_the_pipeline(path):
    wrong = _against_the_flow(path)
    assert not wrong, f"{path.name} imports from a later or sibling stage: {wrong}"


def test_the_base_imports_no_stage():
    for path in (PACKAGE / "__init__.py", PACKAGE / "_errors.py"):
        assert not [n for _, n in _imports(path) if _stage(n)], path.name


def test_every_module_lives_in_a_stage_folder():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "_errors.py")]
    assert not loose, f"modules outside the stage folders: {loose}"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(RANK), folders ^ set(RANK)


def test_the_check_catches_imports_against_the_flow(tmp_path):
    (tmp_path / "io").mkdir()
    bad = tmp_path / "io" / "bad.py"
    bad.write_text(
        "from gisgrid.crs import parse_crs\n"  # earlier stage: fine
        "def f():\n"
        "    from gisgrid.publish.tiles import TileSource\n"  # later stage, in a function
        "    from ..server import app\n",  # later stage, relative
        "utf-8",
    )
    assert _against_the_flow(bad, tmp_path) == [
        "line 3: gisgrid.publish.tiles.TileSource",
        "line 4: gisgrid.server.app",
    ]
    (tmp_path / "server").mkdir()
    sibling = tmp_path / "server" / "x.py"
    sibling.write_text("from gisgrid.demo import make_district\n", "utf-8")
    assert _against_the_flow(sibling, tmp_path) == ["line 1: gisgrid.demo.make_district"]
