"""Import Keras without TensorFlow's start-up notices.

TensorFlow 2.17+ writes a few lines to file descriptor 2 when it is imported (absl's "All log messages before
absl::InitializeLog() is called...", "oneDNN custom operations are on...", the CPU-instructions notice), whatever
``TF_CPP_MIN_LOG_LEVEL`` says. They are noise for users, and the oneDNN one exists only because this package turns
oneDNN on (``cellfie_caiman/__init__.py``). Every place of the package that imports Keras goes through
:func:`import_keras`, so the command line and the Python API both import TensorFlow quietly; anything else it
writes is passed on.
"""
from __future__ import annotations

import os
import sys

#: Substrings of the lines TensorFlow writes on import that are dropped.
TF_STARTUP_NOTICES = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on",
                      "This TensorFlow binary is optimized to use available CPU instructions",
                      "To enable the following instructions:")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (when it is Keras' backend and not yet imported) with file descriptor 2 sent to a temporary
    file, then pass on to stderr every line it wrote except :data:`TF_STARTUP_NOTICES`. A failed import is left to
    the code that needs TensorFlow to report."""
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode(errors="replace").splitlines(keepends=True)
    sys.stderr.write("".join(line for line in lines if not any(n in line for n in TF_STARTUP_NOTICES)))


def import_keras():
    """The ``keras`` module (Keras 2.15 or 3), TensorFlow imported first by :func:`import_tensorflow_quietly`."""
    import_tensorflow_quietly()
    import keras

    return keras
