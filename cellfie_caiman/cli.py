"""The ``cellfie-caiman`` command: argument parsing only; the work is in :mod:`cellfie_caiman.pipeline`."""
from __future__ import annotations

import argparse
import functools
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from ._quiet_tf import import_tensorflow_quietly
from .params import BACKENDS

PROG = "cellfie-caiman"

EPILOG = """\
examples:
  # simulate a movie with known neurons and run everything on it
  cellfie-caiman example -o example_out
  # the whole pipeline on a recording (7.5 Hz, GCaMP6s, somata about 12 px across), scored against manual ROIs
  cellfie-caiman run movie.tif -o out --fr 7.5 --decay-time 1.0 --diameter 12 --gt regions.json
  # a motion-corrected CaImAn memmap, refined with CaImAn's own CNMF, plus an NWB file
  cellfie-caiman run Yr_d1_512_d2_512_d3_1_order_C_frames_3000.mmap -o out --backend caiman --nwb
  # networks only: ROIs and pictures, no traces
  cellfie-caiman detect movie.tif -o out
  # summary images as float32 TIFF and PNG
  cellfie-caiman summary movie.tif -o out
  # score ROIs against ground truth
  cellfie-caiman evaluate out/rois.json regions.json --shape 512 512

Run 'cellfie-caiman COMMAND --help' for the options of a command.
"""

_RUN_EPILOG = """\
outputs in OUT: results.hdf5 (CaImAn's layout: caiman's load_CNMF reads it), rois.json (neurofinder),
masks.npz, traces.csv, params.json, provenance.json (package, model weights' SHA-256, library versions, movie),
results.nwb (--nwb), contours.png, probability.png, traces.png, segmentation.gif.

parameter file (--params): groups data, summary, detection, refine, quality, output and nwb, as in the
params.json a run writes; a relative model path in it is relative to the file's folder. The nwb group gives
results.nwb its subject (DANDI needs subject_id, species, sex, age) and session, e.g. in YAML:
  nwb: {subject_id: m7, species: Mus musculus, sex: F, age: P60D,
        session_start_time: '2023-05-17T09:30:00+02:00', indicator: GCaMP6s, location: VISp}

examples:
  cellfie-caiman run movie.tif -o out --fr 30 --decay-time 0.4
  cellfie-caiman run movie.h5 -o out --params my_params.yaml --backend builtin
"""

_NWB_HELP = ("write results.nwb too, or not (default: the parameter file's output.nwb, else not); its subject and "
             "session come from the parameter file's nwb group (and from an NWB movie)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log messages (-vv: debug)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    p.add_argument("--debug", action="store_true", help="show the full traceback of errors")


def _add_var_name(p: argparse.ArgumentParser, whose: str = "the movie's") -> None:
    p.add_argument("--var-name", metavar="NAME",
                   help=f"{whose} dataset in an HDF5 file, or series in an NWB file, when there are several "
                        "(default: 'mov', or the only 3-D one)")


def _add_run_options(p: argparse.ArgumentParser, refine: bool = True) -> None:
    p.add_argument("movie", help="movie: CaImAn .mmap, .tif/.tiff, folder of TIFF frames, .h5/.hdf5, .nwb or .npy")
    _add_var_name(p)
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--params", help="parameter file (.json or .yaml), as written to params.json by a run; the "
                                     "options below override its values")
    p.add_argument("--gt", help="ground-truth ROIs (neurofinder .json, ImageJ .zip, ...) to score against")
    if refine:
        p.add_argument("--backend", choices=BACKENDS,
                       help="refinement: CaImAn's CNMF, the builtin seeded CNMF, or none (default: the parameter "
                            "file's, else auto = CaImAn when installed)")
    p.add_argument("--fr", type=_positive_float, metavar="HZ",
                   help="frame rate in Hz (default: the rate the movie file records, as NWB and ImageJ/ScanImage "
                        "TIFFs do, else 30 with a warning)")
    p.add_argument("--decay-time", type=_positive_float, metavar="S",
                   help="indicator decay time in s (default 0.4; about 1.0 for GCaMP6s)")
    p.add_argument("--diameter", type=_positive_float, metavar="PX",
                   help="typical neuron diameter in pixels (default: the size the networks were trained on, or "
                        "the measured size when the neurons found are clearly smaller or larger; it wins over a "
                        "parameter file's data.pixel_size)")
    p.add_argument("--model", help="detection model name or weights file (default 'default')")
    p.add_argument("--no-tta", action="store_true",
                   help="one pass of the networks instead of 8 rotations/flips averaged: about 4x as fast, less "
                        "accurate (more false positives on the shared real excerpts)")
    p.add_argument("--tta", type=int, choices=(1, 2, 4, 8), metavar="N",
                   help="average the networks over N rotations/flips (1, 2, 4 or 8; default 8; 4, the flips only, "
                        "is 1.7x as fast and about as accurate on the validation data)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    if refine:
        p.add_argument("--nwb", action=argparse.BooleanOptionalAction, help=_NWB_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cellfie-caiman`` (subcommands run, detect, summary, evaluate, train, example)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Find neurons in two-photon calcium-imaging movies with fully convolutional networks and "
                    "extract their traces with CaImAn's CNMF (or a builtin seeded CNMF).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run_command(sub)
    _add_detect_command(sub)
    _add_summary_command(sub)
    _add_evaluate_command(sub)
    _add_train_command(sub)
    _add_example_command(sub)
    return parser


def _add_run_command(sub) -> None:
    """The ``run`` subcommand and its options (the whole pipeline)."""
    p = sub.add_parser("run", help="the whole pipeline: detection, traces, quality control, pictures",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_RUN_EPILOG,
                       description="Detect neurons, refine them with seeded CNMF, write results and pictures.")
    _add_run_options(p)
    _add_common(p)


def _add_detect_command(sub) -> None:
    """The ``detect`` subcommand and its options (networks only)."""
    p = sub.add_parser("detect", help="networks only: ROIs and pictures (no traces)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Detect neurons with the networks; writes rois.json, masks.npz, params.json, "
                                   "provenance.json, contours.png, probability.png and segmentation.gif.",
                       epilog="example:\n  cellfie-caiman detect movie.tif -o out --diameter 12")
    _add_run_options(p, refine=False)
    _add_common(p)


def _add_summary_command(sub) -> None:
    """The ``summary`` subcommand and its options (summary images)."""
    p = sub.add_parser("summary", help="summary images (correlation, PNR, std, mean, median, max; "
                                       "soma-filtered PNR with --filter-diameter) as TIFF and PNG",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write each summary image as <name>.tif (float32) and <name>.png.",
                       epilog="example:\n  cellfie-caiman summary movie.tif -o summary_out")
    p.add_argument("movie", help="movie (any format run accepts)")
    _add_var_name(p)
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--batch-frames", type=int, default=0,
                   help="frames per batch: each image is then the pixel-wise maximum over batches, as the detection "
                        "networks read them with 250 (default: 0, one batch: the whole movie's mean, median, ...)")
    p.add_argument("--filter-diameter", type=float, metavar="PIXELS",
                   help="also write pnr_filtered, the peak-to-noise ratio of the movie band-passed for somata of this "
                        "diameter (what the detection model reads)")
    p.add_argument("--no-png", dest="png", action="store_false", help="TIFF only")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    _add_common(p)


def _add_evaluate_command(sub) -> None:
    """The ``evaluate`` subcommand and its options (scores against ground truth)."""
    p = sub.add_parser("evaluate", help="score predicted ROIs against ground truth (CaImAn rule and IoU rule)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Match PRED to GT: CaImAn's rule (Hungarian matching on 1 - IoU between masks whose "
                                   "centroids are closer than 10 px, a match when IoU > 0.3) and the IoU rule.",
                       epilog="example:\n  cellfie-caiman evaluate out/rois.json regions.json --shape 512 512")
    p.add_argument("pred", help="predicted ROIs (neurofinder .json, ImageJ .zip, ...)")
    p.add_argument("gt", help="ground-truth ROIs")
    p.add_argument("--shape", nargs=2, type=int, metavar=("ROWS", "COLS"),
                   help="frame shape, optional: by default the one a file records (mask arrays, CaImAn HDF5, "
                        "NWB), else the extent of the ROIs (neurofinder .json and ImageJ ROIs record none; the "
                        "scores do not depend on it); when given, checked against the files that record one")
    _add_common(p)


def _add_train_command(sub) -> None:
    """The ``train`` subcommand and its options (training the networks)."""
    p = sub.add_parser("train", help="train the detection networks on annotated movies and simulated ones",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train the detection networks (cellfie_caiman.train.train) on annotated movies\n"
                                   "(--data MOVIE ROIS, repeatable) plus simulated fields, keep the weights with the\n"
                                   "best validation F1 and save them. The bottom 20 % of each field's rows (of its\n"
                                   "REGION, when given; --val-fraction) is held out to score every epoch: annotate\n"
                                   "neurons both there and above.",
                       epilog="examples:\n"
                              "  cellfie-caiman train -o my_model.npz --data movie.tif regions.json --epochs 40\n"
                              "  cellfie-caiman run movie.tif -o out --model my_model.npz\n"
                              "  # fine-tune the shipped model on your own annotations\n"
                              "  cellfie-caiman train -o tuned.npz --data a.tif a.json --data b.tif b.zip "
                              "--init-model default --simulated 0\n"
                              "  # only the top 256 rows of c.tif were annotated\n"
                              "  cellfie-caiman train -o tuned.npz --data c.tif top.json 0:256,: --init-model default")
    p.add_argument("-o", "--out", required=True, help="weights file to write (.npz)")
    p.add_argument("--data", nargs="+", action="append", default=[], metavar=("MOVIE ROIS", "REGION"),
                   help="an annotated movie, its ROI file and, when only part of the field was annotated, that part "
                        "as ROWS,COLS in NumPy's slice syntax (e.g. 0:256,: for the top 256 rows): training then "
                        "uses only that part, else the neurons nobody outlined would be learnt as background; "
                        "start it with a row number, not a minus sign (384:,: rather than -128:,:), or it reads "
                        "as an option (repeat --data for several movies)")
    _add_var_name(p, "each --data movie's")
    p.add_argument("--simulated", type=int, help="number of simulated fields added to the training data (default: 8, "
                   "or 0 when fine-tuning --init-model on --data)")
    p.add_argument("--simulated-shape", nargs=2, type=int, default=[256, 256], metavar=("ROWS", "COLS"),
                   help="size of the simulated fields (default: 256 256)")
    p.add_argument("--epochs", type=int, default=60, help="maximum number of epochs (default: %(default)s)")
    p.add_argument("--steps-per-epoch", type=int, default=100,
                   help="updates of each network per epoch (default: %(default)s)")
    p.add_argument("--patience", type=int, default=8,
                   help="stop after this many epochs without a better F1 (default: %(default)s)")
    p.add_argument("--init-model", help="start from these weights (model name or .npz) instead of random ones")
    p.add_argument("--learning-rate", type=_positive_float,
                   help="Adam learning rate (default: 1e-3 from scratch, 3e-4 with --init-model)")
    p.add_argument("--max-minutes", type=_positive_float, help="stop after the epoch that passes this time budget")
    p.add_argument("--batch-frames", type=int, default=250,
                   help="frames per batch of the summary images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same weights; default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of each field's rows (at the bottom) held out to choose the best epoch; larger "
                        "when that strip holds few annotated neurons (a warning says so; default: %(default)s)")
    p.add_argument("--no-check-annotations", action="store_false", dest="check_annotations",
                   help="skip the check that each movie's ROIs line up with it (the shipped model's detections "
                        "against the ROIs as given, transposed, flipped and swapped with another movie's: a warning "
                        "when a mistake fits clearly better)")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--scale-to-model", action="store_true", default=None,
                       help="zoom each movie so its annotated neurons have the model's training size (as detection "
                            "with --diameter shows them). Default, with --init-model: only the movies whose neurons "
                            "are outside 0.8-1.25 times that size; detect with the result giving --diameter")
    scale.add_argument("--own-scale", action="store_false", dest="scale_to_model",
                       help="train every movie at its own scale (the shipped recipe; a warning names the movies "
                            "whose neurons are far from the model's size)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights file")
    _add_common(p)


def _add_example_command(sub) -> None:
    """The ``example`` subcommand and its options (a simulated movie, run end to end)."""
    p = sub.add_parser("example", help="simulate a movie with known neurons and run everything on it (offline)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Simulate a movie, save it to OUT/data as a CaImAn memmap (or TIFF) with its true "
                                   "ROIs, then run the whole pipeline on it against those ROIs.",
                       epilog="example:\n  cellfie-caiman example -o example_out --frames 500 --size 96 96")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--frames", type=int, default=1000, help="number of frames (default: %(default)s)")
    p.add_argument("--size", nargs=2, type=int, default=[128, 128], metavar=("ROWS", "COLS"),
                   help="frame size (default: 128 128)")
    p.add_argument("--neurons", type=int, default=40, help="number of neurons (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--format", choices=["mmap", "tif"], default="mmap", help="movie file format (default: %(default)s)")
    p.add_argument("--backend", choices=BACKENDS,
                   help="refinement backend (default: the --params file's, else builtin, the same result "
                        "everywhere; auto: CaImAn when installed)")
    p.add_argument("--params", help="parameter file (.json or .yaml), as for run")
    p.add_argument("--nwb", action=argparse.BooleanOptionalAction, help=_NWB_HELP)
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    _add_common(p)


# ----------------------------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------------------------

def _params_from_args(args, backend: str | None = None):
    from .pipeline import as_params

    params = as_params(args.params)
    if args.fr is not None:
        params.data.fr = args.fr
    if args.decay_time is not None:
        params.data.decay_time = args.decay_time
    if args.diameter is not None:
        params.data.neuron_diameter = args.diameter
    if args.var_name is not None:
        params.data.var_name = args.var_name
    if getattr(args, "model", None):
        params.detection.model = args.model
    if getattr(args, "no_tta", False):
        params.detection.tta = False
    if getattr(args, "tta", None) is not None:
        if getattr(args, "no_tta", False) and args.tta != 1:
            raise ValueError(f"--no-tta and --tta {args.tta} contradict each other")
        params.detection.tta = args.tta
    backend = backend or getattr(args, "backend", None)
    if backend is not None:
        params.refine.backend = backend
    if getattr(args, "nwb", None) is not None:  # --nwb or --no-nwb
        params.output.nwb = args.nwb
    return params


def _cmd_run(args, backend: str | None = None) -> int:
    from .pipeline import run

    params = _params_from_args(args, backend)
    result = run(args.movie, args.out, params, gt=args.gt, overwrite=args.overwrite, progress=args.progress)
    _print_summary(result)
    return 0


def _print_summary(result) -> None:
    """Print the run's summary on stdout (with -v too: the log, on stderr, says only that the run finished)."""
    print(result.summary())


def _cmd_detect(args) -> int:
    return _cmd_run(args, backend="none")


def _cmd_summary(args) -> int:
    from .io import load_movie
    from .outputs import prepare_out_dir, write_summary_images
    from .summary import summary_images

    if args.batch_frames < 0:
        raise ValueError(f"--batch-frames must be a number of frames >= 0 (0: one batch), got {args.batch_frames}")
    movie = load_movie(args.movie, var_name=args.var_name)
    out = prepare_out_dir(args.out, args.overwrite, create=False, option="--overwrite")  # created later
    batch_frames = args.batch_frames or None  # 0: the whole movie
    summary = summary_images(movie, batch_frames=batch_frames, filter_diameter=args.filter_diameter,
                             progress=args.progress)
    out.mkdir(parents=True, exist_ok=True)
    files = write_summary_images(summary, out, pictures=args.png, batch_frames=batch_frames)
    print(f"wrote {len(files)} files to {out}: {', '.join(sorted(files))}")
    return 0


def _cmd_evaluate(args) -> int:
    from .pipeline import evaluate_files

    scores = evaluate_files(args.pred, args.gt, args.shape)
    print(f"{'rule':<12}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}{'F1':>7}")
    for rule, m in scores.items():
        print(f"{rule:<12}{m.tp:>5}{m.fp:>5}{m.fn:>5}{m.precision:>11.3f}{m.recall:>8.3f}{m.f1:>7.3f}")
    return 0


def _cmd_train(args) -> int:
    from .io import load_movie
    from .train import train

    out = _weights_out(args)  # now, not after hours of training (main checked it before importing TensorFlow)
    for entry in args.data:
        if len(entry) not in (2, 3):
            raise ValueError(f"--data takes MOVIE ROIS [REGION], got {len(entry)} values: {' '.join(entry)}")
        for path in entry[:2]:
            if not Path(path).exists():
                raise FileNotFoundError(f"{path}: no such file or folder")
        if len(entry) == 3 and Path(entry[2]).exists():
            raise ValueError(f"--data takes MOVIE ROIS [REGION], and {entry[2]} is a file, not a region: for another "
                             "movie repeat --data (--data a.tif a.json --data b.tif b.json)")
    datasets = [tuple(entry) for entry in args.data]
    if args.var_name is not None:  # each movie opened here (headers only), reading the dataset named
        datasets = [(load_movie(movie, var_name=args.var_name), *rest) for movie, *rest in datasets]
    # quoted as a shell reads it back: a path with a space (or a region with ':') stays one argument
    record = {"command": shlex.join([PROG, *args.argv])}
    result = train(datasets, out, simulated=args.simulated,
                   simulated_shape=tuple(args.simulated_shape), epochs=args.epochs,
                   steps_per_epoch=args.steps_per_epoch, patience=args.patience, seed=args.seed,
                   val_fraction=args.val_fraction, init_model=args.init_model, learning_rate=args.learning_rate,
                   max_minutes=args.max_minutes,
                   batch_frames=args.batch_frames, check_annotations=args.check_annotations,
                   scale_to_model=args.scale_to_model, progress=args.progress, record=record)
    print(f"best validation F1 {result.best_f1:.3f} at epoch {result.best_epoch}; weights in {result.path}")
    training = result.model.config.training
    movies = {name: source[0] for name, source in zip(training["datasets"], training["dataset_sources"],
                                                        strict=False)}
    sizes = dict(zip(training["datasets"], training["neuron_diameters"], strict=False))
    for name in training.get("scaled_to_model", []):  # learnt at the model's size: detection must be told theirs
        print(f"{movies[name]}: its neurons of {sizes[name]:g} px were zoomed to the model's "
              f"{result.model.config.train_diameter:g} px; detect in such movies with these weights giving "
              f"--diameter {sizes[name]:g}")
    if result.interrupted:  # the best whole epoch was saved; the exit status still says the run did not finish
        n = len(result.history)
        print(f"{PROG}: interrupted after {n} whole epoch{'s' if n != 1 else ''}; the best of them was saved",
              file=sys.stderr)
        return 130
    return 0


def _cmd_example(args) -> int:
    from .pipeline import as_params, example

    params = as_params(args.params)
    if args.backend is not None:
        params.refine.backend = args.backend
    elif args.params is None:  # the example's own default: the same result with or without CaImAn
        params.refine.backend = "builtin"
    if args.nwb is not None:  # --nwb or --no-nwb
        params.output.nwb = args.nwb
    result = example(args.out, n_frames=args.frames, shape=tuple(args.size), n_neurons=args.neurons, seed=args.seed,
                     params=params, movie_format=args.format, overwrite=args.overwrite, progress=args.progress)
    _print_summary(result)
    return 0


_COMMANDS = {"run": _cmd_run, "detect": _cmd_detect, "summary": _cmd_summary, "evaluate": _cmd_evaluate,
             "train": _cmd_train, "example": _cmd_example}


def _setup_logging(verbose: int) -> None:
    """Our log messages at the level asked for; other libraries' (matplotlib's font search...) at warnings only.

    Our warnings, Python warnings and log records alike, print as ``cellfie-caiman: warning: ...`` (one line, without
    the source line that raised them); other libraries' say whose they are, and their FutureWarnings and
    DeprecationWarnings (about their own use of other libraries: nothing a user can act on) only show with -v.
    """
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(_LogFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("cellfie_caiman").setLevel(level)
    warnings.formatwarning = functools.partial(_format_warning, verbose=verbose)


class _LogFormatter(logging.Formatter):
    """Our warnings and errors as ``cellfie-caiman: warning: ...`` like every other line we write; the rest of the
    log (ours at -v, other libraries' warnings) with time, level and logger."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ours = record.name == "cellfie_caiman" or record.name.startswith("cellfie_caiman.")
        if ours and record.levelno >= logging.WARNING and not record.exc_info:
            return f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"
        return super().format(record)


#: Warnings about a library's use of another (SciPy's FutureWarning about CaImAn's call of toeplitz...): shown only
#: with -v when they do not come from our code.
_LIBRARY_NOTICES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _format_warning(message, category, filename, lineno, line=None, *, verbose: int = 0) -> str:
    """One line for a Python warning: ours as ``cellfie-caiman: warning: ...``; another library's naming it ('' to
    show nothing: a library's deprecation notice without -v)."""
    text = " ".join(str(message).split())
    origin = _package_of(filename)
    if origin == __package__:
        return f"{PROG}: warning: {text}\n"
    if issubclass(category, _LIBRARY_NOTICES) and verbose <= 0:
        return ""
    return f"{PROG}: {category.__name__} from {origin or filename}: {text}\n"


def _package_of(filename: str) -> str | None:
    """Top-level package of a source file (the outermost folder above it that holds an ``__init__.py``)."""
    folder, package = Path(filename).absolute().parent, None
    while (folder / "__init__.py").is_file():
        package = folder.name
        if folder.parent == folder:
            break
        folder = folder.parent
    return package


def _error_message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror and exc.filename:  # "[Errno 20] Not a directory: 'x'" -> "x: ..."
        text = f"{exc.filename}: {exc.strerror}"
    return " ".join(text.split())  # one line


def _check_output(args) -> None:
    """Refuse ``--out`` (an existing non-empty folder, or weights file, without ``--overwrite``) before TensorFlow is
    imported and the movie read: at once, and before any warning about the movie."""
    if args.command == "train":
        _weights_out(args)
    elif args.command in ("run", "detect", "summary", "example"):
        from .outputs import prepare_out_dir

        prepare_out_dir(args.out, args.overwrite, create=False, option="--overwrite")


def _weights_out(args) -> Path:
    """``train``'s weights file, checked: a writable ``.npz`` path, not an existing file unless ``--overwrite``."""
    from .train import check_weights_path

    out = check_weights_path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out}: exists; use --overwrite to replace it")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cellfie-caiman``; returns the exit status (0 success, 2 bad input, 130 interrupted)."""
    # TensorFlow's C++ start-up chatter is noise for users (an explicit setting wins); TensorFlow 2.17+ prints some of
    # it regardless: see _quiet_tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .io import MovieError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    _setup_logging(args.verbose)
    try:
        _check_output(args)
        if args.command in ("run", "detect", "train", "example"):  # the commands that run the networks
            import_tensorflow_quietly()
        return _COMMANDS[args.command](args)
    except (MovieError, ValueError, OSError, ImportError) as exc:  # OSError: missing, existing, unwritable paths
        if args.debug:
            raise
        print(f"{PROG}: error: {_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted ({_interrupted_output(args)})", file=sys.stderr)
        return 130


def _interrupted_output(args) -> str:
    """What a Ctrl-C that reached :func:`main` left of the command's output: ``train`` (which saves the best epoch
    itself once one has been scored) writes one weights file, ``evaluate`` nothing, the other commands an output
    folder."""
    if args.command == "train":
        return f"before the first epoch was scored: no weights were saved, {args.out} was not touched"
    if args.command == "evaluate":
        return "it writes no file: nothing to clean up"
    return "no partial file was left behind; the output folder keeps what it had"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

