"""Glyphs for map labels, made here: signed distance fields in the MapLibre glyph PBF format.

MapLibre draws label text from SDF glyphs fetched in ranges of 256 code
points. Chinese characters it draws itself with the browser's font
(``localIdeographFontFamily``); the rest (digits of grid codes, Latin) come
from here, rendered with a local TrueType font (DejaVu Sans or WenQuanYi
Zen Hei when installed, else Pillow's bundled font) at 24 px with a 3 px
border, as the format expects. Nothing is fetched from elsewhere.

Examples
--------
>>> data = glyph_range(0)
>>> data[:1] == b"\\x0a"  # one fontstack (field 1)
True
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import distance_transform_edt

from gisgrid.publish.protobuf import bytes_field, number_field, zigzag

__all__ = ["glyph_range"]

SIZE, BORDER, RADIUS, CUTOFF = 24, 3, 8.0, 0.25
_TOP_ADJUSTMENT = 27  # MapLibre's baseline origin for glyph tops (its TinySDF uses 27.5)
_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


@cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, SIZE, layout_engine=ImageFont.Layout.BASIC)
    return ImageFont.load_default(size=SIZE)


def _sdf(mask: np.ndarray) -> np.ndarray:
    """TinySDF's encoding: 255 − 255·(d/8 + 0.25), d the signed distance (outside > 0)."""
    outside = distance_transform_edt(~mask)
    inside = distance_transform_edt(mask)
    d = np.where(mask, -(inside - 0.5), outside - 0.5)
    return np.clip(np.round(255 - 255 * (d / RADIUS + CUTOFF)), 0, 255).astype(np.uint8)


def _glyph(code: int, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> bytes | None:
    ch = chr(code)
    advance = round(font.getlength(ch))
    left, top, right, bottom = (round(v) for v in font.getbbox(ch, anchor="ls"))
    w, h = max(0, right - left), max(0, bottom - top)
    out = number_field(1, code)
    if w and h:
        img = Image.new("L", (w + 2 * BORDER, h + 2 * BORDER))
        ImageDraw.Draw(img).text(
            (BORDER - left, BORDER - top), ch, font=font, fill=255, anchor="ls"
        )
        out += bytes_field(2, _sdf(np.asarray(img) > 127).tobytes())
    out += number_field(3, w) + number_field(4, h)
    out += number_field(5, zigzag(left)) + number_field(6, zigzag(-top - _TOP_ADJUSTMENT))
    out += number_field(7, advance)
    return out


@cache
def glyph_range(start: int, name: str = "Noto Sans Regular") -> bytes:
    """The glyph PBF for code points ``start``–``start + 255`` (Latin ranges only; empty
    for others: CJK text is drawn by the browser)."""
    glyphs = b""
    if start < 0x2E80:  # below the CJK blocks MapLibre draws locally
        font = _font()
        for code in range(max(start, 32), start + 256):
            if 127 <= code < 160 or 0xD800 <= code <= 0xDFFF:  # controls, surrogates
                continue
            glyph = _glyph(code, font)
            if glyph:
                glyphs += bytes_field(3, glyph)
    stack = bytes_field(1, name.encode("utf-8")) + bytes_field(2, f"{start}-{start + 255}".encode())
    return bytes_field(1, stack + glyphs)
