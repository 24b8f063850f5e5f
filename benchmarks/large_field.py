"""Detection on fields larger than the 512 x 512 excerpts: the U-Net in tiles, and ``initialize`` end to end.

Reproduce with::

    python benchmarks/large_field.py                 # sides 1024, 1472, 2048; initialize on 1536 x 1536
    python benchmarks/large_field.py --quick         # 1024 only, no initialize, no cliff probe
    python benchmarks/large_field.py --whole-run [--baseline-checkout DIR]   # the whole run on a simulated movie
    python benchmarks/large_field.py --nwb [--baseline-checkout DIR]         # writing the NWB file of a large field

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

``--whole-run`` instead simulates a 1280 x 1280 movie of 300 frames with 1100 neurons (``simulate``, seed 3, 15 Hz),
writes it as a float32 TIFF (2 GB) with its true ROIs to a temporary folder, and runs ``cellfie-caiman run`` on it
(builtin CNMF, pictures and files included) in a child process: seconds per step, F1, and the child's peak resident
memory against the size of one dense (K, rows, cols) stack of its K detected masks. With ``--baseline-checkout DIR``
(a clone of this repository at another commit) the same run goes first through that code, in a child process of
its own, and the ratios of the two are printed.

``--nwb`` instead writes the NWB file (``Estimates.to_nwb``) of 1000 footprints (8 x 8 px each) and one background
image on a 1024 x 1024 field over 300 frames, in a child process: seconds, growth of the peak resident memory
during the call (Linux, VmHWM reset before it) and the file's size; with ``--baseline-checkout DIR`` also through
that code first, and the ratios.
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


_RUN = """
import json, logging, sys, threading, time
sys.path.insert(0, sys.argv[1]) if sys.argv[1] else None
import cellfie_caiman
from cellfie_caiman.pipeline import run
movie, gt, out, fr = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
samples = []

def sample():  # resident memory every 0.1 s, to find the step where it peaks
    while True:
        with open("/proc/self/status") as f:
            samples.append((time.perf_counter(), next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))))
        time.sleep(0.1)

class Starts(logging.Handler):  # the pipeline logs "<step> ..." as each step starts
    def emit(self, record):
        if record.getMessage().endswith(" ..."):
            starts.append((time.perf_counter(), record.getMessage()[:-4]))

starts = []
log = logging.getLogger("cellfie_caiman.pipeline")
log.setLevel(logging.INFO)
log.addHandler(Starts())
threading.Thread(target=sample, daemon=True).start()
res = run(movie, out, {"refine": {"backend": "builtin"}, "data": {"fr": fr}}, gt=gt, progress=False)
with open("/proc/self/status") as f:  # not ru_maxrss: after fork and exec that also counts the parent's memory
    peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
ends = [t for t, _ in starts[1:]] + [time.perf_counter()]  # a step lasts until the next one starts
step_peak = {name: max([r for t, r in samples if t0 <= t < t1] or [0]) for (t0, name), t1 in zip(starts, ends)}
print(json.dumps({"code": cellfie_caiman.__file__, "timings": res.timings, "detected": res.n_detected,
                  "accepted": res.n_accepted, "peak": peak, "step_peak": step_peak,
                  "f1": {k: v["caiman"].f1 for k, v in res.scores.items()}}))
"""


def whole_run(baseline: str | None, side: int = 1280, frames: int = 300, neurons: int = 1100) -> None:
    """``cellfie-caiman run`` on a simulated large field, in child processes (this code, and ``baseline``)."""
    import json
    import tempfile

    import tifffile

    from cellfie_caiman.rois import write_rois
    from cellfie_caiman.simulate import simulate

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        sim = simulate(frames, (side, side), neurons, seed=3, fs=15.0)
        tifffile.imwrite(f"{tmp}/movie.tif", sim.movie.astype(np.float32))
        write_rois(f"{tmp}/gt.json", sim.masks)
        fr = float(sim.fs)
        del sim
        print(f"simulated {frames} frames of {side} x {side} with {neurons} neurons in {time.perf_counter() - t:.0f} s "
              f"(movie {frames * side * side * 4 / 1e9:.1f} GB as float32 TIFF)", flush=True)
        results = {}
        for name, code in [("baseline", baseline), ("this code", "")] if baseline else [("this code", "")]:
            proc = subprocess.run([sys.executable, "-c", _RUN, code or "", f"{tmp}/movie.tif", f"{tmp}/gt.json",
                                   f"{tmp}/out_{len(results)}", str(fr)], capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"{name}: the run failed\n{proc.stderr[-3000:]}")
            r = results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            steps = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
            stack = r["detected"] * side * side / 1e9
            print(f"{name} ({r['code']}): {r['detected']} detected, {r['accepted']} accepted; F1 (CaImAn rule) "
                  + ", ".join(f"{k} {v:.3f}" for k, v in r["f1"].items())
                  + f"; seconds: {steps}; total {sum(r['timings'].values()):.1f}; peak resident memory "
                  f"{r['peak'] / 1e9:.2f} GB (one dense stack of the detected masks: {stack:.2f} GB); highest "
                  "sampled per step: " + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in r["step_peak"].items())
                  + " GB", flush=True)
    if baseline:
        a, b = results["baseline"], results["this code"]
        print(f"this code / baseline: peak memory {b['peak'] / a['peak']:.2f}, total time "
              f"{sum(b['timings'].values()) / sum(a['timings'].values()):.2f}; per step: "
              + ", ".join(f"{k} {b['timings'][k] / a['timings'][k]:.2f}" for k in b["timings"]
                          if a["timings"].get(k)), flush=True)


_NWB = """
import os, sys, time
sys.path.insert(0, sys.argv[1]) if sys.argv[1] else None
import numpy as np, scipy.sparse
import cellfie_caiman
from cellfie_caiman.cnmf import Estimates
from pynwb.ophys import PlaneSegmentation  # imports before the measurement
n, side, frames, path = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = np.random.default_rng(0)
corners = rng.integers(0, side - 8, (n, 2))
rr, cc = np.mgrid[:8, :8]
pixels = ((corners[:, :1, None] + rr) + side * (corners[:, 1:, None] + cc)).reshape(n, 64)  # Fortran order
A = scipy.sparse.csc_matrix((rng.random(64 * n), (pixels.ravel(), np.repeat(np.arange(n), 64))),
                            shape=(side * side, n))
traces = [rng.random((n, frames)) for _ in range(3)]
est = Estimates(A=A, C=traces[0], S=traces[1], YrA=traces[2], b=rng.random((side * side, 1)),
                f=rng.random((1, frames)), dims=(side, side), idx_components=np.arange(n))
def hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
before = hwm()
t = time.perf_counter()
est.to_nwb(path, fr=30.0)
took = time.perf_counter() - t
print(cellfie_caiman.__file__, took, hwm() - before, os.path.getsize(path))
"""


def nwb_write(baseline: str | None, n: int = 1000, side: int = 1024, frames: int = 300) -> None:
    """``Estimates.to_nwb`` of ``n`` small footprints on a ``side`` x ``side`` field, in child processes."""
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, code in [("baseline", baseline), ("this code", "")] if baseline else [("this code", "")]:
            proc = subprocess.run([sys.executable, "-c", _NWB, code or "", str(n), str(side), str(frames),
                                   f"{tmp}/{len(results)}.nwb"], capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"{name}: writing the NWB file failed\n{proc.stderr[-3000:]}")
            where, took, grown, size = proc.stdout.split()[-4:]
            results[name] = took, grown, size = float(took), int(grown), int(size)
            print(f"{name} ({where}): NWB file of {n} footprints on {side} x {side} ({frames} frames): {took:.1f} s, "
                  f"peak resident memory +{grown / 1e9:.2f} GB, file {size / 1e6:.1f} MB (the dense float32 image "
                  f"masks: {(n + 1) * side * side * 4 / 1e9:.2f} GB)", flush=True)
    if baseline:
        a, b = results["baseline"], results["this code"]
        print(f"this code / baseline: time {b[0] / a[0]:.2f}, peak memory growth {b[1] / max(a[1], 1):.3f}, file size "
              f"{b[2] / a[2]:.3f}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1024 x 1024 only; no initialize, no probe")
    parser.add_argument("--probe-timeout", type=float, default=120.0,
                        help="seconds a child process may take for one whole-field call above the tiling size")
    parser.add_argument("--whole-run", action="store_true",
                        help="only the whole run on a simulated 1280 x 1280 x 300 movie (see above)")
    parser.add_argument("--nwb", action="store_true",
                        help="only writing the NWB file of 1000 footprints on 1024 x 1024 (see above)")
    parser.add_argument("--baseline-checkout", metavar="DIR",
                        help="with --whole-run or --nwb: also run the code of this checkout, first, for ratios")
    args = parser.parse_args(argv)
    if args.whole_run:
        whole_run(args.baseline_checkout)
        return
    if args.nwb:
        nwb_write(args.baseline_checkout)
        return
    if not args.quick:  # first, so that the peak resident memory is this call's
        initialize_large(1536)
    sides = [1024] if args.quick else [1024, 1472, 2048]
    for side in sides:
        unet_pass(side, whole_too=side <= 1472, probe_timeout=None if args.quick else args.probe_timeout)
    dense_outputs(n=200 if args.quick else 1000)


if __name__ == "__main__":
    main()
