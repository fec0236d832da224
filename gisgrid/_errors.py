"""One error hierarchy for gisgrid.

Every class also subclasses the matching builtin, so callers can catch either
``gisgrid.InputError`` or plain ``ValueError``. Messages name the input and
say how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ARGUMENT = re.compile(r"<<(\w+)>>")


def argument(name: str) -> str:
    """Name an argument in a message, for each shell to word as its users know it.

    The library says ``id_field``; the command line says ``--id-field``.

    Examples
    --------
    >>> str(InputError(f"declare one with {argument('crs')}"))
    'declare one with crs'
    >>> InputError(f"give {argument('id_field')}").worded(lambda a: "--" + a.replace("_", "-"))
    'give --id-field'
    """
    return f"<<{name}>>"


class GisgridError(Exception):
    """Base class of every error gisgrid raises on purpose."""

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with each argument named by ``name`` (a flag, a query parameter)."""
        text = str(self.args[0]) if self.args else ""
        return _ARGUMENT.sub(lambda m: name(m.group(1)), text)

    def __str__(self) -> str:
        return self.worded(lambda a: a)


class InputError(GisgridError, ValueError):
    """An input file, layer or argument cannot be used as given."""


class CRSError(InputError):
    """A coordinate reference system is missing, unknown or unusable."""


class EmptyLayerError(InputError):
    """An input layer holds no usable rows."""


class WorkspaceError(GisgridError, OSError):
    """The workspace file cannot be opened, read or written."""


class ConflictError(GisgridError, RuntimeError):
    """Another writer changed what a write was based on; nothing was written.

    Attributes
    ----------
    layers
        The layers that changed.
    revision
        The workspace's revision now.
    """

    def __init__(self, message: str, *, layers: list[str], revision: int) -> None:
        super().__init__(message)
        self.layers = layers
        self.revision = revision


class LayerNotFoundError(WorkspaceError, KeyError):
    """A layer the operation needs is not in the workspace."""

    def __str__(self) -> str:  # KeyError quotes its message; undo that
        return self.worded(lambda a: a)


class AssetsMissingError(GisgridError, FileNotFoundError):
    """Web assets (Leaflet, MapLibre) were not installed at build time."""


class NotFoundError(InputError, LookupError):
    """Nothing matches (an address, a tile, a job); the message and ``suggestions`` say
    what comes closest."""

    def __init__(self, message: str, suggestions: list[dict] | None = None) -> None:
        super().__init__(message)
        self.suggestions = suggestions or []
