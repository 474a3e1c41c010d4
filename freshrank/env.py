"""Process set-up every freshrank entry point needs before TensorFlow is imported."""
from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings

# What TensorFlow 2.16's CPU wheel prints on import whatever the machine: CUDA plugin factories
# registered twice (logged at ERROR level, so TF_CPP_MIN_LOG_LEVEL=2 keeps them) and notes about
# drivers and instruction sets. They read as errors on a user's terminal and are not.
_IMPORT_NOISE = re.compile(
    r"Unable to register (cuFFT|cuDNN|cuBLAS) factory"
    r"|Could not find cuda drivers|TF-TRT Warning: Could not find TensorRT"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
    r"|oneDNN custom operations are on"
)


def configure() -> None:
    # tf-keras (Keras 2) is the Keras of the TFX 1.16 stack; it must be chosen before TF loads.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def is_import_noise(line: str) -> bool:
    return bool(_IMPORT_NOISE.search(line))


def import_tensorflow() -> None:
    """Imports TensorFlow with its known import-time noise kept off stderr; every other line it
    prints (a real error) still reaches stderr. The C++ logger writes to file descriptor 2 directly,
    so the descriptor is captured, not `sys.stderr`."""
    if "tensorflow" in sys.modules:
        return
    configure()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not is_import_noise(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
