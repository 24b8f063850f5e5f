"""Checks of user-given settings: a clear ``ValueError`` naming the setting, before any work is done."""
from __future__ import annotations

import numbers
import operator

import numpy as np

#: Smallest soma diameter (pixels) accepted: a soma less than 2 pixels across has no outline to find, and the zoom
#: to the shipped model's size (``train_diameter / neuron_diameter``) would blow the field up more than six-fold.
MIN_DIAMETER = 2.0


def number(value, name: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, integer: bool = False, optional: bool = False):
    """``value`` if it is a finite number within the bounds, else ``ValueError`` naming ``name``.

    Parameters
    ----------
    value : object
        The setting as given.
    name : str
        How the error names it (e.g. ``'refine.merge_thr'``).
    low, high : float, optional
        Bounds, included unless ``low_open`` / ``high_open``.
    integer : bool
        Must be a whole number (``True``/``False`` are not numbers here).
    optional : bool
        None is allowed (and returned).

    Examples
    --------
    >>> number(0.5, "min_score", low=0, high=1)
    0.5
    >>> number(1.5, "min_score", low=0, high=1)
    Traceback (most recent call last):
    ...
    ValueError: min_score must be a number in [0, 1], got 1.5
    """
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value))
    if ok and integer:
        ok = float(value).is_integer()
    if ok and low is not None:
        ok = (operator.gt if low_open else operator.ge)(value, low)
    if ok and high is not None:
        ok = (operator.lt if high_open else operator.le)(value, high)
    if not ok:
        raise ValueError(f"{name} must be {_describe(low, high, low_open, high_open, integer, optional)}, "
                         f"got {value!r}")
    return value


def frame_shape(value, name: str) -> tuple[int, int]:
    """``value`` as (rows, cols), two whole numbers >= 1 (floats holding whole numbers too), else ``ValueError``
    naming ``name``.

    Examples
    --------
    >>> frame_shape((64.0, 80), "shape")
    (64, 80)
    """
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{name} must be (rows, cols), got {value!r}")
    for v in pair:
        number(v, f"{name} (rows, cols)", low=1, integer=True)
    return int(pair[0]), int(pair[1])


def _describe(low, high, low_open: bool, high_open: bool, integer: bool, optional: bool) -> str:
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        kind += f" in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    elif low is not None:
        kind += f" {'>' if low_open else '>='} {_bound(low)}"
    elif high is not None:
        kind += f" {'<' if high_open else '<='} {_bound(high)}"
    return kind + (" or None" if optional else "")


def _bound(x) -> str:
    """A range's bound as a user types it: whole numbers in full (4294967295, not 4.29497e+09), others as %g."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def positive_or_none(value) -> float | None:
    """``value`` as a positive finite float, else None (for numbers a file records, e.g. a frame rate)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None
