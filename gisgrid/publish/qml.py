"""QGIS layer styles (QML) for exported layers: the 红地图 look and Chinese field aliases.

QGIS applies a GeoPackage's default style (``layer_styles.useAsDefault``) when it
opens the layer, so an exported file opens looking as the red map does, with the
fields under their Chinese names.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

__all__ = ["layer_qml"]

#: layer → (fill RGBA, outline RGBA, outline width in mm, label field)
LOOKS = {
    "grids": ("255,77,79,38", "192,0,0,255", "0.5", "name"),
    "communities": ("0,0,0,0", "128,0,0,255", "1.2", "name"),
}


def _option(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, "Option", type="QString", name=name, value=value)


def layer_qml(layer: str, aliases: dict[str, str]) -> str:
    """The QML of a polygon layer: a fill, an outline, labels, and field aliases.

    Examples
    --------
    >>> "网格编码" in layer_qml("grids", {"grid_code": "网格编码"})
    True
    """
    fill, outline, width, label = LOOKS[layer]
    root = ET.Element(
        "qgis", version="3.28.0", styleCategories="AllStyleCategories", labelsEnabled="1"
    )
    renderer = ET.SubElement(
        root,
        "renderer-v2",
        type="singleSymbol",
        symbollevels="0",
        enableorderby="0",
        forceraster="0",
    )
    symbol = ET.SubElement(
        ET.SubElement(renderer, "symbols"),
        "symbol",
        type="fill",
        name="0",
        alpha="1",
        clip_to_extent="1",
        force_rhr="0",
    )
    options = ET.SubElement(
        ET.SubElement(
            symbol, "layer", {"class": "SimpleFill", "enabled": "1", "pass": "0", "locked": "0"}
        ),
        "Option",
        type="Map",
    )
    for name, value in (
        ("color", fill),
        ("outline_color", outline),
        ("outline_width", width),
        ("outline_width_unit", "MM"),
        ("style", "solid"),
        ("outline_style", "solid"),
        ("joinstyle", "round"),
    ):
        _option(options, name, value)
    settings = ET.SubElement(
        ET.SubElement(root, "labeling", type="simple"), "settings", calloutType="simple"
    )
    ET.SubElement(
        settings,
        "text-style",
        fieldName=label,
        isExpression="0",
        fontFamily="Noto Sans SC",
        fontSize="9",
        fontSizeUnit="Point",
        textColor=outline,
        namedStyle="Regular",
    )
    buffer = ET.SubElement(
        settings,
        "text-buffer",
        bufferDraw="1",
        bufferSize="1",
        bufferSizeUnits="MM",
        bufferColor="255,255,255,255",
    )
    buffer.tail = None
    ET.SubElement(settings, "placement", placement="1", offsetType="0")  # over the centroid
    fields = ET.SubElement(root, "aliases")
    for i, (field, alias) in enumerate(aliases.items()):
        ET.SubElement(fields, "alias", field=field, index=str(i), name=alias)
    ET.SubElement(root, "layerGeometryType").text = "2"  # polygons
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body
