"""`gisgrid lookup --csv` over a file of any length: read, looked up and written a chunk
at a time, with the same rows and per-grid counts as looking the whole table up at once,
and nothing written when the file is bad."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from gisgrid.cli import app
from gisgrid.io.workspace import Workspace
from gisgrid.lookup.directory import Directory


def _events(ws: Workspace, n: int) -> pd.DataFrame:
    """Hotline events: points over the grids and around them, a few unusable rows, and a
    Chinese text column that must come through as it is."""
    x0, y0, x1, y1 = ws.read("grids").to_crs(4326).total_bounds
    rng = np.random.default_rng(7)
    pad = 0.2 * (x1 - x0)
    frame = pd.DataFrame(
        {
            "event_id": [f"E{i:07d}" for i in range(n)],
            "lon": rng.uniform(x0 - pad, x1 + pad, n).round(7).astype(str),
            "lat": rng.uniform(y0 - pad, y1 + pad, n).round(7).astype(str),
            "诉求": rng.choice(["噪音扰民", "路灯不亮", "垃圾清运"], n),
        }
    )
    frame.loc[::997, "lon"] = "不详"  # not a number
    frame.loc[::1009, "lat"] = ""
    return frame


def test_chunked_lookup_equals_the_whole_table_at_once(small, tmp_path):
    ws = Workspace(small)
    events = _events(ws, 20_000)
    source = tmp_path / "events.csv"
    events.to_csv(source, index=False, encoding="utf-8-sig")
    out, counts = tmp_path / "out.csv", tmp_path / "per-grid.csv"
    result = CliRunner().invoke(
        app,
        [
            "lookup",
            str(small),
            "--csv",
            str(source),
            "--out",
            str(out),
            "--counts",
            str(counts),
            "--chunk-rows",
            "3000",
        ],
    )
    assert result.exit_code == 0, result.output
    whole = Directory(ws).table(pd.read_csv(source, dtype=str, encoding="utf-8-sig"))
    got = pd.read_csv(out, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    want = pd.read_csv(
        __import__("io").StringIO(whole.to_csv(index=False)), dtype=str, keep_default_na=False
    )
    pd.testing.assert_frame_equal(got, want)
    assert got["诉求"].isin(["噪音扰民", "路灯不亮", "垃圾清运"]).all()
    inside = whole[whole["grid_code"] != ""]
    assert 0 < len(inside) < len(whole)  # some rows outside every grid, with a reason
    expected = inside.groupby("grid_code").size().sort_index()
    per = pd.read_csv(counts, dtype={"grid_code": str}).set_index("grid_code")["rows"].sort_index()
    assert per.to_dict() == expected.to_dict()
    assert f"{len(whole):,} rows" in result.output


def test_a_bad_csv_writes_nothing(small, tmp_path):
    source = tmp_path / "events.csv"
    pd.DataFrame({"x": ["1"] * 10, "y": ["2"] * 10}).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    out.write_text("an earlier result\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["lookup", str(small), "--csv", str(source), "--out", str(out), "--chunk-rows", "4"]
    )
    assert result.exit_code == 2 and "--lon-col" in result.output
    assert out.read_text(encoding="utf-8") == "an earlier result\n"  # kept, not half-written
    assert not list(tmp_path.glob(".*.tmp"))
