"""TensorFlow's import-time noise stays off the terminal; anything else it prints still shows."""
from __future__ import annotations

import subprocess
import sys

from freshrank.env import is_import_noise

NOISE = [
    "2026-12-06 18:18:17.868289: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:479] Unable to register "
    "cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been registered",
    "E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:10575] Unable to register cuDNN factory: ...",
    "E external/local_xla/xla/stream_executor/cuda/cuda_blas.cc:1442] Unable to register cuBLAS factory: ...",
]


def test_the_known_import_lines_are_noise_and_real_errors_are_not():
    assert all(is_import_noise(line) for line in NOISE)
    assert not is_import_noise("E tensorflow/core/framework/op_kernel.cc:1816] OP_REQUIRES failed: out of memory")
    assert not is_import_noise("Traceback (most recent call last):")


def test_importing_tensorflow_through_freshrank_prints_none_of_it():
    code = ("import os, sys; from freshrank.env import import_tensorflow; import_tensorflow(); "
            "import tensorflow as tf; os.write(2, b'after import\\n'); print(tf.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.startswith("2.16")
    assert "Unable to register" not in done.stderr, done.stderr
    assert "after import" in done.stderr  # stderr is whole again once TensorFlow is in


def test_the_demo_sends_every_stderr_writer_to_its_log_and_keeps_the_terminal(tmp_path):
    """C++ logging writes to descriptor 2 itself, and Python handlers keep the stderr they were
    given at import: only a descriptor-level redirect gets both into the demo's log."""
    log = tmp_path / "demo.log"
    code = (
        "import logging, os, sys\n"
        "from freshrank.cli import _stderr_to\n"
        "handler = logging.StreamHandler(sys.stderr)  # bound before the redirect, as TF's is\n"
        "logging.getLogger('x').addHandler(handler)\n"
        f"with open({str(log)!r}, 'a') as f, _stderr_to(f) as terminal:\n"
        "    os.write(2, b'from C++\\n')\n"
        "    logging.getLogger('x').warning('from an early handler')\n"
        "    print('progress line', file=terminal)\n"
        "print('after', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert "from C++" in log.read_text() and "from an early handler" in log.read_text()
    assert "progress line" in done.stderr and "after" in done.stderr
    assert "from C++" not in done.stderr and "from an early handler" not in done.stderr
