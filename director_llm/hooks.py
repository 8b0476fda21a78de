"""Moved to ``director_llm.router.callbacks``; this module name stays importable (it is the same module)."""

import sys

import director_llm.router.callbacks as _moved

sys.modules[__name__] = _moved
