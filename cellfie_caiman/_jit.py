"""Numba compilation with an on-disk cache where one can be written, and without one where none can.

``numba.njit(cache=True)`` keeps compiled code beside the module (``__pycache__``) or, when that folder is read-only,
in the user's cache folder; where neither can be written (a read-only install used by an account without a home,
as on some clusters and in containers) it raises ``RuntimeError`` when the module is imported. :func:`njit` then
compiles without a cache instead: the same code, compiled again in every process.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numba

logger = logging.getLogger(__name__)


def njit(**options) -> Callable[[Callable], Callable]:
    """``numba.njit(cache=True, **options)``, falling back to ``numba.njit(**options)`` when no cache can be kept.

    Examples
    --------
    >>> @njit(nogil=True)
    ... def twice(x):
    ...     return 2 * x
    >>> twice(21)
    42
    """
    def decorate(function: Callable) -> Callable:
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            logger.debug("%s compiled without an on-disk cache: %s", function.__qualname__, exc)
            return numba.njit(**options)(function)

    return decorate
