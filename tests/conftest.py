"""Fixtures shared by several test modules."""
from __future__ import annotations

import sys

import pytest


@pytest.fixture
def interrupt_training_at(monkeypatch):
    """``f(n)``: make the n-th instance-network batch of ``train()`` raise ``KeyboardInterrupt``, as Ctrl-C would in
    the middle of an epoch (``n = steps_per_epoch + 2``: the second update of the second epoch)."""
    import cellfie_caiman.training.fit  # noqa: F401  (the epoch loop: it draws the batches)

    module = sys.modules["cellfie_caiman.training.fit"]
    real = module._instance_batch

    def at(n: int) -> None:
        calls = []

        def batch(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "_instance_batch", batch)

    return at
