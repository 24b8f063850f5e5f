"""Where the time of a training run goes: field preparation, batch making and the updates of both networks.

Reproduce with::

    python benchmarks/training.py                        # 16 simulated fields, 30 timed updates per setting
    KERAS_BACKEND=torch python benchmarks/training.py    # the same on Keras 3's PyTorch backend (GPU if seen)
    python benchmarks/training.py --fields 4 --steps 5   # quick run

Printed:

* simulating the fields (in parallel processes, one field each) and preparing them at the five training zooms;
* mask zooming alone against the baseline it replaced, run in the same process on the same masks: scikit-image's
  ``resize`` of every whole mask (``_zoom_masks`` must give identical masks; the script checks it);
* per update (after 3 warm-up updates), for the default batches (U-Net 6 crops of 128 px, instance network 48
  windows) and 4x larger ones: the milliseconds spent making the batches (NumPy, one thread), in the U-Net update
  and in the instance-network update, and the ratio of the two settings' throughputs (examples per second);
* one pass of hard-candidate mining and of validation (one-pass detection on every field's validation strip).

Timings depend on the machine (and on what else runs on it); ratios within one run are what compares.
"""
from __future__ import annotations

import argparse
import importlib
import os
import time
from multiprocessing import Pool

import numpy as np

CHANNELS = ("corr", "pnr", "std", "mean", "median", "max", "pnr_filtered")
ZOOMS = (0.7, 0.85, 1.0, 1.15, 1.3)


def _field(i: int):
    from cellfie_caiman.train import simulated_field

    return simulated_field(i, seed=0, filter_diameter=12.0, rates=(0.005, 1.0))


def _whole_field_resize(masks: np.ndarray, shape) -> np.ndarray:
    from skimage.transform import resize

    return np.array([resize(m.astype(np.float32), shape, order=1, mode="constant", anti_aliasing=False) > 0.5
                     for m in masks], bool)


def time_updates(model, fields, weights, config, unet_batch: int, instance_batch: int, steps: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Milliseconds per update spent making the batches, in the U-Net update and in the instance-network update
    (Adam 1e-3, U-Net crops of 128 px), averaged over ``steps`` updates after 3 warm-up ones."""
    import keras

    from cellfie_caiman.training import sampling
    from cellfie_caiman.training import steps as training_steps

    unet_step, inst_step = training_steps._train_steps(model.unet, model.instance, keras.optimizers.Adam(1e-3),
                                                       keras.optimizers.Adam(1e-3))
    spent = np.zeros(3)
    for k in range(steps + 3):
        t0 = time.perf_counter()
        u = sampling._unet_batch(fields, weights, unet_batch, 128, rng)
        i = sampling._instance_batch(fields, weights, [], instance_batch, config, rng)
        t1 = time.perf_counter()
        unet_step(*u)
        t2 = time.perf_counter()
        inst_step(*i)
        t3 = time.perf_counter()
        if k >= 3:
            spent += (t1 - t0, t2 - t1, t3 - t2)
    return 1e3 * spent / steps


def main(n_fields: int, steps: int, workers: int) -> None:
    t = time.perf_counter()
    with Pool(min(n_fields, workers)) as pool:
        sims = pool.map(_field, range(n_fields), chunksize=1)
    print(f"{n_fields} simulated fields in {time.perf_counter() - t:.1f} s ({min(n_fields, workers)} processes)")

    import keras

    train = importlib.import_module("cellfie_caiman.train")
    from cellfie_caiman.models import ModelConfig, new_model
    from cellfie_caiman.training import sampling
    from cellfie_caiman.training.fields import _zoom_masks

    config = ModelConfig(channels=CHANNELS, train_diameter=11.78)
    t = time.perf_counter()
    fields = [train.prepare_field(s, m, config, zoom=z, name=f"simulated{i}") for i, (s, m) in enumerate(sims)
              for z in ZOOMS]
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}: {len(fields)} fields prepared in "
          f"{time.perf_counter() - t:.1f} s")

    t_new = t_old = 0.0
    for _, masks in sims:
        for z in ZOOMS:
            shape = (int(round(masks.shape[1] * z)), int(round(masks.shape[2] * z)))
            t = time.perf_counter()
            new = _zoom_masks(masks, shape)
            t_new += time.perf_counter() - t
            t = time.perf_counter()
            old = _whole_field_resize(masks, shape)
            t_old += time.perf_counter() - t
            if not np.array_equal(new, old):
                raise AssertionError("_zoom_masks differs from the whole-field resize")
    print(f"mask zooming: {t_new:.2f} s, whole-field resize (baseline) {t_old:.2f} s: {t_old / t_new:.1f}x faster, "
          "identical masks")

    model = new_model(config)
    weights = np.full(len(fields), 1 / len(fields))
    rng = np.random.default_rng(0)
    throughput = {}
    for unet_batch, instance_batch in ((6, 48), (24, 192)):
        ms = time_updates(model, fields, weights, config, unet_batch, instance_batch, steps, rng)
        throughput[unet_batch] = unet_batch / ms.sum()
        print(f"batches {unet_batch} / {instance_batch}: per update making {ms[0]:.1f} ms, U-Net {ms[1]:.1f} ms, "
              f"instance {ms[2]:.1f} ms (total {ms.sum():.0f} ms)")
    print(f"4x larger batches: {throughput[24] / throughput[6]:.2f}x the examples per second")
    t = time.perf_counter()
    hard, _ = sampling._hard_candidates(model, fields)
    t1 = time.perf_counter()
    train.validate(model, fields)
    print(f"hard candidates {t1 - t:.1f} s ({len(hard)} of an untrained model), validation "
          f"{time.perf_counter() - t1:.1f} s on {n_fields} strips")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fields", type=int, default=16, help="simulated training fields")
    parser.add_argument("--steps", type=int, default=30, help="timed updates per batch setting")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes that simulate the fields")
    args = parser.parse_args()
    main(args.fields, args.steps, args.workers)
