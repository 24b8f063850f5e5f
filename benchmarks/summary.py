"""Speed and memory of ``summary_images`` against one plain streaming read of the same CaImAn memmap.

Reproduce with::

    python benchmarks/summary.py                       # 512 x 512 x 3000 float32, as in the issue
    python benchmarks/summary.py --frames 600 --size 256   # quick run

It writes a CaImAn-style order-C memmap (``cellfie_caiman.io.save_memmap``) of a synthetic movie (noise, a
slow drift and blinking Gaussian cells) into a temporary folder (or uses ``--movie``), warms the page cache, then
times in this process (best of ``--repeat`` runs):

* ``raw read``: one streaming pass over the memmap's bytes (``Yr[a:b].sum()`` by pixel bands), the baseline;
* ``read``: one read of the whole movie as float32 frames through ``Movie.chunks()`` (io's frame reader);
* ``summary_images`` with ``batch_frames=None`` and ``batch_frames=250``, with and without the median image;
* ``filtered_pnr`` (the soma-filtered PNR image the shipped model also reads, one more pass over the movie);

and prints each wall time with its ratios to both reads, the CPU time (all threads) with its ratio to the raw
read's CPU time (robust when other jobs share the cores), and the peak anonymous resident memory of the process
(RssAnon sampled every 5 ms, what the process already held included; the memmap's file pages are page cache and
not counted). If a CaImAn virtualenv is found (``--caiman-python``, default: the ``CAIMAN_PYTHON`` environment
variable),
CaImAn's routines (``local_correlations_fft``, ``get_noise_fft``, NumPy std/mean/max/median) are timed on the same
file in that interpreter against its own read of the file, and that ratio is printed too. On a shared machine
only ratios measured in one process mean something.

Measured 2026-11-25 on the quiet 2-core development machine (figures and history in benchmarks/RESULTS.md),
512 x 512 x 3000: raw read 0.40 s wall; summary_images / raw read: 1.94 (batch_frames=None, no median), 3.15
(None, median), 2.14 (250, no median), 2.81 (250, median); peak RssAnon ~0.1 GB (file blocks are mapped, not
copied; maximum RSS 0.61 GB, 0.75 GB for 512 x 512 x 10000). Per value and core: FFT noise ~1.2 ns, moments +
neighbour products + max ~0.3-0.5 ns, median ~0.5 (sort, 250 frames) to ~1 ns (partition, 3000), raw read
~0.5 ns. CaImAn's routines on the same file, in its own process: 43-81 x its read. Movie.chunks() on an order-C
memmap took 6-80 s (io's frame reader of pixel-major files).
"""
from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cellfie_caiman.filtered import filtered_pnr
from cellfie_caiman.io import load_memmap, load_movie, save_memmap
from cellfie_caiman.summary import _Options, _summary_builtin, batch_bounds, summary_images


class PeakAnon:
    """Peak RssAnon (MB) of this process while the block runs, sampled by a thread."""

    def __enter__(self):
        self.peak = self.base = _rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_anon())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_anon())


def _rss_anon() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_movie(path: Path, frames: int, size: int, seed: int = 0) -> str:
    """Write a synthetic movie as .npy in chunks, then as a CaImAn order-C memmap; return the memmap name."""
    rng = np.random.default_rng(seed)
    npy = path / "movie.npy"
    out = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(frames, size, size))
    ii, jj = np.mgrid[:size, :size]
    centers = rng.uniform(0, size, (20, 2))
    blobs = np.exp(-((ii[None] - centers[:, 0, None, None]) ** 2 + (jj[None] - centers[:, 1, None, None]) ** 2)
                   / 18.0).astype(np.float32)
    for start in range(0, frames, 100):
        stop = min(frames, start + 100)
        block = rng.standard_normal((stop - start, size, size), dtype=np.float32)
        block *= 5
        block += 100 + 0.001 * np.arange(start, stop, dtype=np.float32)[:, None, None]
        spikes = (rng.random((stop - start, len(blobs))) < 0.02).astype(np.float32) * 30
        block += np.tensordot(spikes, blobs, axes=1)
        out[start:stop] = block
    out.flush()
    del out
    fname = save_memmap(str(npy), base_name="Yr", order="C", directory=path)
    npy.unlink()
    return fname


def timed(fn, repeat: int = 1):
    """Best wall time and best CPU time (all threads) of ``repeat`` runs, and the peak RssAnon (MB) seen."""
    best, best_cpu, peak = float("inf"), float("inf"), 0.0
    for _ in range(repeat):
        gc.collect()
        with PeakAnon() as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        peak = max(peak, mem.peak)
    return best, best_cpu, peak


def read_movie(fname: str) -> None:
    for _, block in load_movie(fname).chunks():
        block.sum(dtype=np.float64)


def read_raw(fname: str) -> None:
    yr, _, _ = load_memmap(fname)
    step = max(1, (256 * 2**20) // (4 * yr.shape[1]))
    for p in range(0, yr.shape[0], step):
        np.asarray(yr[p:p + step]).sum(dtype=np.float64)


CAIMAN_SCRIPT = r"""
import sys, time, numpy as np
import caiman
from caiman.summary_images import local_correlations_fft
from caiman.source_extraction.cnmf.pre_processing import get_noise_fft
fname, batch = sys.argv[1], sys.argv[2]
Yr, dims, T = caiman.load_memmap(fname)
def read():
    images = np.reshape(Yr.T, [T] + list(dims), order='F')
    for s in range(0, T, 256):
        np.asarray(images[s:s + 256], dtype=np.float32).sum(dtype=np.float64)
def summary(median):
    images = np.reshape(Yr.T, [T] + list(dims), order='F')
    n = T if batch == 'None' else int(batch)
    for s in range(0, T - n + 1, n):
        y = np.array(images[s:s + n], dtype=np.float32)
        local_correlations_fft(y.copy(), swap_dim=False)
        get_noise_fft(np.ascontiguousarray(np.moveaxis(y, 0, -1)), noise_method='mean')
        y.std(0); y.mean(0); y.max(0)
        if median:
            np.median(y, 0)
read()
t = time.perf_counter(); read(); t_read = time.perf_counter() - t
t = time.perf_counter(); summary(False); t_nomed = time.perf_counter() - t
t = time.perf_counter(); summary(True); t_med = time.perf_counter() - t
print(f"{t_read:.3f} {t_nomed:.3f} {t_med:.3f}")
"""


def time_caiman(python: str, fname: str, batch) -> tuple[float, float, float] | None:
    if not python or not Path(python).is_file():
        return None
    res = subprocess.run([python, "-c", CAIMAN_SCRIPT, fname, str(batch)], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"CaImAn timing failed: {res.stderr.strip().splitlines()[-1:]}")
        return None
    return tuple(float(v) for v in res.stdout.split()[-3:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--caiman-python", default=os.environ.get("CAIMAN_PYTHON", ""))
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (shared machines are noisy)")
    parser.add_argument("--no-caiman", action="store_true")
    parser.add_argument("--movie", help="use this existing CaImAn order-C memmap instead of writing one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        t0 = time.perf_counter()
        fname = args.movie or make_movie(Path(tmp), args.frames, args.size)
        print(f"movie {load_movie(fname).shape} float32 ({os.path.getsize(fname) / 2**30:.2f} GiB), "
              f"ready in {time.perf_counter() - t0:.1f} s: {fname}")
        summary_images(np.zeros((10, 8, 8), np.float32))  # numba compilation / cache load outside the timings
        read_raw(fname)  # warm the page cache
        t_raw, c_raw, _ = timed(lambda: read_raw(fname), args.repeat)
        t_read, _, m_read = timed(lambda: read_movie(fname))  # slow on order-C memmaps: once
        print(f"raw read: {t_raw:.3f} s wall, {c_raw:.3f} s CPU; read through Movie.chunks: {t_read:.3f} s "
              f"(peak RssAnon {m_read:.0f} MB)")
        print(f"{'summary_images':<40} {'wall s':>7} {'/raw':>6} {'/chunks':>8} {'CPU s':>7} {'/raw CPU':>9} "
              f"{'RssAnon MB':>11}")
        mov = load_movie(fname)
        shape = mov.shape
        for batch in (None, 250):
            bounds = batch_bounds(shape[0], batch)
            for median in (False, True):
                opts = _Options(max(1, 512 * 2**20 // (4 * shape[1] * shape[2])), median=median)
                if median:
                    run = lambda b=batch: summary_images(fname, batch_frames=b)  # noqa: E731
                else:
                    run = lambda o=opts, b=bounds: _summary_builtin(load_movie(fname), b, o, False)  # noqa: E731
                t, c, m = timed(run, args.repeat)
                label = f"batch_frames={batch}, {'with' if median else 'without'} median"
                print(f"{label:<40} {t:7.3f} {t / t_raw:6.2f} {t / t_read:8.2f} {c:7.3f} {c / c_raw:9.2f} {m:11.0f}")
        # the seventh image the shipped model reads: one more pass, every frame band-passed (FFT)
        t, c, m = timed(lambda: filtered_pnr(fname, 12.0, batch_frames=250), args.repeat)
        label = "filtered_pnr (12 px), batch_frames=250"
        print(f"{label:<40} {t:7.3f} {t / t_raw:6.2f} {t / t_read:8.2f} {c:7.3f} {c / c_raw:9.2f} {m:11.0f}")
        if not args.no_caiman:
            for batch in (None, 250):
                res = time_caiman(args.caiman_python, fname, batch)
                if res is None:
                    print("CaImAn not available: skipped its timing")
                    break
                r, nomed, med = res
                print(f"CaImAn routines, batch_frames={batch}: read {r:.3f} s, without median {nomed:.3f} s "
                      f"({nomed / r:.2f} x its read), with median {med:.3f} s ({med / r:.2f} x its read)")


if __name__ == "__main__":
    sys.exit(main())
