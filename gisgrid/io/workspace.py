"""The workspace: one GeoPackage file holding every layer of a jurisdiction.

A workspace opens in QGIS as it is. All layers share one metric CRS, the
CGCS2000 Gauss–Krüger zone chosen at the first import, recorded in the
``gisgrid_meta`` table.

Writes are atomic: :meth:`Workspace.write` copies the file, writes into the
copy, and moves it over the original with :func:`os.replace`, so a crash
mid-write leaves the previous workspace whole.

Examples
--------
>>> import tempfile, pathlib
>>> ws = Workspace(pathlib.Path(tempfile.mkdtemp()) / "w.gpkg")
>>> ws.exists
False
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pyproj

from gisgrid._errors import LayerNotFoundError, WorkspaceError

__all__ = ["Workspace", "WorkspaceLike", "open_workspace"]

logger = logging.getLogger(__name__)

META_TABLE = "gisgrid_meta"


class Workspace:
    """A GeoPackage file of gisgrid layers.

    Parameters
    ----------
    path
        The ``.gpkg`` file. It need not exist yet: the first write creates it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        """Whether the file exists."""
        return self.path.is_file()

    def layers(self) -> list[str]:
        """Names of the layers and tables in the workspace."""
        if not self.exists:
            return []
        try:
            return [str(name) for name, _ in pyogrio.list_layers(self.path)]
        except pyogrio.errors.DataSourceError as exc:
            raise WorkspaceError(f"{self.path} is not a GeoPackage workspace: {exc}") from exc

    def __contains__(self, layer: object) -> bool:
        return layer in self.layers()

    def meta(self) -> dict[str, str]:
        """Key–value settings of the workspace (its CRS, the gisgrid version)."""
        if META_TABLE not in self:
            return {}
        table = pyogrio.read_dataframe(self.path, layer=META_TABLE, read_geometry=False)
        return dict(zip(table["key"].astype(str), table["value"].astype(str), strict=True))

    @property
    def crs(self) -> pyproj.CRS | None:
        """The metric CRS every layer is stored in, once chosen."""
        text = self.meta().get("crs")
        return pyproj.CRS.from_user_input(text) if text else None

    def read(self, layer: str, *, columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Read one layer.

        Parameters
        ----------
        layer
            Layer or table name.
        columns
            Fields to read; all when None.

        Returns
        -------
        geopandas.GeoDataFrame or pandas.DataFrame
            A DataFrame for tables without geometry.

        Raises
        ------
        LayerNotFoundError
            When the layer is not in the workspace.
        """
        if layer not in self:
            have = ", ".join(self.layers()) or "none"
            raise LayerNotFoundError(
                f"layer {layer!r} is not in {self.path} (it has: {have}); "
                f"add it with `gisgrid import {self.path} {layer} FILE`"
            )
        return pyogrio.read_dataframe(self.path, layer=layer, columns=columns, use_arrow=True)

    def _mode(self) -> int:
        """The file mode to give a new version: the old file's, else 0666 less the umask."""
        if self.exists:
            return self.path.stat().st_mode & 0o777
        return 0o666 & ~_umask()

    def write(
        self,
        layers: Mapping[str, pd.DataFrame],
        *,
        meta: Mapping[str, str] | None = None,
        fresh: bool = False,
    ) -> None:
        """Replace layers atomically.

        Every layer in ``layers`` is replaced as a whole; other layers are kept
        (unless ``fresh``). The new file appears at once or not at all.

        Parameters
        ----------
        layers
            Layer name to (Geo)DataFrame. A DataFrame without geometry becomes a
            table.
        meta
            Settings to merge into the ``gisgrid_meta`` table.
        fresh
            Start from an empty workspace: the file afterwards holds only
            ``layers`` and ``meta``.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=".tmp.gpkg", dir=self.path.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if self.exists and not fresh:
                shutil.copyfile(self.path, tmp)
            else:
                tmp.unlink()
            for name, frame in layers.items():
                _write_layer(tmp, name, frame)
            if meta:
                old = {} if fresh else self.meta()
                merged = {**old, **{k: str(v) for k, v in meta.items()}}
                table = pd.DataFrame({"key": list(merged), "value": list(merged.values())})
                _write_layer(tmp, META_TABLE, table)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, self._mode())  # mkstemp makes files private; keep the usual mode
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        logger.info("wrote %s to %s", ", ".join(layers) or "settings", self.path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_layer(path: Path, name: str, frame: pd.DataFrame) -> None:
    """Write one layer into a GeoPackage, replacing a layer of that name."""
    if isinstance(frame, gpd.GeoDataFrame) and frame.crs is None:
        raise WorkspaceError(f"layer {name!r} has no CRS; refusing to write it")
    frame = frame.reset_index(drop=True)
    for column in frame.columns:  # GeoPackage has no list or dict fields
        if frame[column].dtype == object and frame[column].map(type).isin([dict, list]).any():
            frame[column] = frame[column].map(json.dumps, na_action="ignore")
    pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG")


WorkspaceLike = Workspace | str | os.PathLike[str]
"""A workspace, or the path of one."""


def open_workspace(workspace: WorkspaceLike) -> Workspace:
    """The workspace itself, or the workspace at a path."""
    return workspace if isinstance(workspace, Workspace) else Workspace(workspace)
