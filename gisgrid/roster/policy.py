"""The assignment policy: which roles each grid, community and building gets, and how.

A policy is a small TOML file; the default (``policies/default.toml`` in the
package, printed by ``gisgrid assign --show-policy``) encodes the governance
model of one grid worker per grid, a grid chief, a grid party branch, one
auxiliary police officer per community, building chiefs, party-member contact
households and a service site within 15 minutes' walk.

Examples
--------
>>> policy = load_policy()
>>> policy.roles["grid_worker"].scope, policy.roles["grid_worker"].rule
('grid', 'nearest')
>>> policy.roles["party_branch"].capacity
3
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gisgrid._errors import InputError

__all__ = ["KNOWN_KINDS", "Policy", "PolicyError", "Role", "load_policy"]

Scope = Literal["grid", "community", "building"]
#: Resource kinds gisgrid knows; a policy may name others only when the workspace has them.
KNOWN_KINDS = (
    "grid_worker",
    "cadre",
    "party_org",
    "police",
    "service_site",
    "volunteer",
    "party_member",
)
#: per scope: the column naming it, and the column of a resource saying which one it is in
_SCOPE_COLUMNS: dict[str, tuple[str, str]] = {
    "grid": ("grid_code", "at_grid"),
    "community": ("community_code", "at_community"),
    "building": ("building_id", "at_building"),
}

#: per ``within``: the scope's column and the resource's column that must agree
_WITHIN_COLUMNS: dict[str, tuple[str, str] | None] = {
    "district": None,
    "street": ("street_code", "at_street"),
    "community": ("community_code", "at_community"),
}


class PolicyError(InputError):
    """A policy file gisgrid cannot use."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RoleSpec(_Strict):
    """A ``[roles.NAME]`` table as written (see the default policy file for each key)."""

    title: str | None = None
    scope: Scope
    kind: str = Field(min_length=1)
    level: str = ""
    rule: Literal["nearest", "balanced", "resident"]
    count: int = Field(1, ge=0)
    per_households: int = Field(0, ge=0)
    capacity: Annotated[int, Field(ge=0)] | Literal["resource"] = 1
    within: Literal["district", "street", "community"] = "district"
    max_walk_m: float = Field(0.0, ge=0)
    public: bool = False


class _NetworkSpec(_Strict):
    walk_kmh: float = Field(4.5, gt=0)
    max_access_m: float = Field(800.0, gt=0)


class _CoverageSpec(_Strict):
    minutes: float = Field(15.0, gt=0)
    kinds: list[str] = Field(default_factory=lambda: ["service_site"])
    access_m: float = Field(100.0, gt=0)


class _PolicySpec(_Strict):
    network: _NetworkSpec = _NetworkSpec()
    coverage: _CoverageSpec = _CoverageSpec()
    roles: dict[str, _RoleSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Role:
    """One role of the policy; see the default policy file for each field."""

    name: str
    title: str
    scope: Scope
    kind: str
    rule: str
    level: str = ""
    count: int = 1
    per_households: int = 0
    capacity: int | None = 1  # None: the resource's own capacity field; 0: no limit
    within: str = "district"
    max_walk_m: float = 0.0  # 0: no limit
    public: bool = False  # shown on public rosters (places, organisations, the grid worker)

    @property
    def key_column(self) -> str:
        """The column naming the role's scope (grid_code, community_code, building_id)."""
        return _SCOPE_COLUMNS[self.scope][0]

    @property
    def within_columns(self) -> tuple[str, str] | None:
        """Where candidates must be: the scope's column and the resource's (None: anywhere)."""
        return _WITHIN_COLUMNS[self.within]

    @property
    def candidates_from(self) -> str:
        """Where the role's candidates come from, in words."""
        if self.rule == "resident":
            return f"living in the {self.scope}"
        return {"district": "in the district", "street": "in its street"}.get(
            self.within, "in its community"
        )

    @property
    def home_column(self) -> str:
        """The column of a resource saying which scope it lives in (for ``resident`` roles)."""
        return _SCOPE_COLUMNS[self.scope][1]


@dataclass(frozen=True)
class Policy:
    """A whole policy."""

    roles: dict[str, Role]
    walk_kmh: float = 4.5
    max_access_m: float = 800.0
    coverage_minutes: float = 15.0
    coverage_kinds: tuple[str, ...] = ("service_site",)
    coverage_access_m: float = 100.0
    source: str = field(default="default", compare=False)


def default_policy_text() -> str:
    """The text of the default policy file."""
    policies = importlib_resources.files("gisgrid.roster") / "policies"
    return (policies / "default.toml").read_text("utf-8")


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and check a policy file (the default when ``path`` is None).

    Raises
    ------
    PolicyError
        Naming the file, the role and the key that is wrong, and what it may be.
    """
    where = str(path) if path is not None else "the default policy"
    try:
        text = default_policy_text() if path is None else Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy file {where} does not exist") from None
    try:
        spec = _PolicySpec.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{where} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise PolicyError(_problem(where, exc.errors()[0])) from None
    return Policy(
        roles={name: _role(name, r) for name, r in spec.roles.items()},
        walk_kmh=spec.network.walk_kmh,
        max_access_m=spec.network.max_access_m,
        coverage_minutes=spec.coverage.minutes,
        coverage_kinds=tuple(spec.coverage.kinds),
        coverage_access_m=spec.coverage.access_m,
        source=where,
    )


def _role(name: str, spec: _RoleSpec) -> Role:
    values = spec.model_dump(exclude={"title", "capacity"})
    capacity = None if spec.capacity == "resource" else spec.capacity
    return Role(name=name, title=spec.title or name, capacity=capacity, **values)


_UNION_TAGS = ("int", "literal", "constrained", "function")  # pydantic's names of union branches


def _problem(where: str, error: Any) -> str:
    """One line naming the file, the section or role, the key and what it may be."""
    loc = [str(p) for p in error["loc"] if not str(p).startswith(_UNION_TAGS)]
    kind, message = error["type"], str(error["msg"]).split(" or instance of")[0]
    if loc == ["roles"]:
        return f"{where} defines no roles; add at least one [roles.NAME] table"
    if len(loc) == 1 and kind == "extra_forbidden":
        return (
            f"{where}: unknown section [{loc[0]}]; "
            "a policy has [network], [coverage] and [roles.NAME]"
        )
    if loc[0] == "roles":
        model: type[_Strict] = _RoleSpec
        here, keys = f"{where}, role {loc[1]!r}", loc[2:]
        if not keys:
            return f"{here} must be a table ([roles.{loc[1]}])"
    else:
        here, keys = f"{where}: [{loc[0]}]", loc[1:]
        model = _NetworkSpec if loc[0] == "network" else _CoverageSpec
        if not keys:
            return f"{here} must be a table"
    key = ".".join(keys)
    if kind == "extra_forbidden":
        return f"{here}: unknown key {key}; it may have {', '.join(model.model_fields)}"
    if kind == "missing":
        return f"{here}: {key} is missing"
    return f"{here}: {key} is {error['input']!r}; {message[0].lower()}{message[1:]}"
