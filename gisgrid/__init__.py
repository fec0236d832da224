"""gisgrid: grid delineation and the 红地图 service for grid-based urban governance."""

from gisgrid._errors import (
    AssetsMissingError,
    ConflictError,
    CRSError,
    EmptyLayerError,
    GisgridError,
    InputError,
    LayerNotFoundError,
    NotFoundError,
    WorkspaceError,
)

__version__ = "0.1.0"

__all__ = [
    "AssetsMissingError",
    "CRSError",
    "ConflictError",
    "EmptyLayerError",
    "GisgridError",
    "InputError",
    "LayerNotFoundError",
    "NotFoundError",
    "WorkspaceError",
    "__version__",
]
