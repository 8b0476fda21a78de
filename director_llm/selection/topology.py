"""Groups and fallback chains of the usable deployments, computed without LiteLLM.

A *group* is what a request can ask for: a tier (``small``, ``balanced``, ``strong``,
``local``) or one deployment by name (``openai/gpt-4o``). A group's *chain* is the groups to
try after it (``[llm.fallbacks]``, plus the derived tier order unless ``derive_fallbacks``
is off). The engine expands a group and its chain into the ordered list of deployments to
try; ``director.router`` (LiteLLM's Router) is built from the same topology.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from director_llm.config.models import DirectorConfig
from director_llm.config.semantics import LLM_TIERS, resolve_fallbacks
from director_llm.providers import DeploymentInfo

__all__ = ["Topology"]


@dataclass(frozen=True)
class Topology:
    """Usable deployments by name, groups, and each group's fallback chain."""

    deployments: Mapping[str, DeploymentInfo]
    groups: Mapping[str, tuple[str, ...]]
    """Group (tier or deployment name) -> deployment names, in config order."""
    fallbacks: Mapping[str, tuple[str, ...]]
    """Group -> groups to try next (only groups that have usable deployments)."""
    tiers: tuple[str, ...]
    """LLM tiers with at least one usable deployment, cheapest first."""

    @classmethod
    def build(cls, config: DirectorConfig, usable: Iterable[DeploymentInfo]) -> Topology:
        """The topology of ``usable`` deployments (keys present). The local tier joins only
        when LLM tiers exist: a local-only config classifies without any of this."""
        llm = [d for d in usable if d.tier in LLM_TIERS]
        local = [d for d in usable if d.kind == "local"] if llm else []
        members = llm + local
        groups: dict[str, list[str]] = {}
        for d in members:
            groups.setdefault(d.tier, []).append(d.name)
            groups[d.name] = [d.name]
        tiers = tuple(t for t in LLM_TIERS if t in groups)
        graph = resolve_fallbacks(config, [d.name for d in members], list(tiers))
        chains = {k: tuple(t for t in v if t in groups) for k, v in graph.items() if k in groups}
        return cls(
            deployments={d.name: d for d in members},
            groups={k: tuple(v) for k, v in groups.items()},
            fallbacks={k: v for k, v in chains.items() if v},
            tiers=tiers,
        )

    @property
    def empty(self) -> bool:
        """No LLM deployment is usable (every provider disabled, local-only, or keys missing)."""
        return not self.tiers

    def members(self, group: str) -> tuple[str, ...]:
        return self.groups.get(group, ())

    def chain(self, group: str) -> tuple[str, ...]:
        """``group`` then the groups of its fallback chain."""
        return (group, *self.fallbacks.get(group, ()))
