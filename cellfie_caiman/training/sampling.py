"""Training batches: augmented U-Net crops and instance windows, and the current model's errors to train on."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..detection import PROB_THRESHOLD, _dihedral, find_candidates
from ..models import DetectionModel, ModelConfig
from .fields import Field


def _augment_channels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-channel gain in [0.8, 1.25] and Gaussian noise of random strength on a normalised crop."""
    gain = np.exp(rng.uniform(np.log(0.8), np.log(1.25), size=x.shape[-1])).astype(np.float32)
    noise = rng.uniform(0, 0.3) * rng.standard_normal(x.shape).astype(np.float32)
    return x * gain + noise


def _unet_batch(fields: Sequence[Field], weights: np.ndarray, n: int, crop: int, rng: np.random.Generator,
                missed: Sequence[tuple[int, float, float]] = (), missed_fraction: float = 0.0):
    """A batch of augmented U-Net crops (x, prob target, heat target) from the training rows of the fields.

    With ``missed`` (field index, row, col) and ``missed_fraction``, that fraction of the crops (on average) is cut
    around one of those neurons, placed at random in the crop's middle half.
    """
    xs, ps, hs = [], [], []
    for _ in range(n):
        hard = len(missed) > 0 and rng.random() < missed_fraction
        if hard:
            fi, mr, mc = missed[rng.integers(len(missed))]
            f = fields[fi]
        else:
            f = fields[rng.choice(len(fields), p=weights)]
        cr, cc = min(crop, f.train_rows), min(crop, f.inputs.shape[1])
        if hard:
            r = int(np.clip(round(mr) - rng.integers(cr // 4, 3 * cr // 4 + 1), 0, f.train_rows - cr))
            c = int(np.clip(round(mc) - rng.integers(cc // 4, 3 * cc // 4 + 1), 0, f.inputs.shape[1] - cc))
        else:
            r = rng.integers(0, f.train_rows - cr + 1)
            c = rng.integers(0, f.inputs.shape[1] - cc + 1)
        x = np.zeros((crop, crop, f.inputs.shape[2]), np.float32)
        p = np.zeros((crop, crop), np.float32)
        h = np.zeros((crop, crop), np.float32)
        x[:cr, :cc] = f.inputs[r:r + cr, c:c + cc]
        p[:cr, :cc] = f.prob[r:r + cr, c:c + cc]
        h[:cr, :cc] = f.heat[r:r + cr, c:c + cc]
        t = rng.integers(8)
        xs.append(_augment_channels(_dihedral(x, t), rng))
        ps.append(_dihedral(p, t))
        hs.append(_dihedral(h, t))
    return np.array(xs), np.array(ps), np.array(hs)


def _instance_example(f: Field, r: int, c: int, config: ModelConfig, t: int, rng: np.random.Generator):
    """Window centred on (r, c) under dihedral transform ``t`` with its targets (mask, score, mask weight)."""
    w, h = config.window, config.window // 2
    # the window is [r - h, r + h); a flip moves the centre pixel, so shift the window by one before flipping
    r0, c0 = r - h + (t & 1), c - h + ((t >> 1) & 1)
    x = np.zeros((w, w, f.inputs.shape[2]), np.float32)
    a0, a1 = max(0, r0), min(f.train_rows, r0 + w)
    b0, b1 = max(0, c0), min(f.inputs.shape[1], c0 + w)
    if a1 > a0 and b1 > b0:
        x[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = f.inputs[a0:a1, b0:b1]
    mask = np.zeros((w, w), np.float32)
    score, weight = 0.0, 0.0
    if len(f.centers):
        d = np.hypot(f.centers[:, 0] - r, f.centers[:, 1] - c)
        k = int(np.argmin(d))
        if d[k] <= 0.25 * config.train_diameter:
            score, weight = 1.0, 1.0
            br, bc, crop = f.boxes[k]
            # the part of the neuron's bounding box inside the window
            i0, i1 = max(r0, br), min(r0 + w, br + crop.shape[0])
            j0, j1 = max(c0, bc), min(c0 + w, bc + crop.shape[1])
            if i1 > i0 and j1 > j0:
                mask[i0 - r0:i1 - r0, j0 - c0:j1 - c0] = crop[i0 - br:i1 - br, j0 - bc:j1 - bc]
    return _augment_channels(_dihedral(x, t), rng), _dihedral(mask, t), score, weight


def _instance_batch(fields, weights, hard, n, config, rng):
    xs, ms, ss, ws = [], [], [], []
    jitter = 0.1 * config.train_diameter
    h = config.window // 2
    for _ in range(n):
        u = rng.random()
        if u < 0.35 and len(hard):
            fi, r, c = hard[rng.integers(len(hard))]
            f = fields[fi]
        else:
            f = fields[rng.choice(len(fields), p=weights)]
            ok = f.centers[:, 0] < f.train_rows - h if len(f.centers) else np.zeros(0, bool)
            if u < 0.75 and ok.any():
                r, c = f.centers[rng.choice(np.flatnonzero(ok))] + rng.normal(0, jitter, 2)
            else:
                r, c = rng.uniform(0, max(1, f.train_rows - h)), rng.uniform(0, f.inputs.shape[1])
        r = int(np.clip(round(r), 0, max(0, f.train_rows - h - 1)))
        c = int(np.clip(round(c), 0, f.inputs.shape[1] - 1))
        x, m, s, wgt = _instance_example(f, r, c, config, int(rng.integers(8)), rng)
        xs.append(x)
        ms.append(m)
        ss.append(s)
        ws.append(wgt)
    return (np.array(xs), np.array(ms), np.array(ss, np.float32)[:, None], np.array(ws, np.float32))


def _hard_candidates(model: DetectionModel, fields: Sequence[Field], missed_from: Sequence[bool] | None = None,
                     missed_signal: float | None = None) -> tuple[list, list]:
    """The current model's errors on the training rows of every unzoomed field, as (field index, row, col) lists.

    Returns
    -------
    candidates : list
        U-Net candidate centres (permissive thresholds): the instance network's hard negatives.
    missed : list
        Only with ``missed_from`` (one bool per field): the neurons of those fields that get no candidate within a
        quarter of the training diameter at the inference thresholds (``PROB_THRESHOLD``, the model's centre
        threshold); with ``missed_signal``, only those whose normalised ``pnr_filtered`` input reaches that value
        within a quarter of the training diameter of their centre (neurons the input shows). Else empty.
    """
    out, missed = [], []
    h = model.config.window // 2
    radius = max(1, int(round(model.config.train_diameter / 4)))
    for i, f in enumerate(fields):
        if f.zoom != 1.0:
            continue
        prob, heat = model.predict_maps(f.inputs[:f.train_rows])
        cand = find_candidates(heat, prob, radius=radius, heat_threshold=model.config.center_threshold,
                               prob_threshold=0.1)
        out += [(i, r, c) for r, c in cand if r < f.train_rows - h]
        if missed_from is not None and missed_from[i] and len(f.centers):
            strict = cand[prob[cand[:, 0], cand[:, 1]] >= PROB_THRESHOLD]  # the candidates inference would keep
            inside = f.centers[f.centers[:, 0] < f.train_rows]
            if missed_signal is not None:
                near = ndimage.maximum_filter(f.inputs[..., model.config.channels.index("pnr_filtered")],
                                              size=2 * radius + 1, mode="nearest")
                rc = np.round(inside).astype(int)
                inside = inside[near[rc[:, 0], rc[:, 1]] >= missed_signal]
            if len(strict) and len(inside):
                d = np.hypot(inside[:, None, 0] - strict[None, :, 0], inside[:, None, 1] - strict[None, :, 1])
                inside = inside[d.min(1) > 0.25 * model.config.train_diameter]
            missed += [(i, r, c) for r, c in inside]
    return out, missed
