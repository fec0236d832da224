"""The one digest of input layers: what a run read, and when a cache is stale."""

from __future__ import annotations

import hashlib

import geopandas as gpd
import pandas as pd
import shapely

__all__ = ["input_digest"]


def input_digest(*frames: pd.DataFrame) -> str:
    """SHA-256 of the attributes and geometry of the input layers.

    Examples
    --------
    >>> a = pd.DataFrame({"x": [1, 2]})
    >>> input_digest(a) == input_digest(a.copy()) != input_digest(a.assign(x=[1, 3]))
    True
    """
    h = hashlib.sha256()
    for frame in frames:
        attrs = (
            frame.drop(columns=frame.geometry.name)
            if isinstance(frame, gpd.GeoDataFrame)
            else frame
        )
        h.update(pd.util.hash_pandas_object(attrs.astype(str), index=False).to_numpy().tobytes())
        if isinstance(frame, gpd.GeoDataFrame):
            h.update(b"".join(shapely.to_wkb(frame.geometry.values)))
    return h.hexdigest()
