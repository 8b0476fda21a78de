"""Shared test configuration: the fake-provider and Redis fixtures of director_llm.testing."""

import os

# LiteLLM fetches its price map from the network at import unless told not to; tests are
# loopback-only, so this must be set before any test module imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytest_plugins = ["director_llm.testing.pytest_plugin"]
