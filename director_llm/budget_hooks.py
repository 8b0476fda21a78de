"""Moved to ``director_llm.budget.guard``; this module name stays importable (it is the same module)."""

import sys

import director_llm.budget.guard as _moved

sys.modules[__name__] = _moved
