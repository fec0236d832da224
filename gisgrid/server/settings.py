"""Service settings: from ``GISGRID_*`` environment variables or a TOML config file.

A config file looks like::

    workspace = "demo/demo.gpkg"
    port = 8000
    max_limit = 1000

    [api_keys]  # SHA-256 of each key (``gisgrid hash-key KEY``) → role
    "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" = "staff"

Keys are stored hashed: the file never holds a key itself.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from gisgrid._errors import InputError
from gisgrid.io.workspace import is_postgres

__all__ = ["Settings", "hash_key"]


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Settings(BaseSettings):
    """Everything the service needs; nothing global."""

    model_config = SettingsConfigDict(env_prefix="GISGRID_", extra="forbid")

    workspace: str = Field(
        description="The workspace served: a GeoPackage file, or postgresql://user@host/db"
        "?schema=NAME."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    title: str = "gisgrid 红地图"
    default_limit: int = Field(10, ge=1, description="Features per page when no limit is given.")
    max_limit: int = Field(1000, ge=1, description="Most features per page.")
    max_batch: int = Field(10_000, ge=1, description="Most points or addresses per batch lookup.")
    max_body_mb: float = Field(
        16.0, gt=0, description="Largest request body (MB), refused with 413 as it streams in."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins allowed to call the API from a browser (CORS), e.g. "
        "https://dashboard.example.gov.cn; none by default, '*' for any.",
    )
    batch_workers: int = Field(
        2, ge=1, description="Batch lookups that run at once, each in a worker process; more wait."
    )
    tile_cache: int = Field(20_000, ge=0, description="Tiles kept in memory per role.")
    api_keys: dict[str, Literal["staff", "planner"]] = Field(
        default_factory=dict, description="SHA-256 hex digest of a key → its role."
    )

    @classmethod
    def from_file(cls, path: str | Path, **overrides: object) -> Settings:
        """Settings from a TOML file, with ``overrides`` (e.g. from the command line) on top.

        Raises
        ------
        InputError
            When the file is missing, not TOML, or holds an unknown or bad setting.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise InputError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"config file {path} is not valid TOML: {exc}") from None
        where = str(data.get("workspace", ""))
        if where and not is_postgres(where) and not Path(where).is_absolute():
            data["workspace"] = str(path.parent / where)
        return cls.checked(**{**data, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def checked(cls, **values: Any) -> Settings:
        """Build settings, turning validation errors into one readable :class:`InputError`."""
        try:
            settings = cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InputError(f"bad settings: {problems}") from None
        for digest in settings.api_keys:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InputError(
                    "api_keys must map SHA-256 hex digests to roles; "
                    "make one with `gisgrid hash-key KEY`"
                )
        return settings

    def role_of(self, key: str | None) -> str | None:
        """The role of an API key: ``public`` without one, None for an unknown key."""
        if not key:
            return "public"
        return self.api_keys.get(hash_key(key))
