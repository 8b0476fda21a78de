"""The embedded local tier as a Director uses it: training data from the config, a lazily
trained (disk-cached) ``LocalIntentModel``, and its answers as ``IntentClassification``.

``LocalTier`` is built from the first enabled ``kind = "local"`` provider section. Nothing
heavy happens until the first prediction: then the model is trained from the flows'
examples (+ the section's ``training_file``) or, when the same data was seen before,
loaded from the disk cache (``cache_dir``, default ``$XDG_CACHE_HOME/director-llm/...``).
The first load runs in a worker thread so an event loop is never blocked for seconds; every
later prediction (~1-2 ms) runs inline, because a thread hop would cost as much again.

One threshold (``confidence_threshold``): a local answer below ``intents.confidence_threshold``
(what a caller sees, whichever tier answered) is the fallback flow; the local confidences are
calibrated to be the chance the answer is right. ``[providers.local] confidence_threshold``
still overrides it for local answers. ``escalate_below`` (``intents.tier_thresholds.local``)
is separate: below it the cascade asks an LLM tier.

This module never imports LiteLLM: a local-only config classifies without it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from director_llm.config.models import LOCAL_ESCALATE_BELOW, DirectorConfig, IntentsConfig, ProviderConfig

if TYPE_CHECKING:
    from director_llm.intents.models import IntentClassification
    from director_llm.intents.prompts import FlowSet
    from director_llm.local import LocalIntentModel, LocalPrediction

__all__ = [
    "DEFAULT_ESCALATE_BELOW",
    "DEFAULT_LOCAL_CONFIDENCE_THRESHOLD",
    "LocalTier",
    "local_section",
]

DEFAULT_LOCAL_CONFIDENCE_THRESHOLD: float = IntentsConfig.model_fields["confidence_threshold"].default
"""Kept for compatibility: the default of ``intents.confidence_threshold``. The local tier has
no threshold of its own any more: below ``intents.confidence_threshold`` (what a caller
sees, whichever tier answered) a local answer is the fallback flow, unless
``[providers.local] confidence_threshold`` overrides it."""

DEFAULT_ESCALATE_BELOW = LOCAL_ESCALATE_BELOW
"""Below this the cascade escalates to an LLM tier (see ``config.models.LOCAL_ESCALATE_BELOW``)."""


def local_section(config: DirectorConfig) -> tuple[str, ProviderConfig] | None:
    """``(name, section)`` of the first enabled local provider, or None."""
    for name, section in config.providers.items():
        if section.kind == "local" and section.enabled:
            return name, section
    return None


class LocalTier:
    """The local classifier of one config. ``examples`` override what it trains on
    (``director-llm eval --train``); ``extra_examples`` are added to the config's."""

    def __init__(
        self,
        config: DirectorConfig,
        *,
        name: str = "local",
        section: ProviderConfig | None = None,
        examples: Sequence[tuple[str, str]] | None = None,
        extra_examples: Sequence[tuple[str, str]] = (),
        base_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.base_dir = base_dir
        """A relative ``training_file`` missing from the working directory is looked up here
        (the config's folder)."""
        self.name = name
        self.section = section or ProviderConfig(kind="local")
        model = (self.section.models or ["intent"])[0]
        self.deployment = f"{name}/{model}"
        """Deployment name (``local/intent``): the route's model and deployment."""
        self._examples = list(examples) if examples is not None else None
        self._extra = list(extra_examples)
        self._model: LocalIntentModel | None = None
        self._lock = threading.Lock()
        self._example_index: tuple[str, list[tuple[str, str]], Any] | None = None
        self.load_seconds: float | None = None
        """Wall time of the first load (training, or reading the disk cache)."""

    @classmethod
    def from_config(cls, config: DirectorConfig, **kwargs: Any) -> LocalTier | None:
        """The tier of the config's local provider section, or None when there is none."""
        found = local_section(config)
        if found is None:
            return None
        return cls(config, name=found[0], section=found[1], **kwargs)

    # -- thresholds --------------------------------------------------------------------------
    @property
    def fallback_flow(self) -> str:
        return self.config.intents.fallback_flow

    @property
    def confidence_threshold(self) -> float:
        """Below it the local answer is the fallback flow: ``intents.confidence_threshold``
        (one rule whichever tier answered; local confidences are calibrated to mean the same
        as an LLM's), unless ``[providers.local] confidence_threshold`` overrides it."""
        v = self.section.confidence_threshold
        return self.config.intents.confidence_threshold if v is None else v

    @property
    def escalate_below(self) -> float:
        """Below it the cascade asks an LLM tier (``intents.tier_thresholds.local``)."""
        return self.config.intents.tier_thresholds.get("local", DEFAULT_ESCALATE_BELOW)

    # -- training ----------------------------------------------------------------------------
    def examples(self) -> list[tuple[str, str]]:
        """What the model trains on: the flows' examples (the built-in flows when the config
        has none) and the section's ``training_file``, or the ``examples`` given."""
        if self._examples is not None:
            return self._examples + self._extra
        from director_llm.intents.prompts import flow_set

        flows = flow_set(self.config.intents)
        out = [(text, name) for name, spec in flows.flows.items() for text in spec.examples]
        if self.section.training_file:
            from director_llm.local import load_training_file

            out += load_training_file(self._resolve(self.section.training_file))
        return out + self._extra

    def _resolve(self, path: str) -> Path:
        # As check-config validates it (relative to the working directory), else next to the config.
        p = Path(path).expanduser()
        if p.is_absolute() or p.exists() or self.base_dir is None:
            return p
        beside = self.base_dir / p
        return beside if beside.exists() else p

    def cache_dir(self) -> Path:
        if self.section.cache_dir:
            return Path(self.section.cache_dir).expanduser()
        from director_llm.local.store import default_cache_dir

        return default_cache_dir()

    def settings(self) -> Any:
        from director_llm.local import LocalTierSettings

        kw: dict[str, Any] = {"oos_label": self.fallback_flow}
        if self.section.features:
            kw["features"] = self.section.features
        return LocalTierSettings(**kw)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> LocalIntentModel:
        """The trained model (trains or loads from the disk cache on first access)."""
        if self._model is None:
            with self._lock:  # two threads asking at once train once
                if self._model is None:
                    from director_llm.local import LocalIntentModel

                    started = time.perf_counter()
                    model = LocalIntentModel.train(
                        self.examples(), settings=self.settings(), cache_dir=self.cache_dir()
                    )
                    self.load_seconds = time.perf_counter() - started
                    self._model = model
        return self._model

    async def aload(self) -> LocalIntentModel:
        """``model``, the first load in a worker thread (seconds when training)."""
        if self._model is not None:
            return self._model
        return await asyncio.to_thread(lambda: self.model)

    # -- prediction --------------------------------------------------------------------------
    def predict(self, text: str) -> LocalPrediction:
        return self.model.predict(text)

    async def apredict(self, text: str) -> LocalPrediction:
        """``predict``; inline once loaded (a thread hop would double the ~1 ms)."""
        model = self._model if self._model is not None else await self.aload()
        return model.predict(text)

    def nearest_examples(self, flows: FlowSet, text: str, k: int, per_flow: int = 2) -> list[tuple[str, str]] | None:
        """The ``k`` examples of ``flows`` nearest to ``text`` by the local sentence encoder
        (at most ``per_flow`` of one flow, nearest first), for an LLM prompt's few-shot block;
        None when the model is not loaded yet or does not use the encoder (the prompt then
        shows a few examples of every flow). The examples are embedded once per flow set."""
        if self._model is None or not self._model.uses_encoder:
            return None
        import numpy as np

        from director_llm.local.features import embed, embed_one, single_blas_thread

        index = self._example_index
        if index is None or index[0] != flows.fingerprint:
            pairs = [(t, name) for name, spec in flows.flows.items() for t in spec.examples if t.strip()]
            if not pairs:
                return None
            with self._lock:
                index = (flows.fingerprint, pairs, embed([t for t, _ in pairs]))
                self._example_index = index
        _, pairs, matrix = index
        with single_blas_thread():
            sims = matrix @ embed_one(text)
        out: list[tuple[str, str]] = []
        used: dict[str, int] = {}
        for i in np.argsort(-sims, kind="stable"):
            t, name = pairs[int(i)]
            if used.get(name, 0) >= per_flow:
                continue
            used[name] = used.get(name, 0) + 1
            out.append((t, name))
            if len(out) >= k:
                break
        return out

    def flow_of(self, prediction: LocalPrediction) -> str:
        """The answered flow: the top intent, or the fallback flow when not confident enough."""
        if prediction.confidence < self.confidence_threshold:
            return self.fallback_flow
        return prediction.intent

    def classification(
        self,
        prediction: LocalPrediction,
        *,
        reason: str,
        started: float,
        extra_cost_usd: float = 0.0,
        tried: Sequence[str] = (),
        attempts: int = 0,
    ) -> IntentClassification:
        """The ``IntentClassification`` of a local answer (route tier ``local``, cost 0 plus
        whatever failed LLM calls before it spent: ``extra_cost_usd``; ``tried`` names the
        deployments that failed and ``attempts`` counts the calls made)."""
        from director_llm.intents.models import IntentClassification
        from director_llm.route import OK, Attempt, Route

        flow = self.flow_of(prediction)
        ranking = ", ".join(f"{i} {p:.2f}" for i, p in prediction.ranking[:3])
        why = "" if flow == prediction.intent else f"; below {self.confidence_threshold:g}, fallback flow"
        route = Route(
            model=self.deployment,
            provider=self.name,
            deployment=self.deployment,
            tier="local",
            cache=None,
            cost_usd=round(extra_cost_usd, 10),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            calls=attempts,
            reason=reason,
            attempts=[
                *(Attempt(deployment=d, outcome="failed") for d in tried),
                Attempt(deployment=self.deployment, outcome=OK),
            ],
        )
        return IntentClassification(
            flow=flow,
            confidence=max(0.0, min(1.0, float(prediction.confidence))),
            reasoning=f"local classifier: {ranking}{why}",
            entities={},
            route=route,
            raw_flow=prediction.intent if flow != prediction.intent else None,
        )
