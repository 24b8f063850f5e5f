"""The networks :func:`cellfie_caiman.train.train` starts from, the epochs that train them (updates of both
networks, validation, the best epoch's weights kept, early stopping) and the warning when those weights found
nothing."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings

import numpy as np

from ..models import DetectionModel, ModelConfig, new_model
from .sampling import _hard_candidates, _instance_batch, _unet_batch
from .steps import _clone, _train_steps
from .validation import validate

logger = logging.getLogger(__name__)


def _starting_model(start, config, channels, diameters) -> DetectionModel:
    """The networks training starts from: a copy of ``start`` (fine-tuning; weights of a new channel zero), or new
    ones from ``config``, whose default ``train_diameter`` becomes the median neuron diameter of the data."""
    if start is not None:
        return DetectionModel(dataclasses.replace(start.config, channels=channels), *_clone(start, channels),
                              source="")
    config = dataclasses.replace(config or ModelConfig(), channels=channels)
    if dataclasses.replace(config, channels=ModelConfig().channels) == ModelConfig():
        config = dataclasses.replace(config, train_diameter=round(float(np.nanmedian(diameters)), 2))
    return new_model(config)


def _fit(model: DetectionModel, fields: list, weights: np.ndarray, rng: np.random.Generator, *, learning_rate: float,
         epochs: int, steps_per_epoch: int, patience: int, unet_batch: int, unet_crop: int, instance_batch: int,
         missed_crops: float, missed_signal: float | None, selection: str, max_minutes: float | None,
         t_start: float, progress: bool) -> tuple[list, float, int, bool]:
    """The epochs: updates of both networks, then validation; the best epoch's weights are left in ``model``.

    The learning rate halves after every 3 epochs without a better validation score; training stops after
    ``patience`` of them, after ``epochs``, after the epoch that passes ``max_minutes`` since ``t_start``, or at a
    ``KeyboardInterrupt`` once an epoch has been scored (before that the interrupt propagates).

    Returns
    -------
    history : list of dict (one per whole epoch), best_f1 : float, best_epoch : int, interrupted : bool
    """
    import keras
    from tqdm.auto import tqdm

    config = model.config
    unet, inst = model.unet, model.instance
    opt_u = keras.optimizers.Adam(learning_rate)
    opt_i = keras.optimizers.Adam(learning_rate)
    unet_step, inst_step = _train_steps(unet, inst, opt_u, opt_i)

    history: list[dict] = []
    best = (-1.0, -1, None)
    stale = 0
    hard: list = []
    missed: list = []
    simulated_field_flags = [f.name.startswith("simulated") for f in fields]
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    interrupted = False
    try:
        for epoch in bar:
            t0 = time.monotonic()
            lu = li = 0.0
            for _ in tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", leave=False, disable=not progress):
                x, yp, yh = _unet_batch(fields, weights, unet_batch, unet_crop, rng, missed, missed_crops)
                lu += unet_step(x, yp, yh)
                x, ym, ys, wm = _instance_batch(fields, weights, hard, instance_batch, config, rng)
                li += inst_step(x, ym, ys, wm)
            hard, missed = _hard_candidates(model, fields, simulated_field_flags if missed_crops > 0 else None,
                                            missed_signal)
            if missed_crops > 0:
                logger.info("%d simulated neurons without a candidate centre", len(missed))
            val = validate(model, fields, selection)
            now = time.monotonic()
            row = {"epoch": epoch, "unet_loss": lu / steps_per_epoch, "instance_loss": li / steps_per_epoch, **val,
                   "seconds": now - t0, "minutes": (now - t_start) / 60}
            improved = val["val_f1"] > best[0]
            if improved:
                best = (val["val_f1"], epoch, {k: [w.copy() for w in net.get_weights()] for k, net in
                                               model.networks.items()})
            history.append(row)  # after `best`: an interrupt leaves every epoch in `history` compared with it
            logger.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
            shown = {"f1": f"{val['val_f1']:.3f}", "best": f"{best[0]:.3f}"}
            if max_minutes is not None:  # the bar's own estimate runs to `epochs`, which a budget usually cuts short
                shown["budget_left"] = f"{max(0.0, max_minutes - row['minutes']):.1f} min"
            bar.set_postfix(shown)
            if improved:
                stale = 0
            else:
                stale += 1
                if stale % 3 == 0:
                    for opt in (opt_u, opt_i):
                        opt.learning_rate.assign(float(np.asarray(opt.learning_rate)) * 0.5)
                if stale >= patience:
                    break
            if max_minutes is not None and (time.monotonic() - t_start) / 60 > max_minutes:
                logger.info("stopping: %.1f min budget spent", max_minutes)
                break
    except KeyboardInterrupt:
        if best[2] is None:  # no epoch scored yet: nothing to keep
            raise
        interrupted = True
        bar.close()
        warnings.warn(f"training interrupted during epoch {len(history)}: keeping epoch {best[1]} (validation F1 "
                      f"{best[0]:.3f}), the best of the {len(history)} finished", RuntimeWarning, stacklevel=3)
    finally:  # an early stop or an error leaves the loop over the bar: close it now, not when it is collected
        bar.close()
    for k, net in model.networks.items():
        net.set_weights(best[2][k])
    return history, best[0], best[1], interrupted


def _warn_nothing_found(history: list, best_epoch: int, diameters: list, train_diameter: float,
                        val_fraction: float, out_path: str | os.PathLike | None) -> None:
    """A ``RuntimeWarning`` when the best validation F1 is 0: in no epoch did a detection match a neuron of the
    validation strips, and the weights kept (those of ``best_epoch``, the first scored) find nothing there."""
    kept = "returned and saved" if out_path is not None else "returned"
    epochs = "the one epoch run" if len(history) == 1 else f"any of the {len(history)} epochs run"
    warnings.warn(f"best validation F1 is 0: none of the networks' detections matched a neuron of the validation "
                  f"strips (the bottom {val_fraction:.0%} of every field's rows) after {epochs}, so the weights "
                  f"{kept} (epoch {best_epoch}) find nothing there either. Check that the annotations line "
                  "up with their movies (same orientation, same field; check_annotations), that the model's neuron "
                  f"diameter ({train_diameter:.1f} px) suits the neurons (median diameter of the "
                  f"training masks {float(np.nanmedian(diameters)):.1f} px), and train for longer (more epochs, "
                  "steps_per_epoch or max_minutes)", RuntimeWarning, stacklevel=3)
