"""The package's top-level API: lazy, and the functions stay functions whatever gets imported."""
import subprocess
import sys


def test_api_functions_are_not_hidden_by_their_modules():
    """``initialize``, ``simulate``, ``simulate_blobs`` and ``train`` share their module's name; importing the
    module (directly or through another module) must not replace the function on the package. Run in a fresh
    interpreter: this test session has imported everything already."""
    code = """
import types
import cellfie_caiman as cc
first = cc.simulate                      # lazy lookup imports cellfie_caiman.simulate
import cellfie_caiman.pipeline           # imports .initialize and friends as modules
from cellfie_caiman.train import train   # and .train
from cellfie_caiman.simulate_blobs import simulate_blobs
for name in ("simulate", "simulate_blobs", "initialize", "train", "run", "summary_images", "refine"):
    obj = getattr(cc, name)
    assert isinstance(obj, types.FunctionType), (name, obj)
assert cc.simulate is first
sim = cc.simulate(20, (24, 24), 2, seed=0)
sim = cc.simulate(20, (24, 24), 2, seed=0)  # a second call works too
assert sim.movie.shape == (20, 24, 24)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_docstring_examples_run():
    """Every ``>>>`` example in the package's docstrings gives the output it shows."""
    import doctest
    import importlib
    import pkgutil

    import cellfie_caiman

    failed, tried = 0, 0
    for info in pkgutil.walk_packages(cellfie_caiman.__path__, "cellfie_caiman."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        failed, tried = failed + result.failed, tried + result.attempted
    assert tried >= 10 and failed == 0, f"{failed} of {tried} docstring examples failed"


def _onednn_enabled(env_value):
    """Whether TensorFlow runs its oneDNN kernels after ``import cellfie_caiman`` in a fresh interpreter whose
    TF_ENABLE_ONEDNN_OPTS is ``env_value`` (None: unset)."""
    import os

    import pytest

    pytest.importorskip("tensorflow")
    code = """
import os
import cellfie_caiman
import tensorflow
try:
    from tensorflow.python.util import _pywrap_util_port
except ImportError:
    print("unknown")
else:
    print(os.environ["TF_ENABLE_ONEDNN_OPTS"], _pywrap_util_port.IsMklEnabled())
"""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    answer = out.stdout.strip().splitlines()[-1]
    if answer == "unknown":
        pytest.skip("this TensorFlow does not say whether oneDNN is on")
    return answer


def test_importing_the_package_turns_tensorflows_onednn_kernels_on():
    """TensorFlow turns oneDNN on by itself only on some CPUs; the package asks for it everywhere."""
    import pytest

    if _onednn_enabled("1") != "1 True":
        pytest.skip("this TensorFlow build has no oneDNN kernels (e.g. macOS)")
    assert _onednn_enabled(None) == "1 True"


def test_an_explicit_onednn_setting_is_kept():
    assert _onednn_enabled("0") == "0 False"


def test_the_api_imports_tensorflow_without_its_start_up_notices():
    """TensorFlow 2.17+ writes absl/oneDNN notices to stderr on import whatever TF_CPP_MIN_LOG_LEVEL says (the
    oneDNN one because the package turns oneDNN on); the Python API drops them as the command line does."""
    import os

    import pytest

    pytest.importorskip("tensorflow")
    code = "from cellfie_caiman.models import load_model; print(load_model('default').config.window)"
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["48"]
    for notice in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "port.cc"):
        assert notice not in proc.stderr, proc.stderr


def test_tensorflow_imported_before_the_package_without_onednn_is_warned_about_once():
    """TensorFlow imported first (as another package may do) keeps oneDNN off where it does not turn it on by itself:
    the networks then run ~1.7x slower, said once when they first run, and only then."""
    import os

    import pytest

    pytest.importorskip("tensorflow")
    code = """
import warnings
import numpy as np
import tensorflow
from tensorflow.python.util import _pywrap_util_port
import cellfie_caiman
from cellfie_caiman.models import new_model
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = new_model()
    model.predict_maps(np.zeros((16, 16, len(model.config.channels)), np.float32))
    model.predict_maps(np.zeros((16, 16, len(model.config.channels)), np.float32))
    new_model().predict_maps(np.zeros((16, 16, len(model.config.channels)), np.float32))
said = [str(w.message) for w in caught if "oneDNN" in str(w.message)]
print(_pywrap_util_port.IsMklEnabled(), bool(tensorflow.config.list_physical_devices("GPU")), len(said))
"""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    onednn, gpu, said = out.stdout.split()
    assert int(said) == (0 if onednn == "True" or gpu == "True" else 1), out.stdout
