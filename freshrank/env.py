"""Process set-up every freshrank entry point needs before TensorFlow is imported."""
from __future__ import annotations

import os
import warnings


def configure() -> None:
    # tf-keras (Keras 2) is the Keras of the TFX 1.16 stack; it must be chosen before TF loads.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
