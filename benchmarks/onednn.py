"""TensorFlow's oneDNN kernels against its own (Eigen) ones: detection and training speed, and the masks found.

Reproduce with::

    python benchmarks/onednn.py              # 2 runs of each setting, interleaved
    python benchmarks/onednn.py --repeats 1  # quicker

``import cellfie_caiman`` sets ``TF_ENABLE_ONEDNN_OPTS=1`` unless it is set already (see the package docstring):
TensorFlow itself turns oneDNN on only on CPUs with AVX-512 VNNI or AMX. The variable is read once, when TensorFlow
is imported, so the two settings cannot share a process: each run is a fresh interpreter with
``TF_ENABLE_ONEDNN_OPTS`` set to 0 or 1, the runs of the two settings alternate, and the ratios compare the medians
of the same measurements. Each run measures

* networks only (``initialize`` given the summary images, test-time augmentation on) on a 512 x 512 field:
  neurofinder.01.01 when ``../shared/data`` is there, else a simulated 101-frame movie; median of 3 after a warm-up;
* milliseconds per training update of the U-Net and of the instance network at the default batches (6 crops of
  128 px, 48 windows) on 2 simulated fields, after 3 warm-up updates;

and the parent checks that both settings keep the same set of masks (their order can differ where two scores
tie to rounding). On an AVX-512 machine TensorFlow already uses oneDNN, and both settings of this script differ
only by the variable.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import subprocess
import sys

import numpy as np

# benchmarks/detection.py and training.py, beside this script
from detection import DATA, REAL, networks_only, speed_field
from training import time_updates


def _networks_only() -> dict:
    from cellfie_caiman.initialize import model_summary
    from cellfie_caiman.models import load_model

    load_model("default")
    seconds, res = networks_only(model_summary(speed_field()[0], batch_frames=250))
    digests = sorted(hashlib.sha1(np.packbits(m).tobytes()).hexdigest() for m in res.masks)
    return {"networks_s": seconds, "masks": len(res.masks),
            "digest": hashlib.sha1("".join(digests).encode()).hexdigest()}


def _training_updates(steps: int = 10) -> dict:
    import keras

    train = importlib.import_module("cellfie_caiman.train")  # the module: cellfie_caiman.train is the function
    from cellfie_caiman.models import ModelConfig, new_model

    config = ModelConfig(channels=("corr", "pnr", "std", "mean", "median", "max", "pnr_filtered"),
                         train_diameter=11.78)
    fields = []
    for i in range(2):
        summary, masks = train.simulated_field(i, seed=0, filter_diameter=12.0, rates=(0.005, 1.0))
        fields.append(train.prepare_field(summary, masks, config, name=f"simulated{i}"))
    keras.utils.set_random_seed(0)
    model = new_model(config)
    weights = np.full(len(fields), 1 / len(fields))
    _, unet_ms, inst_ms = time_updates(model, fields, weights, config, 6, 48, steps, np.random.default_rng(0))
    return {"unet_ms": float(unet_ms), "instance_ms": float(inst_ms)}


def child() -> None:
    import cellfie_caiman  # noqa: F401  (sets the default before TensorFlow loads)

    result = {"setting": os.environ["TF_ENABLE_ONEDNN_OPTS"], **_networks_only(), **_training_updates()}
    print("RESULT " + json.dumps(result), flush=True)


def run(setting: str) -> dict:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"run with TF_ENABLE_ONEDNN_OPTS={setting} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(repeats: int) -> None:
    label = REAL[0] if DATA.is_dir() else "simulated 101 x 512 x 512"
    runs = {"0": [], "1": []}
    for r in range(repeats):
        for setting in ("0", "1"):
            res = run(setting)
            runs[setting].append(res)
            print(f"run {r + 1}, TF_ENABLE_ONEDNN_OPTS={setting}: networks only {res['networks_s']:.2f} s "
                  f"({res['masks']} masks), updates U-Net {res['unet_ms']:.0f} ms, "
                  f"instance {res['instance_ms']:.0f} ms")
    med = {s: {k: float(np.median([r[k] for r in rs])) for k in ("networks_s", "unet_ms", "instance_ms")}
           for s, rs in runs.items()}
    same = {r["digest"] for rs in runs.values() for r in rs}
    print(f"\n{label}, {repeats} run(s) of each setting, medians (Eigen = TF_ENABLE_ONEDNN_OPTS=0, oneDNN = 1):")
    for key, name, unit in (("networks_s", "networks only, 512 x 512", "s"),
                            ("unet_ms", "U-Net training update", "ms"),
                            ("instance_ms", "instance-network training update", "ms")):
        a, b = med["0"][key], med["1"][key]
        print(f"  {name}: Eigen {a:.2f} {unit}, oneDNN {b:.2f} {unit}: oneDNN {a / b:.2f}x as fast")
    total = {s: med[s]["unet_ms"] + med[s]["instance_ms"] for s in med}
    print(f"  both updates: oneDNN {total['0'] / total['1']:.2f}x as fast")
    print(f"  same set of masks in every run: {len(same) == 1}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    child() if args.child else main(args.repeats)
