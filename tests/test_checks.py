"""The check of user-given numbers behind every parameter error message."""
import numpy as np
import pytest

from cellfie_caiman._checks import number, positive_or_none


@pytest.mark.parametrize("value", [0.5, 0, 1, np.float32(0.25), np.int64(1)])
def test_numbers_in_a_closed_range_pass_through(value):
    assert number(value, "x", low=0, high=1) is value


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan"), float("inf"), True, np.bool_(False), "0.5", None,
                                   [0.5]])
def test_anything_else_is_refused_with_its_name_and_the_range(value):
    with pytest.raises(ValueError, match=r"^x must be a number in \[0, 1\], got "):
        number(value, "x", low=0, high=1)


def test_open_bounds_integers_and_none():
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        number(0, "x", low=0, high=1, low_open=True)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        number(1, "x", low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match="must be an integer >= 2 or None"):
        number(2.5, "x", low=2, integer=True, optional=True)
    assert number(4.0, "x", low=2, integer=True) == 4
    assert number(None, "x", low=2, optional=True) is None
    with pytest.raises(ValueError, match="must be a number > 0, got None"):
        number(None, "x", low=0, low_open=True)
    with pytest.raises(ValueError, match="must be a number <= 3"):
        number(4, "x", high=3)


def test_whole_bounds_are_written_in_full():
    """A seed's range reads as the user would type it, not rounded to 6 digits (4.29497e+09)."""
    with pytest.raises(ValueError, match=r"an integer in \[0, 4294967295\], got -1"):
        number(-1, "seed", low=0, high=2**32 - 1, integer=True)
    with pytest.raises(ValueError, match=r"a number > 0.5, got 0.25"):
        number(0.25, "x", low=0.5, low_open=True)


@pytest.mark.parametrize("value, expected", [(30, 30.0), ("7.5", 7.5), (np.float32(15), 15.0), (0, None), (-2, None),
                                             (np.nan, None), (np.inf, None), (None, None), ("fast", None), ([1], None)])
def test_positive_or_none_keeps_only_positive_finite_numbers(value, expected):
    """What a file records as a frame rate is used only when it is a positive finite number."""
    assert positive_or_none(value) == expected
