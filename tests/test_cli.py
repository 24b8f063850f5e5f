"""The cellfie-caiman command: errors as one line, output-folder safety, evaluate/summary/example end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cellfie_caiman.cli import main
from cellfie_caiman.params import Params


def _disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def _write_neurofinder(path, masks):
    """Neurofinder JSON written by hand (independent of rois.write_rois)."""
    regions = [{"id": i, "coordinates": np.argwhere(m).tolist()} for i, m in enumerate(masks)]
    path.write_text(json.dumps(regions))


@pytest.fixture
def small_movie(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "movie.npy"
    np.save(path, rng.random((20, 16, 16), dtype=np.float32))
    return path


# ---------------------------------------------------------------------------------------------------- bad input

def _one_line_error(capsys, *names):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cellfie-caiman: error: ")
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0]
    return lines[0]


def test_missing_movie(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "nope.tif")
    assert not (tmp_path / "out").exists()


def test_unknown_format(tmp_path, capsys):
    bad = tmp_path / "movie.xyz"
    bad.write_bytes(b"\0" * 100)
    assert main(["detect", str(bad), "-o", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys, "movie.xyz")
    assert "format" in line


def test_bad_parameter_file(tmp_path, small_movie, capsys):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"detection": {"min_scor": 0.3}}))
    assert main(["run", str(small_movie), "-o", str(tmp_path / "out"), "--params", str(p)]) == 2
    _one_line_error(capsys, "min_scor")


def test_debug_reraises(tmp_path):
    from cellfie_caiman.io import MovieError

    with pytest.raises(MovieError):
        main(["run", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "out"), "--debug"])


@pytest.mark.parametrize("module", ["cellfie_caiman.cli", "cellfie_caiman"])
def test_console_script_has_no_traceback(tmp_path, module):
    proc = subprocess.run([sys.executable, "-m", module, "summary", str(tmp_path / "missing.tif"),
                           "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("cellfie-caiman: error:"), proc.stderr
    assert "missing.tif" in proc.stderr


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "detect", "summary", "evaluate", "train", "example"):
        assert f"cellfie-caiman {command}" in out or command in out
    assert "cellfie-caiman example -o example_out" in out


def test_refuses_non_empty_output(tmp_path, small_movie, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.hdf5").write_bytes(b"precious")
    assert main(["run", str(small_movie), "-o", str(out)]) == 2
    _one_line_error(capsys, "--overwrite", str(out))
    assert (out / "results.hdf5").read_bytes() == b"precious"
    assert [p.name for p in out.iterdir()] == ["results.hdf5"]


def test_paths_that_cannot_be_written_are_one_line_errors_that_leave_no_folder(tmp_path, small_movie, capsys):
    """An output folder under a file, a parameter file that is a folder, a weights file whose folder is a file (said
    before training, not after it), bad summary settings: a one-line error, exit 2, and no folder made."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["run", str(small_movie), "-o", str(a_file / "out")]) == 2
    _one_line_error(capsys, str(a_file), "is a file")
    assert main(["run", str(small_movie), "-o", str(tmp_path / "o1"), "--params", str(tmp_path)]) == 2
    _one_line_error(capsys, str(tmp_path))
    assert main(["train", "-o", str(a_file / "w.npz"), "--data", str(small_movie), str(small_movie)]) == 2
    _one_line_error(capsys, "w.npz", "not a folder")
    for bad in (["--batch-frames", "-5"], ["--filter-diameter", "0"]):
        assert main(["summary", str(small_movie), "-o", str(tmp_path / "s"), *bad]) == 2
        _one_line_error(capsys, bad[0][2:].replace("-", "_") if "filter" in bad[0] else bad[0])
    assert main(["example", "-o", str(tmp_path / "x"), "--frames", "0"]) == 2
    _one_line_error(capsys, "frames")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "movie.npy"]


def _python(code, timeout=120):
    """Run ``code`` in a fresh interpreter (TensorFlow not imported yet, logging and warnings not set up)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": ""})


@pytest.mark.parametrize("command", ["run", "detect", "summary", "example", "train"])
def test_a_non_empty_output_is_refused_at_once_in_one_line(tmp_path, small_movie, command):
    """Before TensorFlow is imported (seconds) and before any warning about the movie (no frame rate here): only
    the error, in the command line's words (--overwrite, not the API's overwrite=True)."""
    out = tmp_path / ("w.npz" if command == "train" else "out")
    if command == "train":
        out.write_bytes(b"earlier weights")
    else:
        out.mkdir()
        (out / "rois.json").write_text("[]")
    argv = {"train": ["train", "-o", str(out), "--data", str(small_movie), str(small_movie)],
            "example": ["example", "-o", str(out)]}.get(command, [command, str(small_movie), "-o", str(out)])
    proc = _python("import sys\nfrom cellfie_caiman.cli import main\n"
                   f"rc = main({argv!r})\nprint('tensorflow' in sys.modules)\nsys.exit(rc)")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == "False"  # TensorFlow was never imported
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cellfie-caiman: error: " + str(out)), proc.stderr
    assert "--overwrite" in lines[0] and "overwrite=True" not in lines[0]
    assert (out / "rois.json").read_text() == "[]" if command != "train" else out.read_bytes() == b"earlier weights"


def test_warnings_and_log_messages_say_whose_they_are(tmp_path):
    """Ours read 'cellfie-caiman: warning: ...' (Python warnings and log records alike); a library's
    FutureWarning/DeprecationWarning (SciPy's about CaImAn's call of toeplitz) is not shown without -v, and with
    -v, like the library's other warnings, it names the library instead of passing for ours."""
    code = """
import logging, sys, warnings
import scipy.linalg
import cellfie_caiman.pipeline as ours
from cellfie_caiman.cli import _setup_logging
_setup_logging(int(sys.argv[1]))
warnings.simplefilter("always")
warnings.warn_explicit("our warning", UserWarning, ours.__file__, 1)
warnings.warn_explicit("their future", FutureWarning, scipy.linalg.__file__, 1)
warnings.warn_explicit("their deprecation", DeprecationWarning, scipy.linalg.__file__, 1)
warnings.warn_explicit("their note", UserWarning, scipy.linalg.__file__, 1)
logging.getLogger("cellfie_caiman.cnmf.seeded").warning("our %s", "log warning")
"""
    script = tmp_path / "w.py"
    script.write_text(code)
    quiet, verbose = (subprocess.run([sys.executable, str(script), v], capture_output=True, text=True, timeout=120)
                      for v in ("0", "1"))
    for proc in (quiet, verbose):
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert "cellfie-caiman: warning: our warning" in lines
        assert "cellfie-caiman: warning: our log warning" in lines
        theirs = [line for line in lines if "their" in line]
        assert all("scipy" in line and not line.startswith("cellfie-caiman: warning: their") for line in theirs)
        assert any("their note" in line for line in theirs)
    assert "their future" not in quiet.stderr and "their deprecation" not in quiet.stderr
    assert "their future" in verbose.stderr and "their deprecation" in verbose.stderr


def test_evaluate_help_says_the_shape_is_inferred(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    shape = text[text.index("--shape ROWS COLS"):]
    assert "needed when neither file records it" not in shape  # two neurofinder files need none: known_overlap
    assert "optional" in shape and "extent of the ROIs" in shape


# ----------------------------------------------------------------------------------------------------- evaluate

def test_evaluate_known_overlap(tmp_path, capsys):
    shape = (64, 64)
    gt = [_disk(shape, c, 4) for c in [(10, 10), (30, 30), (50, 50)]]
    pred = [
        _disk(shape, (10, 10), 4),  # identical: IoU 1
        _disk(shape, (30, 31), 4),  # shifted by one pixel: IoU about 0.8
        _disk(shape, (50, 20), 4),  # nothing there
        _disk(shape, (10, 50), 3),  # nothing there
    ]
    _write_neurofinder(tmp_path / "gt.json", gt)
    _write_neurofinder(tmp_path / "pred.json", pred)
    # with the frame shape, and without it (neurofinder JSON does not record it; scores do not depend on it)
    for shape in (["--shape", "64", "64"], []):
        assert main(["evaluate", str(tmp_path / "pred.json"), str(tmp_path / "gt.json"), *shape]) == 0
        out = capsys.readouterr().out.splitlines()
        rows = {line.split()[0]: line.split()[1:] for line in out[1:]}
        assert set(rows) == {"caiman", "iou"}
        for rule in rows:
            tp, fp, fn = (int(v) for v in rows[rule][:3])
            assert (tp, fp, fn) == (2, 2, 1)
            assert float(rows[rule][5]) == pytest.approx(2 * 2 / (2 * 2 + 2 + 1), abs=1e-3)


def test_train_refuses_bad_arguments(tmp_path, capsys):
    assert main(["train", "-o", str(tmp_path / "w.h5")]) == 2
    _one_line_error(capsys, "w.h5", ".npz")
    assert main(["train", "-o", str(tmp_path / "w.npz"), "--data", str(tmp_path / "m.tif"), "r.json"]) == 2
    _one_line_error(capsys, "m.tif")
    assert main(["train", "-o", str(tmp_path / "w.npz"), "--data", "m.tif", "r.json", "0:8,:", "extra"]) == 2
    _one_line_error(capsys, "MOVIE ROIS [REGION]")
    for name in ("m.tif", "r.json", "b.tif"):
        (tmp_path / name).touch()
    a, b, c = (str(tmp_path / name) for name in ("m.tif", "r.json", "b.tif"))
    assert main(["train", "-o", str(tmp_path / "w.npz"), "--data", a, b, c]) == 2  # a second movie, not a region
    _one_line_error(capsys, "b.tif is a file, not a region", "repeat --data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tif", "m.tif", "r.json"]


def test_fine_tuning_on_large_neurons_says_which_diameter_to_detect_with(tmp_path, capsys):
    """Fine-tuned at the model's scale (the default for neurons far from its size), the weights see those neurons
    at its size: the command names the movie and the --diameter to detect with."""
    import tifffile

    from cellfie_caiman.masks import mask_diameter
    from cellfie_caiman.rois import write_rois
    from cellfie_caiman.simulate import simulate

    sim = simulate(120, (96, 96), 8, seed=5, fs=15.0, diameter=20.0)
    tifffile.imwrite(tmp_path / "big.tif", sim.movie.astype(np.float32))
    write_rois(tmp_path / "big.json", sim.masks)
    argv = ["train", "-o", str(tmp_path / "w.npz"), "--init-model", "default", "--simulated", "0", "--data",
            str(tmp_path / "big.tif"), str(tmp_path / "big.json"), "--epochs", "1", "--steps-per-epoch", "2",
            "--no-progress", "--no-check-annotations"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    size = f"{round(mask_diameter(sim.masks), 2):g}"
    assert f"big.tif: its neurons of {size} px were zoomed" in out and f"--diameter {size}" in out
    assert main([*argv, "--own-scale", "--overwrite"]) == 0
    assert "zoomed" not in capsys.readouterr().out


@pytest.mark.slow
def test_train_writes_loadable_weights(tmp_path, capsys):
    """The weights load, and record the command as a shell reads it back (the path with a space is one argument)."""
    import shlex

    from cellfie_caiman.models import load_model

    (tmp_path / "my models").mkdir()
    weights = tmp_path / "my models" / "w.npz"
    argv = ["train", "-o", str(weights), "--simulated", "1", "--simulated-shape", "64", "64", "--epochs",
            "1", "--steps-per-epoch", "2", "--seed", "3", "--no-progress", "--learning-rate", "5e-4",
            "--scale-to-model"]
    assert main(argv) == 0
    assert "best validation F1" in capsys.readouterr().out
    model = load_model(weights)
    assert shlex.split(model.config.training["command"]) == ["cellfie-caiman", *argv]
    assert model.config.training["learning_rate"] == 5e-4
    assert model.config.training["scale_to_model"] is True
    assert main(argv) == 2  # the weights file exists now
    _one_line_error(capsys, "w.npz", "--overwrite")


@pytest.mark.slow
def test_train_var_name_picks_the_annotated_movie(tmp_path, capsys):
    """--var-name applies to every --data movie: without it an HDF5 file with two movies is refused, naming the
    option; with it the dataset named is trained on (the other one has frames of another size, which the ROIs
    would not fit)."""
    import h5py

    from cellfie_caiman.models import load_model
    from cellfie_caiman.rois import write_rois
    from cellfie_caiman.simulate import simulate

    sim = simulate(60, (64, 64), 6, seed=5)
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["raw"] = np.zeros((60, 32, 32), np.float32)
        f["registered"] = sim.movie
    write_rois(tmp_path / "rois.json", sim.masks)
    argv = ["train", "-o", str(tmp_path / "w.npz"), "--data", str(tmp_path / "two.h5"), str(tmp_path / "rois.json"),
            "--simulated", "0", "--epochs", "1", "--steps-per-epoch", "1", "--no-progress"]
    assert main(argv) == 2
    _one_line_error(capsys, "raw (60, 32, 32), registered (60, 64, 64)", "--var-name")
    assert main([*argv, "--var-name", "raw"]) == 2  # the other movie: the ROIs do not fit its 32 x 32 frames
    _one_line_error(capsys, "outside")
    assert main([*argv, "--var-name", "registered"]) == 0
    training = load_model(tmp_path / "w.npz").config.training
    assert training["command"].endswith("--var-name registered")
    assert [c["dataset"] for c in training["annotation_check"]] == ["dataset0"]  # the ROIs were checked
    assert main([*argv, "-o", str(tmp_path / "unchecked.npz"), "--var-name", "registered",
                 "--no-check-annotations"]) == 0
    assert load_model(tmp_path / "unchecked.npz").config.training["annotation_check"] is None


def test_evaluate_missing_file(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    _one_line_error(capsys, "a.json")


# ------------------------------------------------------------------------------------------------------ summary

def test_summary_writes_tiffs_equal_to_summary_images(tmp_path, capsys):
    import tifffile

    from cellfie_caiman import summary

    rng = np.random.default_rng(3)
    movie = rng.random((60, 24, 32), dtype=np.float32)
    movie[:, 5:9, 5:9] += rng.random((60, 1, 1), dtype=np.float32) * 3
    np.save(tmp_path / "m.npy", movie)
    out = tmp_path / "s"
    assert main(["summary", str(tmp_path / "m.npy"), "-o", str(out), "--batch-frames", "25", "--no-progress",
                 "--filter-diameter", "6"]) == 0
    expected = summary.summary_images(movie, batch_frames=25, filter_diameter=6.0)
    assert expected.pnr_filtered is not None
    for name, image in zip(expected._fields, expected, strict=True):
        got = tifffile.imread(out / f"{name}.tif")
        assert got.dtype == np.float32 and got.shape == (24, 32)
        np.testing.assert_array_equal(got, np.asarray(image, dtype=np.float32))
        with Image.open(out / f"{name}.png") as im:
            im.verify()
    # by default the whole movie's statistics: mean.tif is the movie's mean
    assert main(["summary", str(tmp_path / "m.npy"), "-o", str(tmp_path / "w"), "--no-progress", "--no-png"]) == 0
    np.testing.assert_allclose(tifffile.imread(tmp_path / "w" / "mean.tif"), movie.mean(0), rtol=1e-6)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "w" / "median.tif"), np.median(movie, 0), rtol=1e-6)


def test_var_name_picks_the_movie_of_an_hdf5_file_with_several(tmp_path, capsys):
    """Without --var-name a file with two 3-D datasets is refused, naming them and the option; with it, the summary
    images and the detection read the dataset named (the other one is constant: it would give flat images)."""
    import h5py
    import tifffile

    from cellfie_caiman import summary

    movie = np.random.default_rng(4).random((60, 24, 32), dtype=np.float32)
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["raw"] = np.zeros_like(movie)
        f["registered"] = movie
    assert main(["summary", str(tmp_path / "two.h5"), "-o", str(tmp_path / "s"), "--no-progress"]) == 2
    _one_line_error(capsys, "raw (60, 24, 32), registered (60, 24, 32)", "--var-name")
    assert main(["summary", str(tmp_path / "two.h5"), "--var-name", "registered", "-o", str(tmp_path / "s"),
                 "--no-progress", "--no-png"]) == 0
    expected = summary.summary_images(movie, batch_frames=250)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s" / "std.tif"), expected.std.astype(np.float32))
    assert main(["detect", str(tmp_path / "two.h5"), "--var-name", "registered", "-o", str(tmp_path / "d"),
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "d" / "params.json").read_text())["data"]["var_name"] == "registered"


# ------------------------------------------------------------------------------------------------------ example

EVERY_FILE = ["results.hdf5", "rois.json", "masks.npz", "traces.csv", "params.json", "provenance.json", "results.nwb",
              "contours.png", "probability.png", "traces.png", "segmentation.gif"]


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):

    out = tmp_path_factory.mktemp("example") / "out"
    rc = main(["example", "-o", str(out), "--frames", "200", "--size", "64", "64", "--neurons", "8", "--seed", "1",
               "--backend", "builtin", "--nwb", "--no-progress"])
    return rc, out


def test_example_writes_every_output(example_run):
    rc, out = example_run
    assert rc == 0
    for name in EVERY_FILE:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "data" / "true_rois.json").is_file()
    assert len(list((out / "data").glob("example_d1_64_d2_64_d3_1_order_C_frames_200.mmap"))) == 1
    leftovers = [p.name for p in out.iterdir() if ".part" in p.name]
    assert not leftovers
    for name in ("contours.png", "probability.png", "traces.png"):
        with Image.open(out / name) as im:
            im.verify()
            assert im.format == "PNG"
    with Image.open(out / "segmentation.gif") as im:
        assert im.format == "GIF" and im.n_frames > 10


def test_example_outputs_agree(example_run):
    rc, out = example_run
    assert rc == 0
    from cellfie_caiman.cnmf import load_estimates
    from cellfie_caiman.rois import read_rois

    npz = np.load(out / "masks.npz")
    masks = npz["masks"]
    assert masks.dtype == bool and masks.shape[1:] == (64, 64)
    np.testing.assert_array_equal(read_rois(out / "rois.json", (64, 64)), masks)
    est = load_estimates(out / "results.hdf5")
    assert est.A.shape[1] == len(npz["all_masks"]) == len(npz["accepted"])
    np.testing.assert_array_equal(np.flatnonzero(npz["accepted"]), npz["component"])
    table = np.loadtxt(out / "traces.csv", delimiter=",", skiprows=1, ndmin=2)
    header = (out / "traces.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["frame", "time_s"] and len(header) == 2 + len(masks)
    assert table.shape == (200, 2 + len(masks))
    np.testing.assert_allclose(table[:, 1], np.arange(200) / 30.0, atol=1e-6)
    np.testing.assert_allclose(table[:, 2:].T, np.asarray(est.C)[npz["component"]], rtol=1e-6, atol=1e-6)


def test_example_provenance_names_the_weights_the_software_and_the_movie(example_run):
    import datetime
    import hashlib
    from pathlib import Path

    import cellfie_caiman
    from cellfie_caiman.models import model_file

    rc, out = example_run
    assert rc == 0
    record = json.loads((out / "provenance.json").read_text())
    assert record["cellfie_caiman"] == cellfie_caiman.__version__
    weights = model_file("default")
    assert record["model"]["name"] == "default" and record["model"]["file"] == str(weights)
    assert record["model"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert record["software"]["numpy"] == np.__version__ and record["backend"] == "builtin"
    movie = Path(record["movie"]["path"])
    assert record["movie"]["shape"] == [200, 64, 64] and movie.parent == out / "data"
    assert record["movie"]["size_bytes"] == movie.stat().st_size
    age = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(record["created"])
    assert datetime.timedelta(0) <= age < datetime.timedelta(hours=1)
    from cellfie_caiman.cnmf import load_estimates

    assert load_estimates(out / "results.hdf5").provenance == record  # the results file carries it too


def test_example_params_round_trip(example_run):
    rc, out = example_run
    assert rc == 0
    p = Params.load(out / "params.json")
    assert p.data.fr == 30.0 and p.data.neuron_diameter == 12.0
    assert p.refine.backend == "builtin" and p.output.nwb is True
    p.save(out / "again.json")
    assert Params.load(out / "again.json") == p
    assert json.loads((out / "again.json").read_text()) == json.loads((out / "params.json").read_text())
    (out / "again.json").unlink()


def test_overwrite_refused_then_accepted(example_run, capsys):
    rc, out = example_run
    assert rc == 0
    movie = next((out / "data").glob("*.mmap"))
    before = (out / "rois.json").read_bytes()
    capsys.readouterr()
    assert main(["detect", str(movie), "-o", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, "--overwrite")
    assert (out / "rois.json").read_bytes() == before
    # accepted: a detection-only run replaces the ROIs and removes the results it does not make
    assert main(["detect", str(movie), "-o", str(out), "--overwrite", "--diameter", "12", "--fr", "30",
                 "--no-tta", "--no-progress"]) == 0
    assert (out / "rois.json").is_file() and (out / "contours.png").is_file()
    assert not (out / "results.hdf5").exists() and not (out / "traces.csv").exists()
    written = Params.load(out / "params.json")
    assert written.refine.backend == "none" and written.detection.tta is False
    assert main(["detect", str(movie), "-o", str(out), "--overwrite", "--no-tta", "--tta", "4", "--no-progress"]) == 2
    _one_line_error(capsys, "contradict")
    assert main(["detect", str(movie), "-o", str(out), "--overwrite", "--tta", "4", "--no-progress"]) == 0
    assert Params.load(out / "params.json").detection.tta == 4
    summary = capsys.readouterr().out
    assert "detected" in summary and "refinement skipped" in summary


def test_the_summary_is_on_stdout_with_the_log_on(example_run, tmp_path, capsys):
    import logging

    rc, out = example_run
    assert rc == 0
    movie = next((out / "data").glob("*.mmap"))
    ours = logging.getLogger("cellfie_caiman")
    level = ours.level
    try:
        assert main(["detect", str(movie), "-o", str(tmp_path / "v"), "-v", "--diameter", "12", "--fr", "30",
                     "--no-tta", "--no-progress"]) == 0
    finally:
        ours.setLevel(level)
    printed = capsys.readouterr().out
    assert "neurons:" in printed and f"results in {tmp_path / 'v'}" in printed


def test_ctrl_c_during_pictures_leaves_the_earlier_run_as_it_was(example_run, tmp_path, monkeypatch, capsys):
    """No partial file, and no mix of the earlier run's files and the interrupted one's: rois.json, masks.npz and
    the GIF all stay the earlier run's."""
    rc, out = example_run
    assert rc == 0
    from cellfie_caiman import report

    movie = next((out / "data").glob("*.mmap"))
    target = tmp_path / "o"
    target.mkdir()
    earlier = {"segmentation.gif": b"previous gif", "rois.json": b"[]", "masks.npz": b"previous masks",
               "notes.txt": b"the user's own file"}
    for name, content in earlier.items():
        (target / name).write_bytes(content)

    def interrupted(movie, masks, path, **kwargs):
        from cellfie_caiman import _files

        with _files.atomic_path(path) as tmp:
            tmp.write_bytes(b"GIF89a half")  # part of the picture is written...
            raise KeyboardInterrupt  # ...when the user presses Ctrl-C

    monkeypatch.setattr(report, "save_gif", interrupted)
    assert main(["detect", str(movie), "-o", str(target), "--overwrite", "--diameter", "12", "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in target.iterdir()} == earlier  # nothing else, hidden folders included
    # the same run uninterrupted replaces the set: every output new, stale ones gone, the user's file kept
    monkeypatch.undo()
    assert main(["detect", str(movie), "-o", str(target), "--overwrite", "--diameter", "12", "--no-progress"]) == 0
    from cellfie_caiman.rois import read_rois

    masks = np.load(target / "masks.npz")["masks"]
    np.testing.assert_array_equal(read_rois(target / "rois.json", (64, 64)), masks)
    assert (target / "segmentation.gif").read_bytes()[:6] == b"GIF89a" and (target / "notes.txt").exists()
    assert not [p.name for p in target.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_train_interrupted_saves_the_best_finished_epoch_and_exits_130(tmp_path, capsys, interrupt_training_at):
    from cellfie_caiman.models import load_model

    interrupt_training_at(4)  # second update of the second epoch
    argv = ["train", "-o", str(tmp_path / "w.npz"), "--simulated", "1", "--simulated-shape", "64", "64", "--epochs",
            "3", "--steps-per-epoch", "2", "--seed", "3", "--no-progress"]
    with pytest.warns(RuntimeWarning, match="interrupted during epoch 1"):
        assert main(argv) == 130
    out, err = capsys.readouterr()
    assert "best validation F1" in out and "interrupted after 1 whole epoch;" in err
    assert load_model(tmp_path / "w.npz").config.training["interrupted"] is True


@pytest.mark.slow
def test_a_detect_run_prints_no_tensorflow_start_up_notice(tmp_path):
    """TensorFlow 2.17+ writes absl/oneDNN notices on import whatever TF_CPP_MIN_LOG_LEVEL says; the commands that
    run the networks drop them (and only them: progress bars and our own lines still reach stderr)."""
    from cellfie_caiman.simulate import simulate

    np.save(tmp_path / "movie.npy", simulate(100, (64, 64), 6, seed=2).movie)
    proc = subprocess.run([sys.executable, "-m", "cellfie_caiman", "detect", str(tmp_path / "movie.npy"), "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert proc.returncode == 0, proc.stderr
    for notice in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "port.cc"):
        assert notice not in proc.stderr, proc.stderr
    assert "networks" in proc.stderr  # the progress bar over the networks' passes
    assert (tmp_path / "out" / "rois.json").is_file()


def test_example_takes_the_backend_of_its_params_file_unless_told(tmp_path):
    """--backend had a default, so it overrode the params file's refine.backend even when not given."""
    import json

    (tmp_path / "p.json").write_text(json.dumps({"refine": {"backend": "none"}}))
    argv = ["example", "--frames", "100", "--size", "64", "64", "--neurons", "6", "--no-progress",
            "--params", str(tmp_path / "p.json")]
    assert main([*argv, "-o", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "params.json").read_text())["refine"]["backend"] == "none"


# ---------------------------------------------------------------------------------------------------- --no-nwb

@pytest.mark.parametrize("in_file, flags, expected", [
    (True, [], True), (True, ["--no-nwb"], False), (False, ["--nwb"], True), (False, [], False),
    (None, [], False), (None, ["--nwb"], True)])
def test_nwb_flags_override_the_parameter_file_both_ways(tmp_path, in_file, flags, expected):
    from cellfie_caiman.cli import _params_from_args, build_parser

    argv = ["run", "movie.tif", "-o", str(tmp_path / "out")]
    if in_file is not None:
        (tmp_path / "p.json").write_text(json.dumps({"output": {"nwb": in_file}}))
        argv += ["--params", str(tmp_path / "p.json")]
    args = build_parser().parse_args(argv + flags)
    assert _params_from_args(args).output.nwb is expected


@pytest.mark.parametrize(("flags", "expected"), [([], None), (["--scale-to-model"], True), (["--own-scale"], False)])
def test_train_scale_flags_pass_automatic_true_or_false(flags, expected):
    """No flag: train's automatic choice (the model's scale for neurons far from its size when fine-tuning); the
    two flags force either way, and not both at once."""
    from cellfie_caiman.cli import build_parser

    args = build_parser().parse_args(["train", "-o", "w.npz", "--init-model", "default", *flags])
    assert args.scale_to_model is expected
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "-o", "w.npz", "--scale-to-model", "--own-scale"])


def test_help_names_no_nwb_and_the_nwb_settings(capsys):
    from cellfie_caiman.cli import build_parser

    for command in ("run", "example"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--nwb, --no-nwb" in text and "nwb group" in text, text


def test_example_no_nwb_writes_no_nwb_file_where_its_params_file_asks_for_one(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"output": {"nwb": True, "pictures": False},
                                                 "refine": {"backend": "builtin"}}))
    assert main(["example", "--frames", "100", "--size", "64", "64", "--neurons", "6", "--no-progress",
                 "--params", str(tmp_path / "p.json"), "--no-nwb", "-o", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "results.hdf5").is_file() and not (tmp_path / "a" / "results.nwb").exists()
    assert json.loads((tmp_path / "a" / "params.json").read_text())["output"]["nwb"] is False


def test_ctrl_c_before_the_first_epoch_says_no_weights_file_was_written(tmp_path, capsys, monkeypatch):
    """train writes one weights file, not an output folder: the message names it, and an existing one is kept."""
    import tifffile

    import cellfie_caiman.training.fit  # noqa: F401  (the epoch loop: it draws the batches)
    from cellfie_caiman.simulate import simulate

    sim = simulate(120, (64, 64), 12, seed=3, fs=15.0, diameter=8.0)
    tifffile.imwrite(tmp_path / "movie.tif", sim.movie.astype(np.float32))
    _write_neurofinder(tmp_path / "rois.json", sim.masks)
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"earlier weights")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt  # the user presses Ctrl-C as the first update starts

    monkeypatch.setattr(sys.modules["cellfie_caiman.training.fit"], "_unet_batch", ctrl_c)
    argv = ["train", "-o", str(weights), "--overwrite", "--data", str(tmp_path / "movie.tif"),
            str(tmp_path / "rois.json"), "--simulated", "0", "--val-fraction", "0.5", "--no-check-annotations",
            "--epochs", "1", "--steps-per-epoch", "1", "--no-progress"]
    with pytest.warns(UserWarning, match=r"few annotated neurons: .* \(the bottom 50% of each field's rows\)"):
        assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"cellfie-caiman: interrupted (before the first epoch was scored: no weights were saved, {weights} " \
                  "was not touched)"
    assert weights.read_bytes() == b"earlier weights"


def test_ctrl_c_during_evaluate_does_not_speak_of_an_output_folder(tmp_path, capsys, monkeypatch):
    from cellfie_caiman import pipeline
    from cellfie_caiman.rois import write_rois

    masks = np.zeros((1, 16, 16), dtype=bool)
    masks[0, 4:9, 4:9] = True
    write_rois(tmp_path / "a.json", masks)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the user presses Ctrl-C while the ROIs are read and matched

    monkeypatch.setattr(pipeline, "evaluate_files", interrupted)
    assert main(["evaluate", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--shape", "16", "16"]) == 130
    err = capsys.readouterr().err
    assert "interrupted (it writes no file" in err and "output folder" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
