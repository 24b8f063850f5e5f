"""The shipped weights under another Keras backend or on another device: the same masks, and how fast.

Reproduce with::

    # here (TensorFlow on the CPU): summary images of the fields, the masks found and the networks-only time
    python benchmarks/backends.py --save reference.npz
    # elsewhere, e.g. on a GPU machine with PyTorch and Keras 3 but no TensorFlow or shared data (the package
    # installed, or PYTHONPATH=. in the repository)
    KERAS_BACKEND=torch python benchmarks/backends.py --load reference.npz
    # ... and with PyTorch's default TF32 convolutions too (what cellfie_caiman's IEEE float32 request changes)
    KERAS_BACKEND=torch python benchmarks/backends.py --load reference.npz --tf32

The fields are neurofinder.01.01 (512 x 512) and neurofinder.00.00-left (512 x 256) when ``../shared/data`` is
there, else a simulated 101-frame movie of 512 x 512. ``--load`` reads the summary images from the file (so the
data need not be there), runs ``initialize`` on them with the shipped weights under the current backend, and
compares with the saved run: how many masks are found, how many of the saved masks have an identical mask in the
new run (the order can differ where two scores are equal to rounding), the lowest IoU of a saved mask with its best
match, and the largest difference of the probability maps. Times are networks only
(``initialize`` given the summary images, test-time augmentation on), the median of 5 calls after a warm-up one.
"""
from __future__ import annotations

import argparse
import contextlib
import json

import numpy as np

# benchmarks/detection.py, beside this script
from detection import DATA, REAL, networks_only, real_files, speed_field


def _fields() -> list[tuple[str, object]]:
    if DATA.is_dir():
        return [(name, str(real_files(name)[0])) for name in REAL]
    return [speed_field()[::-1]]


def _backend() -> str:
    import keras

    name = keras.backend.backend()
    if name == "torch":
        import torch

        name += f" on {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else " on the CPU"
    return f"Keras {keras.__version__}, {name}"


def best_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each mask of ``a`` (n, rows, cols), its highest IoU with a mask of ``b`` (m, rows, cols); 0 if m = 0."""
    if len(b) == 0:
        return np.zeros(len(a))
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None] - inter
    return (inter / np.maximum(union, 1)).max(1)


def save(path: str) -> None:
    from cellfie_caiman.initialize import model_summary

    out: dict[str, np.ndarray] = {}
    names = []
    for name, movie in _fields():
        summary = model_summary(movie, batch_frames=250)
        seconds, res = networks_only(summary, repeat=5)
        for key, image in summary._asdict().items():
            if image is not None:
                out[f"{name}/summary/{key}"] = image
        out[f"{name}/masks"], out[f"{name}/prob"] = res.masks, res.prob_map
        out[f"{name}/seconds"] = np.float64(seconds)
        names.append(name)
        print(f"{name}: {len(res.masks)} masks, networks only {seconds:.2f} s")
    out["info"] = np.array(json.dumps({"fields": names, "backend": _backend()}))
    np.savez_compressed(path, **out)
    print(f"saved to {path} ({_backend()})")


@contextlib.contextmanager
def pytorch_tf32():
    """Within the block, inference under PyTorch runs with PyTorch's own precision settings (by default TF32
    convolutions on a GPU) instead of the IEEE float32 that ``cellfie_caiman`` asks for: what that request changes."""
    from cellfie_caiman.models import _precision

    ieee = _precision._precision_settings
    _precision._precision_settings = list  # no flag to set: PyTorch's settings stay as they are
    try:
        yield
    finally:
        _precision._precision_settings = ieee


def load(path: str, tf32: bool = False) -> None:
    from cellfie_caiman.summary import SummaryImages

    ref = np.load(path)
    info = json.loads(str(ref["info"]))
    print(f"reference: {info['backend']}; this run: {_backend()}")
    modes = [("", contextlib.nullcontext)] + ([(", TF32 convolutions", pytorch_tf32)] if tf32 else [])
    for name in info["fields"]:
        images = {key: ref[f"{name}/summary/{key}"] if f"{name}/summary/{key}" in ref.files else None
                  for key in SummaryImages._fields}
        for label, mode in modes:
            with mode():
                seconds, res = networks_only(SummaryImages(**images), repeat=5)
            saved = ref[f"{name}/masks"]
            iou = best_iou(saved, res.masks)
            print(f"{name}{label}: {len(res.masks)} masks (reference {len(saved)}); {int((iou == 1).sum())} of the "
                  f"reference masks found identical, lowest best IoU {iou.min() if len(iou) else float('nan'):.3f}; "
                  f"probability maps within {np.abs(ref[f'{name}/prob'] - res.prob_map).max():.1e}; networks only "
                  f"{seconds:.2f} s (reference {float(ref[f'{name}/seconds']):.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="NPZ", help="compute the fields' summary images and masks, save them")
    group.add_argument("--load", metavar="NPZ", help="rerun on the saved summary images and compare")
    parser.add_argument("--tf32", action="store_true",
                        help="with --load under PyTorch: also run with PyTorch's default TF32 convolutions on a GPU")
    args = parser.parse_args()
    save(args.save) if args.save else load(args.load, args.tf32)
