"""Simulated remote tiers for cost studies: an "oracle" behind the fake provider server.

``SimulatedRemotes`` starts a ``testing.FakeProviderServer`` on 127.0.0.1 and answers every
classification as a model with a given accuracy would: it knows the true label of each
dataset text (a lookup), answers it with probability ``accuracy`` (deterministic per model
and text, so runs are reproducible) and a wrong label otherwise, after ``latency_ms``, with
token usage estimated from the real prompt (~4 characters per token). The deployments are
priced like the real models (per 1M tokens: gpt-4o-mini $0.15 / $0.60, gpt-4o $2.50 /
$10.00), so the costs are what the real prompt would cost. Every result built on it is
labelled *simulated*: it measures the cascade's economics, not those models' accuracy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from director_llm.config.loading import parse_config_text
from director_llm.config.models import DirectorConfig
from director_llm.errors import InputError

__all__ = ["SIMULATED_MODELS", "SimModel", "SimulatedRemotes", "parse_spec"]

SECTION = "simulated"


@dataclass(frozen=True)
class SimModel:
    """One simulated model: its name, accuracy, latency, prices and tier."""

    key: str
    model: str
    tier: str
    input_per_million: float
    output_per_million: float
    accuracy: float
    latency_ms: float = 0.0


SIMULATED_MODELS: dict[str, SimModel] = {
    "mini": SimModel("mini", "gpt-4o-mini", "balanced", 0.15, 0.60, 0.90),
    "4o": SimModel("4o", "gpt-4o", "strong", 2.50, 10.00, 0.95),
}
_USER_BLOCK = re.compile(r"<user_message>\n?(.*?)\n?</user_message>", re.DOTALL)
_ANSWER_TOKENS = 30


def parse_spec(spec: str) -> list[SimModel]:
    """``accuracy_mini=0.90,accuracy_4o=0.95[,latency_ms=300]`` -> the models to simulate."""
    acc: dict[str, float] = {}
    latency = 0.0
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"--simulate-remote: {part!r} is not key=number") from None
        if key == "latency_ms":
            latency = number
        elif key.startswith("accuracy_") and key[9:] in SIMULATED_MODELS and 0 <= number <= 1:
            acc[key[9:]] = number
        else:
            raise InputError(
                f"--simulate-remote: unknown {key!r} (use accuracy_mini, accuracy_4o, latency_ms; "
                "accuracies between 0 and 1)"
            )
    if not acc:
        raise InputError("--simulate-remote needs at least one accuracy_<model>=X (mini, 4o)")
    return [SimModel(**{**vars(SIMULATED_MODELS[k]), "accuracy": v, "latency_ms": latency}) for k, v in acc.items()]


def _unit(*parts: str) -> float:
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimulatedRemotes:
    """The oracle server and the config overlay that points deployments at it."""

    def __init__(self, models: Sequence[SimModel], truth: Mapping[str, str], labels: Sequence[str]) -> None:
        self.models = list(models)
        self.truth = {" ".join(k.split()): v for k, v in truth.items()}
        self.labels = sorted(set(labels))
        self.server: Any = None

    def start(self) -> str:
        from director_llm.testing import FakeProviderServer

        self.server = FakeProviderServer()
        base = self.server.start()
        for m in self.models:
            self.server.respond_with(m.model, self._responder(m))
        return base

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, m: SimModel, text: str) -> tuple[str, float]:
        """The oracle's (flow, confidence) for ``text`` as model ``m``."""
        gold = self.truth.get(" ".join(text.split()))
        if gold is not None and _unit(m.model, "ok", text) < m.accuracy:
            return gold, 0.9
        wrong = [label for label in self.labels if label != gold] or [gold or "out_of_scope"]
        # Above the default intents.confidence_threshold (0.87): a wrong answer stays wrong
        # instead of becoming the fallback flow (which would be "right" on out-of-scope messages).
        return wrong[int(_unit(m.model, "wrong", text) * len(wrong))], 0.89

    def _responder(self, m: SimModel) -> Any:
        from director_llm.testing import Reply

        def respond(request: Any) -> Any:
            raw = request.last_user_text
            found = _USER_BLOCK.findall(raw)
            text = found[-1] if found else raw
            flow, conf = self.answer(m, text)
            prompt_chars = sum(len(str(msg.get("content", ""))) for msg in request.messages if isinstance(msg, dict))
            return Reply(
                json={"flow": flow, "confidence": conf, "reasoning": "simulated oracle", "entities": {}},
                usage=(max(1, prompt_chars // 4), _ANSWER_TOKENS),
                delay=m.latency_ms / 1000,
            )

        return respond

    def overlay(self, config: DirectorConfig) -> DirectorConfig:
        """``config`` with its LLM providers replaced by the simulated deployments (the local
        tier and the intents are kept)."""
        assert self.server is not None, "start() first"
        lines = [
            f"[providers.{SECTION}]",
            'kind = "openai_compatible"',
            f'base_url = "{self.server.base_url}/v1"',
            f"models = [{', '.join(repr(m.model).replace(chr(39), chr(34)) for m in self.models)}]",
        ]
        for m in self.models:
            lines += [
                f'[providers.{SECTION}.overrides."{m.model}"]',
                f'tier = "{m.tier}"',
                f"input_price_per_million = {m.input_per_million}",
                f"output_price_per_million = {m.output_per_million}",
                "supports_json_schema = true",
            ]
        sim = parse_config_text("\n".join(lines) + "\n")
        keep = {n: p for n, p in config.providers.items() if p.kind == "local"}
        llm = config.llm.model_copy(
            update={
                "budget_per_hour": None,
                "budget_per_day": None,
                "num_retries": 0,
                "fallbacks": {},
                "derive_fallbacks": False,
            }
        )
        caching = config.caching.model_copy(update={"enabled": False})
        return config.model_copy(update={"providers": {**keep, **sim.providers}, "llm": llm, "caching": caching})

    def groups(self) -> list[str]:
        """The deployment groups to evaluate (``simulated/gpt-4o-mini``, ``simulated/gpt-4o``)."""
        return [f"{SECTION}/{m.model}" for m in self.models]
