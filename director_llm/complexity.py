"""Moved to ``director_llm.selection.complexity``; this module name stays importable (it is the same module)."""

import sys

import director_llm.selection.complexity as _moved

sys.modules[__name__] = _moved
