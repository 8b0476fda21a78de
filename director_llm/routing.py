"""Moved to ``director_llm.router.build``; this module name stays importable (it is the same module)."""

import sys

import director_llm.router.build as _moved

sys.modules[__name__] = _moved
