"""Vector tiles as a client decodes them (GDAL's MVT driver): neighbouring grids neither
gap nor overlap at any zoom, and every zoom is simplified to its resolution.

Gaps and overlap are measured here with shapely alone, in tile units (1/4096 of a
tile's side): overlap is the area covered twice, gaps the area inside the layer's own
outline (shrunk by two units) that no decoded polygon covers.
"""

from __future__ import annotations

import pyogrio
import pytest
import shapely

from gisgrid.io.workspace import Workspace
from gisgrid.publish.catalog import Catalog
from gisgrid.publish.tiles import TileSource, tile_bounds, tiles_covering

from .mvtread import polygon_rings

EXTENT = 4096


@pytest.fixture(scope="module")
def source(demo_full) -> TileSource:
    return TileSource(Catalog(Workspace(demo_full.workspace)), role="public")


def _decoded(source: TileSource, tileset: str, layer: str, z: int, x: int, y: int, folder):
    path = folder / tileset / str(z) / str(x) / f"{y}.pbf"  # GDAL georeferences z/x/y.pbf
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(source.render(tileset, z, x, y))
    return pyogrio.read_dataframe(path, layer=layer).geometry.values  # EPSG:3857


def _densest(source: TileSource, collection: str, z: int) -> tuple[int, int, int]:
    frame = source.catalog.frame(collection, "public")
    return max(
        tiles_covering(source.catalog.bounds([collection]), z),
        key=lambda t: int(
            frame.sindex.query(shapely.box(*_lonlat(*t)), predicate="intersects").size
        ),
    )


def _lonlat(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    from pyproj import Transformer

    to = Transformer.from_crs(3857, 4326, always_xy=True)
    x0, y0, x1, y1 = tile_bounds(z, x, y)
    (a, c), (b, d) = to.transform([x0, x1], [y0, y1])
    return a, b, c, d


def _gaps_and_overlap(source: TileSource, collection: str, z: int, x: int, y: int, geoms):
    """(gaps, overlap) in tile units², and the features measured."""
    bounds = tile_bounds(z, x, y)
    unit = (bounds[2] - bounds[0]) / EXTENT
    inside = shapely.box(*bounds)
    pieces = shapely.intersection(geoms, inside)
    pieces = pieces[~shapely.is_empty(pieces)]
    union = shapely.union_all(pieces)
    overlap = float(shapely.area(pieces).sum() - union.area) / unit**2
    truth = source.catalog.frame(collection, "public").to_crs(3857).geometry.values
    outline = shapely.intersection(shapely.union_all(truth), inside).buffer(-2 * unit)
    gaps = float(outline.difference(union).area) / unit**2
    return gaps, overlap, len(pieces)


@pytest.mark.parametrize("z", [10, 12, 14, 16])
def test_neighbouring_grids_never_gap_or_overlap_in_decoded_tiles(source, tmp_path, z):
    tile = _densest(source, "grids", z)
    geoms = _decoded(source, "grids", "grids", *tile, tmp_path)
    gaps, overlap, n = _gaps_and_overlap(source, "grids", *tile, geoms)
    assert n >= 20  # a tile with many neighbours
    # simplified feature by feature, the densest z12 tile had 6,782 units² of gaps
    assert gaps < 1.0, f"{gaps:.1f} tile units² of gaps between grids at z{z}"
    assert overlap < 1.0, f"{overlap:.1f} tile units² of overlap between grids at z{z}"


def test_communities_and_streets_share_their_edges_in_tiles(source, tmp_path):
    for collection in ("communities", "streets"):
        tile = _densest(source, collection, 12)
        geoms = _decoded(source, collection, collection, *tile, tmp_path)
        gaps, overlap, _ = _gaps_and_overlap(source, collection, *tile, geoms)
        assert gaps < 1.0 and overlap < 1.0, (collection, gaps, overlap)


def test_every_zoom_is_simplified_to_its_resolution(source, tmp_path):
    """Far fewer vertices than the data snapped to the tile's units at every zoom, z16 too;
    and no edge moves by more than one screen pixel of a 512-pixel tile (8 units) from where
    it is."""
    truth = source.catalog.frame("grids", "public").to_crs(3857).geometry.values
    counts = {}
    for z in (12, 14, 16):
        _, x, y = _densest(source, "grids", z)
        geoms = _decoded(source, "grids", "grids", z, x, y, tmp_path)
        box = shapely.box(*tile_bounds(z, x, y))
        unit = (box.bounds[2] - box.bounds[0]) / EXTENT
        raw = truth[shapely.intersects(truth, box)]
        # what the tile would carry with its coordinates only snapped to the tile's units
        snapped = shapely.set_precision(shapely.intersection(raw, box), unit)
        counts[z] = (
            int(shapely.get_num_coordinates(shapely.intersection(geoms, box)).sum()),
            int(shapely.get_num_coordinates(snapped).sum()),
        )
        inner = box.buffer(-4 * unit)
        moved = shapely.hausdorff_distance(
            shapely.intersection(shapely.union_all(shapely.boundary(geoms)), inner),
            shapely.intersection(shapely.union_all(shapely.boundary(raw)), inner),
        )
        assert moved < 8 * unit, f"boundaries moved {moved / unit:.1f} units at z{z}"
    for z, (tiled, snapped) in counts.items():
        # on the demo the tiles keep 50 % (z12) to 65 % (z16) of what snapping alone keeps
        assert tiled < 0.75 * snapped, f"z{z}: {tiled} vertices in the tile, {snapped} snapped"


def test_pmtiles_export_in_two_processes_equals_one(small, tmp_path):
    """The export's forked workers write the very tiles one process writes."""
    from pmtiles.reader import MmapSource, all_tiles

    from gisgrid.publish.tiles import write_pmtiles

    got = {}
    for workers in (1, 2):
        src = TileSource(Catalog(Workspace(small)), role="public")
        path = tmp_path / f"w{workers}.pmtiles"
        n = write_pmtiles(src, path, max_zoom=18, workers=workers)
        with open(path, "rb") as handle:
            got[workers] = dict(all_tiles(MmapSource(handle)))
        assert len(got[workers]) == n > 64  # more than one run of tiles
    assert got[1] == got[2]


def rendered_together_and_alone(ws, role: str, zooms) -> int:
    """Assert that each zoom's tiles rendered in runs of 64 (as an export renders them) are
    byte for byte the tiles rendered one by one (as a server does), and that every
    polygon's rings wind as the MVT specification asks: a feature starts with an exterior
    of positive area, and no ring has none. The polygons checked."""
    catalog = Catalog(ws)
    together, alone = TileSource(catalog, role=role), TileSource(catalog, role=role)
    polygons = 0
    for z in zooms:
        xys = [(x, y) for _, x, y in tiles_covering(catalog.bounds(), z)]
        for i in range(0, len(xys), 64):
            run = xys[i : i + 64]
            got = together.render_many("redmap", z, run)
            for (x, y), tile in zip(run, got, strict=True):
                assert tile == alone.render("redmap", z, x, y), f"tile {z}/{x}/{y}"
                for layer, k, areas in polygon_rings(tile):
                    assert areas[0] > 0 and 0 not in areas, (z, x, y, layer, k, areas)
                    polygons += 1
    return polygons


@pytest.mark.parametrize("role", ["public", "staff"])
def test_tiles_rendered_together_are_the_tiles_rendered_alone(demo_full, role):
    """An export encodes each layer of a run of tiles at once; the bytes are a server's,
    and the rings wind by the specification (GEOS's orientation test, used before, gave one
    demo polygon a negative exterior and left 7 rings of no area)."""
    assert rendered_together_and_alone(Workspace(demo_full.workspace), role, range(17)) > 30_000
