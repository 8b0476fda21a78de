"""Checks for configs that load fine but fail at run time: caught by ``load_config`` and
``check-config`` instead, each with the key to edit and the fix.

- nothing can answer (no enabled provider: an empty file used to be "valid", then
  ``classify`` failed seconds later);
- ``intents.fallback_flow`` is a typo of a flow (that flow would become an ordinary one);
- with the local tier: a flow without examples (the tier can never answer it), examples of
  fewer than two flows, or a fallback flow that is not a flow and leaves only one (it
  cannot train: "needs examples of at least two intents"). A fallback flow that is not a
  flow but leaves enough is a warning (no out-of-scope examples are learnt);
- timeouts: an attempt (or a provider's) timeout longer than the request deadline (one
  hanging deployment uses the whole deadline: the fallbacks never run). A local model
  served on a CPU with the default 10 s attempt timeout is a warning (its first answer,
  which loads the model, often takes longer).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Literal

from director_llm.config.models import DirectorConfig, LLMConfig
from director_llm.config.problems import Problem

if TYPE_CHECKING:
    from director_llm.providers import DeploymentInfo

#: Suggested attempt timeout for a model served on the user's own CPU.
LOCAL_MODEL_TIMEOUT_S = 60


def _problem(level: Literal["error", "warning"], key: str, message: str) -> Problem:
    return Problem(level, key, message)


def check_something_answers(config: DirectorConfig) -> list[Problem]:
    """An error when no enabled provider exists: nothing could classify or chat."""
    if any(p.enabled for p in config.providers.values()):
        return []
    what = "every provider is disabled" if config.providers else "no provider is configured"
    return [
        _problem(
            "error",
            "providers",
            f"{what}, so nothing can classify or chat. Add the embedded local "
            'tier (free, offline): a [providers.local] section with kind = "local", or start from '
            "`director-llm init`",
        )
    ]


def flow_names(config: DirectorConfig) -> dict[str, list[str]]:
    """Flow name -> examples, as the classifier sees them (built-in flows when none are set)."""
    if config.intents.flows is not None:
        return {name: list(f.examples) for name, f in config.intents.flows.items()}
    from director_llm.intents.builtin_flows import BUILTIN_FLOWS

    return {name: list(spec.get("examples", ())) for name, spec in BUILTIN_FLOWS.items()}


def check_flows(config: DirectorConfig) -> list[Problem]:
    """``fallback_flow`` against the flows; the local tier needs examples to learn each flow."""
    intents = config.intents
    if intents.flows is not None and not intents.flows:
        return []  # reported by semantics ("define at least one flow")
    flows = flow_names(config)
    fallback = intents.fallback_flow
    local = [(name, p) for name, p in config.providers.items() if p.kind == "local" and p.enabled]
    out: list[Problem] = []
    close = difflib.get_close_matches(fallback, list(flows), n=1, cutoff=0.75) if fallback not in flows else []
    if close:  # a typo: the flow meant as the fallback would be an ordinary flow
        out.append(
            _problem(
                "error",
                "intents.fallback_flow",
                f"'{fallback}' is not one of the flows; did you mean '{close[0]}'? Set fallback_flow "
                "to the flow answered when nothing fits",
            )
        )
    if not local:
        return out  # LLM tiers work from descriptions alone, and are told about the fallback flow
    section_name, section = local[0]
    trained = [name for name, examples in flows.items() if examples]
    if fallback not in flows and not close:
        if len(trained) < 2 and not section.training_file:
            out.append(
                _problem(
                    "error",
                    "intents.fallback_flow",
                    f"'{fallback}' is not one of the flows ({_names(flows)}), so the local tier "
                    f"([providers.{section_name}]) has examples of {len(trained)} flow(s) and cannot "
                    "train (it needs at least two). Set fallback_flow to one of the flows, or add "
                    f"[intents.flows.{fallback}] with a description and examples of messages the "
                    "assistant does not handle",
                )
            )
            return out
        out.append(
            _problem(
                "warning",
                "intents.fallback_flow",
                f"'{fallback}' is not one of the flows: the local tier learns no examples of it and "
                "answers it only below its confidence threshold. Add "
                f"[intents.flows.{fallback}] with examples of messages the assistant does not handle",
            )
        )
    for name, examples in flows.items():
        if not examples and name != fallback:
            out.append(
                _problem(
                    "error",
                    f"intents.flows.{name}.examples",
                    f"flow '{name}' has no examples, so the local tier ([providers.{section_name}]) can "
                    "never answer it: add a few example messages (any language), e.g. "
                    'examples = ["...", "..."]',
                )
            )
    if len(trained) < 2 and not section.training_file and not any(p.level == "error" for p in out):
        out.append(
            _problem(
                "error",
                "intents.flows",
                f"the local tier needs examples of at least two flows to train; only "
                f"{_names(trained) or 'none'} has examples: add flows with examples, or "
                f"providers.{section_name}.training_file",
            )
        )
    return out


def _names(names: Any, limit: int = 8) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_timeouts(config: DirectorConfig, deployments: list[DeploymentInfo]) -> list[Problem]:
    """Attempt timeouts within the request deadline; a warning for local models on defaults."""
    llm = config.llm
    deadline = llm.timeout_seconds
    out: list[Problem] = []
    default_note = "" if "attempt_timeout_seconds" in llm.model_fields_set else " (the default)"
    if llm.attempt_timeout_seconds > deadline:
        out.append(
            _problem(
                "error",
                "llm.attempt_timeout_seconds",
                f"{llm.attempt_timeout_seconds:g} s{default_note} is longer than llm.timeout_seconds "
                f"({deadline:g} s, the whole request's deadline): one hanging deployment would use the "
                f"whole deadline and the fallbacks would never run. Set attempt_timeout_seconds to at "
                f"most {deadline:g} (e.g. {deadline / 3:g} leaves time for two fallbacks) or raise "
                "timeout_seconds",
            )
        )
    for name, p in config.providers.items():
        if p.timeout_seconds is not None and p.timeout_seconds > deadline:
            out.append(
                _problem(
                    "error",
                    f"providers.{name}.timeout_seconds",
                    f"{p.timeout_seconds:g} s is longer than llm.timeout_seconds ({deadline:g} s, the "
                    "request's deadline): an attempt could never use it all and the fallbacks would "
                    f"never run. Lower it, or raise llm.timeout_seconds above {p.timeout_seconds:g}",
                )
            )
    if llm.first_token_timeout_seconds > deadline:
        out.append(
            _problem(
                "warning",
                "llm.first_token_timeout_seconds",
                f"{llm.first_token_timeout_seconds:g} s is longer than llm.timeout_seconds "
                f"({deadline:g} s): a stream with no first token uses the whole deadline. "
                f"Set it to at most {deadline:g}",
            )
        )
    out += _check_local_model_timeouts(config, llm, deployments)
    return out


def _check_local_model_timeouts(
    config: DirectorConfig, llm: LLMConfig, deployments: list[DeploymentInfo]
) -> list[Problem]:
    if "attempt_timeout_seconds" in llm.model_fields_set:
        return []  # the author chose a timeout
    out: list[Problem] = []
    seen: set[str] = set()
    for d in deployments:
        section = config.providers.get(d.provider)
        if section is None or section.kind == "local" or d.provider_type != "local" or d.provider in seen:
            continue
        if section.timeout_seconds is not None:
            continue
        seen.add(d.provider)
        need = max(llm.timeout_seconds, LOCAL_MODEL_TIMEOUT_S * 1.5)
        out.append(
            _problem(
                "warning",
                f"providers.{d.provider}.timeout_seconds",
                f"{d.name} runs on this machine: on a CPU its first answer (which loads the model) "
                f"often takes longer than the default {llm.attempt_timeout_seconds:g} s attempt "
                f"timeout, and the request then falls back or fails. Set "
                f"providers.{d.provider}.timeout_seconds = {LOCAL_MODEL_TIMEOUT_S} (and "
                f"llm.timeout_seconds = {need:g}), or llm.attempt_timeout_seconds",
            )
        )
    return out
