"""_jit.njit: compiled with an on-disk cache where one can be kept, without one where none can."""
import numba
import pytest

from cellfie_caiman._jit import njit

# a function with no source file: numba has nowhere to keep its cache, as for a read-only install used by an
# account without a writable home (where importing the package raised "cannot cache function ...")
_SOURCE = "def add(a, b):\n    return a + b\n"


def _function_without_a_file():
    namespace = {}
    exec(compile(_SOURCE, "<no file>", "exec"), namespace)
    return namespace["add"]


def test_numba_alone_cannot_cache_such_a_function():
    with pytest.raises(RuntimeError, match="cannot cache"):
        numba.njit(cache=True)(_function_without_a_file())


def test_it_is_compiled_without_a_cache_instead():
    add = njit(nogil=True)(_function_without_a_file())
    assert add(2, 3) == 5
    assert isinstance(add, numba.core.registry.CPUDispatcher)


def test_a_module_function_keeps_its_cache():
    from cellfie_caiman._transpose import _pixels_to_frames

    assert _pixels_to_frames._cache.__class__.__name__ == "FunctionCache"
