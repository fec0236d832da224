"""The notebooks run: their code cells execute in order without error."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_code_cells_run(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = [("".join(c["source"])) for c in cells if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code"
    namespace: dict = {}
    for source in code:
        exec(compile(source, str(path), "exec"), namespace)
    assert namespace["run"].metrics["contiguity"] == 1.0
