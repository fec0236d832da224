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

from gisgrid._errors import InputError

__all__ = ["KNOWN_KINDS", "Policy", "PolicyError", "Role", "load_policy"]

SCOPES = ("grid", "community", "building")
RULES = ("nearest", "balanced", "resident")
WITHIN = ("district", "street", "community")
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
_ROLE_KEYS = {
    "title",
    "scope",
    "kind",
    "level",
    "rule",
    "count",
    "per_households",
    "capacity",
    "within",
    "max_walk_m",
    "public",
}


class PolicyError(InputError):
    """A policy file gisgrid cannot use."""


@dataclass(frozen=True)
class Role:
    """One role of the policy; see the default policy file for each field."""

    name: str
    title: str
    scope: str
    kind: str
    rule: str
    level: str = ""
    count: int = 1
    per_households: int = 0
    capacity: int | None = 1  # None: the resource's own capacity field; 0: no limit
    within: str = "district"
    max_walk_m: float = 0.0  # 0: no limit
    public: bool = False  # shown on public rosters (places, organisations, the grid worker)


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
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{where} is not valid TOML: {exc}") from None
    unknown = set(data) - {"network", "coverage", "roles"}
    if unknown:
        raise PolicyError(
            f"{where}: unknown section(s) {', '.join(sorted(unknown))}; "
            "a policy has [network], [coverage] and [roles.NAME]"
        )
    roles_data = data.get("roles")
    if not isinstance(roles_data, dict) or not roles_data:
        raise PolicyError(f"{where} defines no roles; add at least one [roles.NAME] table")
    roles = {name: _role(name, spec, where) for name, spec in roles_data.items()}
    network = data.get("network", {})
    coverage = data.get("coverage", {})
    kinds = coverage.get("kinds", ["service_site"])
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise PolicyError(f"{where}: [coverage] kinds must be a list of resource kinds")
    return Policy(
        roles=roles,
        walk_kmh=_positive(network.get("walk_kmh", 4.5), f"{where}: [network] walk_kmh"),
        max_access_m=_positive(
            network.get("max_access_m", 800.0), f"{where}: [network] max_access_m"
        ),
        coverage_minutes=_positive(coverage.get("minutes", 15.0), f"{where}: [coverage] minutes"),
        coverage_kinds=tuple(kinds),
        coverage_access_m=_positive(
            coverage.get("access_m", 100.0), f"{where}: [coverage] access_m"
        ),
        source=where,
    )


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise PolicyError(f"{what} must be a positive number, not {value!r}")
    return float(value)


def _choice(
    spec: dict, key: str, options: tuple[str, ...], where: str, default: str | None = None
) -> str:
    value = spec.get(key, default)
    if value not in options:
        shown = "missing" if value is None else repr(value)
        raise PolicyError(f"{where}: {key} is {shown}; it must be one of {', '.join(options)}")
    return value


def _role(name: str, spec: object, where: str) -> Role:
    here = f"{where}, role {name!r}"
    if not isinstance(spec, dict):
        raise PolicyError(f"{here} must be a table ([roles.{name}])")
    unknown = set(spec) - _ROLE_KEYS
    if unknown:
        raise PolicyError(
            f"{here}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"a role may have {', '.join(sorted(_ROLE_KEYS))}"
        )
    kind = spec.get("kind")
    if not isinstance(kind, str) or not kind:
        raise PolicyError(f"{here}: kind is missing; name the resource kind that fills the role")
    capacity = spec.get("capacity", 1)
    if capacity == "resource":
        capacity = None
    elif isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise PolicyError(
            f'{here}: capacity must be a whole number ≥ 0 or "resource", not {capacity!r}'
        )
    count = spec.get("count", 1)
    per_households = spec.get("per_households", 0)
    for key, value in (("count", count), ("per_households", per_households)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PolicyError(f"{here}: {key} must be a whole number ≥ 0, not {value!r}")
    max_walk = spec.get("max_walk_m", 0.0)
    if isinstance(max_walk, bool) or not isinstance(max_walk, int | float) or max_walk < 0:
        raise PolicyError(f"{here}: max_walk_m must be a distance in metres, not {max_walk!r}")
    level = spec.get("level", "")
    if not isinstance(level, str):
        raise PolicyError(f"{here}: level must be text, not {level!r}")
    public = spec.get("public", False)
    if not isinstance(public, bool):
        raise PolicyError(f"{here}: public must be true or false, not {public!r}")
    return Role(
        name=name,
        public=public,
        title=str(spec.get("title", name)),
        scope=_choice(spec, "scope", SCOPES, here),
        kind=kind,
        rule=_choice(spec, "rule", RULES, here),
        level=level,
        count=count,
        per_households=per_households,
        capacity=capacity,
        within=_choice(spec, "within", WITHIN, here, "district"),
        max_walk_m=float(max_walk),
    )
