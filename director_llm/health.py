"""Moved to ``director_llm.resilience.health``; this module name stays importable (it is the same module)."""

import sys

import director_llm.resilience.health as _moved

sys.modules[__name__] = _moved
