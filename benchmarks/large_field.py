"""Detection on fields larger than the 512 x 512 excerpts: the U-Net in tiles, and ``initialize`` end to end.

Reproduce with::

    python benchmarks/large_field.py                 # sides 1024, 1472, 2048; initialize on 1536 x 1536
    python benchmarks/large_field.py --quick         # 1024 only, no initialize, no cliff probe

The fields are the summary images of the speed field (neurofinder.01.01, or without ../shared/data a simulated
101-frame movie) repeated k x k times and cut to the side asked for, so their neurons look like the real ones.
Printed, with the median of 3 calls after a warm-up:

* one U-Net pass (one orientation) on one field: in one call against in tiles (``predict_maps_batch``'s default
  above ``TILE_ABOVE`` pixels), both in this process, with the largest difference of the two probability maps;
  for fields too large for one call only the tiled time, and (unless ``--quick``) whether one call finishes within
  ``--probe-timeout`` seconds in a child process (on 2 CPU cores with oneDNN one call on 1520 x 1520 pixels did
  not finish in 80 s, nor 1536 x 1536 in 5 minutes, 2026-11-27);
* the dense masks array made as ``initialize`` makes it (``_memory.zeros_on_demand``, a private memory map
  without huge pages) against ``np.zeros``, in this process: 1000 masks of 1024 x 1024, a 20 x 20 box written per
  mask, then the whole array read once; seconds and growth of resident memory (Linux);
* first, ``initialize`` on the 1536 x 1536 field (networks with test-time augmentation, masks and ``Ain``):
  seconds, neurons kept, peak resident memory of this process.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np

# benchmarks/detection.py, beside this script
from detection import speed_field


def big_summary(side: int):
    """The speed field's summary images tiled to ``side`` x ``side``."""
    from cellfie_caiman.initialize import model_summary

    s = model_summary(speed_field()[0], batch_frames=250)
    fields = ("corr", "pnr", "std", "mean", "median", "max", "pnr_filtered")
    reps = -(-side // s.mean.shape[0]), -(-side // s.mean.shape[1])
    return s._replace(**{f: np.tile(getattr(s, f), reps)[:side, :side] for f in fields})


def timed(call, repeat: int = 3) -> float:
    call()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


_PROBE = """
import sys, numpy as np, cellfie_caiman
from cellfie_caiman.models import load_model
side = int(sys.argv[1])
net = load_model("default")
net.predict_maps_batch(np.zeros((1, side, side, len(net.config.channels)), np.float32), tile_above=side * side)
"""


def one_call_finishes(side: int, timeout: float) -> float | None:
    """Seconds one whole-field U-Net call on ``side`` x ``side`` zeros takes in a child process (TensorFlow import
    and model build included), or None if it does not finish within ``timeout``."""
    t = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-c", _PROBE, str(side)], timeout=timeout, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - t


def unet_pass(side: int, whole_too: bool, probe_timeout: float | None) -> None:
    from cellfie_caiman.models import TILE_ABOVE, load_model, stack_inputs

    net = load_model("default")
    x = stack_inputs(big_summary(side), net.config)[None]
    tiled = timed(lambda: net.predict_maps_batch(x, tile_above=0))
    line = f"U-Net, one orientation, {side} x {side}: tiled {tiled:.2f} s"
    if whole_too:
        whole = timed(lambda: net.predict_maps_batch(x, tile_above=x.shape[1] * x.shape[2]))
        diff = np.abs(net.predict_maps_batch(x, tile_above=0)[0] - net.predict_maps_batch(
            x, tile_above=x.shape[1] * x.shape[2])[0]).max()
        line += f", one call {whole:.2f} s (ratio tiled/one call {tiled / whole:.2f}; maps differ by <= {diff:.1e})"
    default = "tiled" if side * side > TILE_ABOVE else "one call"
    print(line + f"; default here: {default}", flush=True)
    if probe_timeout is not None and not whole_too:
        took = one_call_finishes(side, probe_timeout)
        print("    one call in a child process: " + (f"{took:.1f} s" if took is not None
                                                     else f"did not finish in {probe_timeout:.0f} s"), flush=True)


def _rss() -> float:
    """Resident memory of this process now, GB (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1e6
    except (OSError, StopIteration):
        return float("nan")


def dense_outputs(n: int = 1000, side: int = 1024, repeat: int = 3) -> None:
    """Make and fill a (n, side, side) mask stack both ways, alternating; medians of ``repeat``."""
    from cellfie_caiman._memory import zeros_on_demand

    rng = np.random.default_rng(0)
    corners = rng.integers(0, side - 20, (n, 2))
    box = rng.random((20, 20)) < 0.6
    makers = {"zeros_on_demand": lambda shape: zeros_on_demand(shape, "masks"),
              "np.zeros": lambda shape: np.zeros(shape, bool)}
    results = {name: [] for name in makers}
    for _ in range(repeat):
        for name, make in makers.items():
            before = _rss()
            t = time.perf_counter()
            masks = make((n, side, side))
            for k, (r, c) in enumerate(corners):
                masks[k, r:r + 20, c:c + 20] = box
            fill = time.perf_counter() - t
            grown = _rss() - before
            t = time.perf_counter()
            total = int(masks.sum())
            read = time.perf_counter() - t
            assert total == n * int(box.sum())
            del masks
            results[name].append((fill, grown, read))
    a, b = (np.median(np.array(results[k]), axis=0) for k in makers)
    print(f"{n} masks of {side} x {side}, one 20 x 20 box each: zeros_on_demand {a[0]:.2f} s, +{a[1]:.2f} GB "
          f"resident, full read {a[2]:.2f} s; np.zeros {b[0]:.2f} s, +{b[1]:.2f} GB, full read {b[2]:.2f} s "
          f"(ratio of the times to make and fill np.zeros/zeros_on_demand {b[0] / a[0]:.0f})", flush=True)


def initialize_large(side: int) -> None:
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.models import load_model

    load_model("default")
    summary = big_summary(side)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    res = initialize(summary)
    took = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"initialize on {side} x {side}: {took:.1f} s, {len(res.masks)} neurons; peak resident memory "
          f"{peak / 1e6:.2f} GB ({(peak - before) / 1e6:.2f} GB more than before the call; masks and Ain "
          f"{2 * res.masks.nbytes / 1e9:.2f} GB)", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1024 x 1024 only; no initialize, no probe")
    parser.add_argument("--probe-timeout", type=float, default=120.0,
                        help="seconds a child process may take for one whole-field call above the tiling size")
    args = parser.parse_args(argv)
    if not args.quick:  # first, so that the peak resident memory is this call's
        initialize_large(1536)
    sides = [1024] if args.quick else [1024, 1472, 2048]
    for side in sides:
        unet_pass(side, whole_too=side <= 1472, probe_timeout=None if args.quick else args.probe_timeout)
    dense_outputs(n=200 if args.quick else 1000)


if __name__ == "__main__":
    main()
