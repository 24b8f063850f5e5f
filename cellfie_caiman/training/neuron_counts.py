"""The annotated neurons in the training rows and validation strip of each training field: their counts, the
``ValueError`` when no field holds any, and the warning when the annotated datasets hold too few to train on and to
choose the best epoch by."""
from __future__ import annotations

import warnings

import numpy as np


def _neuron_counts(fields: list, names: list[str]) -> list[dict[str, int]]:
    """For each dataset of ``names``, the neurons (mask centroids, unzoomed field) in its training rows and in its
    validation strip."""
    unzoomed = {f.name: f for f in fields if f.zoom == 1.0}
    return [_row_counts(unzoomed[name]) for name in names]


def _row_counts(field) -> dict[str, int]:
    """The neurons (mask centroids) of one field in its training rows and in its validation strip below them."""
    below = int(np.sum(field.centers[:, 0] >= field.train_rows)) if len(field.centers) else 0
    return {"training": len(field.centers) - below, "validation": below}


def _check_validation_strips(fields: list, val_fraction: float) -> None:
    """``ValueError`` when no validation strip holds a neuron (every epoch would score F1 0 and the first one would
    be kept); a warning for each annotated dataset whose strip holds none (it then counts for nothing)."""
    counts = {f.name: _row_counts(f)["validation"] for f in fields
              if f.zoom == 1.0 and f.train_rows < f.inputs.shape[0]}
    _require_neurons(counts, "validation strip", f"the bottom {val_fraction:.0%} of its rows",
                     "early stopping would have nothing to score", "its fit is not scored when the best epoch is "
                     "chosen")


def _check_training_rows(fields: list, val_fraction: float) -> None:
    """``ValueError`` when no neuron lies in the training rows of any field (the networks would be taught that
    everything is background); a warning for each annotated dataset whose training rows hold none."""
    counts = {f.name: _row_counts(f)["training"] for f in fields if f.zoom == 1.0}
    _require_neurons(counts, "training rows", f"the top {1 - val_fraction:.0%} of its rows, above the validation "
                     "strip", "the networks would learn that everything is background", "it teaches only background")


#: Fewest annotated neurons, over all annotated datasets, in the training rows (:data:`THIN_TRAINING_NEURONS`) and in
#: the validation strips together (:data:`THIN_VALIDATION_NEURONS`) that train without a warning. The model card
#: advises a hundred or more annotated neurons: about 80 above and 20 in the strips at ``val_fraction`` 0.2. With n
#: validation neurons at a true precision and recall of 0.8 (hits ~ Binomial(n, 0.8), false positives ~ Poisson) the
#: measured F1 has a standard deviation of about 0.07 at n = 20 (0.10 at 10, 0.24 at 2) and one neuron moves it by
#: 0.03 (0.06 at 10, 0.33 at 2), so an epoch truly 0.10 worse is kept in up to 15 % of choices (25 % at 10, about
#: half at 2): below 20 the best-epoch choice is largely noise. In the model
#: card's fine-tuning runs 74 and 144 neurons in the training rows (the top halves of the neurofinder excerpts) helped
#: every time, 37 and 51 (their top quarters) only sometimes; the whole excerpts have 170 and 277 (35 and 73 in
#: their strips).
THIN_TRAINING_NEURONS = 60
THIN_VALIDATION_NEURONS = 20


def _warn_if_thin(neurons: list[dict[str, int]], val_fraction: float, simulated: bool) -> str | None:
    """A ``UserWarning`` (its message returned, else None) when the annotated datasets hold fewer than
    :data:`THIN_TRAINING_NEURONS` neurons in their training rows or fewer than :data:`THIN_VALIDATION_NEURONS` in
    their validation strips, all datasets together: the model learns the preparation from a few neurons and the
    epoch kept is chosen on a few. ``neurons``: each annotated dataset's counts (:func:`_neuron_counts`; none when
    only simulated fields are used: no warning); ``simulated``: simulated fields are trained on too."""
    if not neurons:
        return None
    n_train = sum(c["training"] for c in neurons)
    n_val = sum(c["validation"] for c in neurons)
    if n_train >= THIN_TRAINING_NEURONS and n_val >= THIN_VALIDATION_NEURONS:
        return None
    datasets = "dataset" if len(neurons) == 1 else f"{len(neurons)} datasets"
    chosen = (f"the epoch kept is chosen on the F1 of {n_val} of your neurons"
              + (" (and the simulated fields' strips)" if simulated else ""))
    message = (f"few annotated neurons: {n_train} in the training rows and {n_val} in the validation strips (the "
               f"bottom {val_fraction:.0%} of each field's rows) of the annotated {datasets}, fewer than the "
               f"{THIN_TRAINING_NEURONS} and {THIN_VALIDATION_NEURONS} it takes to trust the fit: {chosen}, and the "
               "model may not generalise beyond the few it learnt from. Annotate more neurons (a hundred or more, "
               "spread over the field, both above and in the strip), pass a larger val_fraction (--val-fraction) "
               "when the strip holds too few, or add more annotated fields")
    warnings.warn(message, UserWarning, stacklevel=3)
    return message


def _require_neurons(counts: dict[str, int], part: str, rows: str, if_none: str, if_empty: str) -> None:
    """``ValueError`` (saying ``if_none``) when no field holds a neuron in its ``part`` (``rows`` says which rows);
    a ``UserWarning`` (saying ``if_empty``) naming each annotated dataset whose ``part`` holds none. ``counts``: the
    neurons in that part, by field name."""
    if not any(counts.values()):
        raise ValueError(f"no neuron lies in the {part} of any field ({rows}): {if_none}. Annotate neurons there, "
                         "give the annotated part of a field as its region, or add simulated fields")
    empty = [name for name, n in counts.items() if n == 0 and not name.startswith("simulated")]
    if empty:
        warnings.warn(f"no annotated neuron in the {part} ({rows}) of {', '.join(empty)}: {if_empty}", UserWarning,
                      stacklevel=4)
