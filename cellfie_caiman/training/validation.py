"""Validation during training: one-pass detection on the held-out strips and the scores that pick the best epoch."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detection import detect
from ..instances import dedup_local, place_windows
from ..models import DetectionModel
from .fields import Field


def _val_masks(f: Field) -> np.ndarray:
    """Ground-truth masks of the validation strip whose centroid lies in it, (N, val_rows, cols)."""
    shape = (f.inputs.shape[0] - f.train_rows, f.inputs.shape[1])
    out = []
    for (br, bc, crop), (cr, _) in zip(f.boxes, f.centers, strict=False):
        if cr < f.train_rows:
            continue
        m = np.zeros((f.inputs.shape[0], f.inputs.shape[1]), bool)
        m[br:br + crop.shape[0], bc:bc + crop.shape[1]] = crop
        out.append(m[f.train_rows:])
    return np.array(out, bool).reshape((-1,) + shape)


def detect_masks(model: DetectionModel, inputs: np.ndarray, *, min_score=0.5, prob_threshold=0.3, max_overlap=0.5):
    """Masks (K, rows, cols) found on normalised ``inputs`` at the model's scale (no zoom).

    One pass of the networks (no test-time augmentation, 8 times cheaper): used to pick the best epoch. The
    default ``prob_threshold`` (0.3) is :func:`cellfie_caiman.initialize`'s default of the time the shipped weights
    were trained (now 0.4); it stays so that the recorded training commands reproduce those weights.
    """
    det = detect(model, inputs, prob_threshold=prob_threshold, tta=False)
    shape = inputs.shape[:2]
    min_area = 0.1 * np.pi * (model.config.train_diameter / 2) ** 2
    local, index, _ = place_windows(det, det.scores >= min_score, shape, shape, model.config.window, min_area)
    return local.dense(dedup_local(local, det.scores[index], max_overlap=max_overlap))


def validate(model: DetectionModel, fields: Sequence[Field], selection: str = "pooled") -> dict:
    """Detection scores (``match_rois``, CaImAn rule) on the validation strips of the unzoomed fields.

    ``val_f1`` is the model-selection score: with ``selection='pooled'`` the F1 of the matches pooled over all
    strips; with ``'balanced'`` the mean of the per-field F1 with every annotated (real) field weighted as much as
    all simulated fields together, so that a dozen simulated strips cannot outvote the real ones. Both are
    returned (``val_f1_pooled``, ``val_f1_balanced``), with the pooled precision and recall and the mean F1 of
    the real and of the simulated strips (``val_f1_real``, ``val_f1_simulated``: NaN when there is no such strip).
    All are 0..1; precision, recall and the pooled and balanced F1 are 0 when nothing matched (also when there was
    nothing to match or nothing was found).
    """
    from ..evaluate import match_rois

    counts = []
    for f in fields:
        if f.zoom != 1.0 or f.train_rows >= f.inputs.shape[0]:
            continue
        res = match_rois(_val_masks(f), detect_masks(model, f.inputs[f.train_rows:]))
        counts.append((f.name.startswith("simulated"), res.tp, res.fp, res.fn))
    return selection_scores(counts, selection)


def check_selection(selection: str) -> None:
    """``ValueError`` unless ``selection`` is a model-selection score of :func:`validate`."""
    if selection not in ("pooled", "balanced"):
        raise ValueError(f"selection must be 'pooled' or 'balanced', got {selection!r}")


def selection_scores(counts: Sequence[tuple[bool, int, int, int]], selection: str = "pooled") -> dict:
    """Combine per-strip match counts ``(is_simulated, tp, fp, fn)`` into the scores of :func:`validate`."""
    check_selection(selection)
    tp = sum(c[1] for c in counts)
    fp = sum(c[2] for c in counts)
    fn = sum(c[3] for c in counts)
    real = [2 * t / (2 * t + p + n) for s, t, p, n in counts if not s and t + p + n]
    sim = [2 * t / (2 * t + p + n) for s, t, p, n in counts if s and t + p + n]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    pooled = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    scores = real + ([float(np.mean(sim))] if sim else [])
    balanced = float(np.mean(scores)) if scores else 0.0
    return {"val_f1": pooled if selection == "pooled" else balanced, "val_f1_pooled": pooled,
            "val_f1_balanced": balanced, "val_precision": precision, "val_recall": recall,
            "val_f1_real": float(np.mean(real)) if real else float("nan"),
            "val_f1_simulated": float(np.mean(sim)) if sim else float("nan")}
