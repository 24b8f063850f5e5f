"""The networks' detection scores in the role of CaImAn's CNN classifier, for component evaluation.

CaImAn's component evaluation can use a CNN that scores each footprint's shape (``cnn_preds``); its weights are not
part of CaImAn's source, so neither backend here runs it. With ``quality.use_cnn`` the networks' detection score
takes its place: each component gets the score of the detected mask that overlaps it most (intersection over union
of the supports; 0 when none), and CaImAn's decision (:func:`cellfie_caiman.cnmf.quality.accept`) uses it.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from ..masks import best_overlap
from .quality import accept
from .seeds import seed_matrix

logger = logging.getLogger(__name__)

__all__ = ["ScoredEvaluation", "component_scores", "evaluate_with_scores", "apply_scores"]


class ScoredEvaluation(NamedTuple):
    """``cnn_preds`` (K,) and the accepted / rejected component indices."""

    cnn_preds: np.ndarray
    idx_components: np.ndarray
    idx_components_bad: np.ndarray


def component_scores(A, init, dims: tuple[int, int]) -> np.ndarray:
    """For each component (column of ``A``, Fortran pixel order), the score of the seed overlapping it most.

    Parameters
    ----------
    A : sparse or ndarray (rows*cols, K)
    init : Initialization
        The seeds and their ``scores``.
    dims : (rows, cols)

    Returns
    -------
    ndarray (K,) float64: the seed's score, 0 where no seed overlaps the component.
    """
    seeds = seed_matrix(init, dims)  # every seed, (pixels, K0), Fortran order like A
    which, _ = best_overlap(A.T, seeds.T)
    scores = np.asarray(init.scores, dtype=np.float64)
    return np.where(which >= 0, scores[np.maximum(which, 0)], 0.0)


def evaluate_with_scores(A, snr, r, init, dims: tuple[int, int], quality) -> ScoredEvaluation | None:
    """CaImAn's decision with the seeds' scores as ``cnn_preds``; None when ``init`` carries no scores.

    Parameters
    ----------
    A : sparse or ndarray (rows*cols, K)
        Footprints, Fortran pixel order.
    snr, r : ndarray (K,)
        ``SNR_comp`` and ``r_values``.
    init : Initialization, or plain seeds (then None is returned)
    dims : (rows, cols)
    quality : QualityParams
    """
    if getattr(init, "scores", None) is None:
        return None
    cnn = component_scores(A, init, dims)
    good, bad = accept(np.asarray(snr), np.asarray(r), quality.min_SNR, quality.SNR_lowest, quality.rval_thr,
                       quality.rval_lowest, cnn=cnn, min_cnn_thr=quality.min_cnn_thr, cnn_lowest=quality.cnn_lowest)
    return ScoredEvaluation(cnn, good, bad)


def apply_scores(estimates, init, dims: tuple[int, int], quality) -> bool:
    """With ``quality.use_cnn``, set ``cnn_preds``, ``idx_components`` and ``idx_components_bad`` of
    ``estimates`` (ours or CaImAn's) by :func:`evaluate_with_scores`, in place; False when nothing was changed
    (``use_cnn`` off, or seeds without scores: then a log line says so)."""
    if not quality.use_cnn:
        return False
    scored = evaluate_with_scores(estimates.A, estimates.SNR_comp, estimates.r_values, init, dims, quality)
    if scored is None:
        logger.info("quality.use_cnn: the seeds have no detection scores; components evaluated without them")
        return False
    estimates.cnn_preds, estimates.idx_components, estimates.idx_components_bad = scored
    return True
