"""The 红地图 service: a FastAPI app over a workspace (``create_app(settings)``)."""

from gisgrid.server.app import create_app
from gisgrid.server.settings import Settings, hash_key

__all__ = ["Settings", "create_app", "hash_key"]
