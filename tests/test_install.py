"""The package as a new user gets it: installed without extras in a fresh virtual
environment (no site packages of this one), it builds a small demo and `gisgrid serve`
answers, with the map, the API documents, tiles and a CQL2 filter.

Once, `gisgrid serve` died here with ``ModuleNotFoundError: PIL``: pillow was only in
the test extras. This test fails for any module the served paths need that the core
dependencies lack.
"""

from __future__ import annotations

import subprocess
import time
import venv
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A new virtual environment with gisgrid installed from this checkout, no extras."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, str(ROOT)], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return env


def test_core_install_builds_a_demo_and_serves_it(fresh, tmp_path):
    gisgrid = str(fresh / "bin" / "gisgrid")
    out = tmp_path / "demo"
    built = subprocess.run(
        [gisgrid, "demo", "--out", str(out), "--scale", "0.02", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # not this checkout: its folder would shadow the installed package
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert (out / "demo.gpkg").exists() and (out / "demo.html").exists()
    port = free_port()
    server = subprocess.Popen(
        [gisgrid, "serve", str(out / "demo.gpkg"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                pytest.fail(f"gisgrid serve exited: {server.stdout.read()[-3000:]}")  # type: ignore[union-attr]
            time.sleep(0.5)
        for path in ("/map", "/docs", "/redoc", "/static/maplibre-gl.js", "/styles/redmap.json"):
            assert httpx.get(f"{base}{path}", timeout=30).status_code == 200, path
        tj = httpx.get(f"{base}/tiles/redmap.json", timeout=30).json()
        lon, lat = (tj["bounds"][0] + tj["bounds"][2]) / 2, (tj["bounds"][1] + tj["bounds"][3]) / 2
        from gisgrid.publish.tiles import tiles_covering

        ((z, x, y),) = tiles_covering((lon, lat, lon, lat), 14)
        assert httpx.get(f"{base}/tiles/redmap/{z}/{x}/{y}.mvt", timeout=30).status_code in (
            200,
            204,
        )
        r = httpx.get(
            f"{base}/collections/grids/items", params={"filter": "households > 0"}, timeout=30
        )
        assert r.status_code == 200 and r.json()["numberMatched"] > 0
        # the installed package is not this checkout (a wheel, no test extras)
        where = subprocess.run(
            [str(fresh / "bin" / "python"), "-c", "import gisgrid, sys; print(gisgrid.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        ).stdout
        assert str(fresh) in where and str(ROOT) not in where
        missing = subprocess.run(
            [str(fresh / "bin" / "python"), "-c", "import pytest"],
            capture_output=True,
            cwd=tmp_path,
        )
        assert missing.returncode != 0  # nothing of the test extras came along
    finally:
        server.terminate()
        server.wait(timeout=30)
