"""One error hierarchy for gisgrid.

Every class also subclasses the matching builtin, so callers can catch either
``gisgrid.InputError`` or plain ``ValueError``. Messages name the input and
say how to fix it.
"""

from __future__ import annotations


class GisgridError(Exception):
    """Base class of every error gisgrid raises on purpose."""


class InputError(GisgridError, ValueError):
    """An input file, layer or argument cannot be used as given."""


class CRSError(InputError):
    """A coordinate reference system is missing, unknown or unusable."""


class EmptyLayerError(InputError):
    """An input layer holds no usable rows."""


class WorkspaceError(GisgridError, OSError):
    """The workspace file cannot be opened, read or written."""


class LayerNotFoundError(WorkspaceError, KeyError):
    """A layer the operation needs is not in the workspace."""

    def __str__(self) -> str:  # KeyError quotes its message; undo that
        return str(self.args[0]) if self.args else ""


class AssetsMissingError(GisgridError, FileNotFoundError):
    """Web assets (Leaflet, MapLibre) were not installed at build time."""
