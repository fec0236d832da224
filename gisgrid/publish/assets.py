"""Web assets installed from the npm registry at build time, never fetched at run time.

``npm ci --prefix gisgrid/publish/web`` installs them (see README); the wheel carries
them. Government intranets and these machines have no internet, so neither the
maps gisgrid writes nor the pages it serves may point at a CDN.
"""

from __future__ import annotations

import base64
import os
import re
from functools import cache
from pathlib import Path

from gisgrid._errors import AssetsMissingError

__all__ = ["CJK_FONT", "asset_path", "cjk_font", "leaflet_css", "leaflet_js"]

_WEB = Path(__file__).resolve().parent / "web"


def asset_path(package: str, *parts: str) -> Path:
    """Path of a file inside an installed npm package.

    Parameters
    ----------
    package
        npm package name, e.g. ``"leaflet"``.
    *parts
        Path inside the package, e.g. ``"dist", "leaflet.js"``.

    Raises
    ------
    AssetsMissingError
        When the package was not installed at build time.
    """
    path = _WEB.joinpath("node_modules", package, *parts)
    if not path.is_file():
        raise AssetsMissingError(
            f"web asset {package}/{'/'.join(parts)} is missing; install the web assets with "
            f"`npm ci --prefix {_WEB}` and reinstall gisgrid"
        )
    return path


@cache
def leaflet_js() -> str:
    """Leaflet's JavaScript."""
    return asset_path("leaflet", "dist", "leaflet.js").read_text(encoding="utf-8")


@cache
def leaflet_css() -> str:
    """Leaflet's CSS with its images inlined as data URIs (for a self-contained page)."""
    css = asset_path("leaflet", "dist", "leaflet.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        image = asset_path("leaflet", "dist", match.group(1))
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\((images/[\w.-]+\.png)\)", inline, css)


#: Noto Sans SC (SIL Open Font License 1.1), the simplified-Chinese subset (7,898 glyphs)
CJK_FONT = (
    "@openfonts/noto-sans-sc_chinese-simplified",
    "files",
    "noto-sans-sc-chinese-simplified-400.woff",
)


@cache
def cjk_font() -> Path:
    """A TrueType file of the CJK font the PDF maps are set in.

    npm ships the font as WOFF, which matplotlib's FreeType does not open; it is unpacked
    to TrueType once (fontTools, which matplotlib itself depends on) into the user's cache.
    """
    from fontTools.ttLib import TTFont

    source = asset_path(*CJK_FONT)
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gisgrid"
    target = cache_dir / f"{source.stem}-{source.stat().st_size}.ttf"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        font = TTFont(source)
        font.flavor = None
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        font.save(partial)
        partial.replace(target)  # whole or not at all: another process may read it
    return target
