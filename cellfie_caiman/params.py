"""One parameter object for a whole run, in groups, with CaImAn's names where CaImAn has one.

Functions never take the whole :class:`Params`; the pipeline hands each step the few values it needs.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import logging
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import MIN_DIAMETER, number
from ._param_text import _mapping_without_repeats, _parse_yaml, _yaml_class

logger = logging.getLogger(__name__)

#: Refinement backends (``refine.backend``).
BACKENDS = ("auto", "caiman", "builtin", "none")
#: Frame rate (Hz) assumed, with a warning, when neither ``data.fr`` nor the movie file gives one (CaImAn's default).
DEFAULT_FR = 30.0


@dataclass
class DataParams:
    """What the recording is.

    Attributes
    ----------
    fr : float or None
        Frame rate in Hz (CaImAn: ``data.fr``). None: the rate the movie file records (an NWB series' rate, a TIFF's
        ImageJ or ScanImage metadata), else ``DEFAULT_FR`` (30 Hz) with a warning; see :meth:`frame_rate`.
    decay_time : float
        Decay time of the indicator's transients in seconds (CaImAn: ``data.decay_time``); 0.4 for GCaMP6f,
        about 1.0 for GCaMP6s.
    neuron_diameter : float or None
        Typical soma diameter in pixels (at least 2). None: unknown; detection runs at the size the model was
        trained on and again at the measured size when the neurons it finds are clearly smaller or larger
        (:func:`cellfie_caiman.initialize`). Given together with ``pixel_size``, it is the one used (a run warns
        when the two disagree: :meth:`diameter_pixels`).
    pixel_size : float or None
        Microns per pixel; with ``soma_diameter_um`` an alternative way to give ``neuron_diameter``.
    soma_diameter_um : float
        Typical soma diameter in microns, used only with ``pixel_size``.
    var_name : str or None
        Dataset path inside an HDF5 file (CaImAn: ``data.var_name_hdf5``), or the name (or path) of the
        ``TwoPhotonSeries`` to read from an NWB file (:func:`cellfie_caiman.io.load_movie`).
    """

    fr: float | None = None
    decay_time: float = 0.4
    neuron_diameter: float | None = None
    pixel_size: float | None = None
    soma_diameter_um: float = 12.0
    var_name: str | None = None

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range."""
        number(self.fr, "data.fr (Hz)", low=0, low_open=True, optional=True)
        number(self.decay_time, "data.decay_time", low=0, low_open=True)
        number(self.neuron_diameter, "data.neuron_diameter (pixels)", low=MIN_DIAMETER, optional=True)
        number(self.pixel_size, "data.pixel_size", low=0, low_open=True, optional=True)
        number(self.soma_diameter_um, "data.soma_diameter_um", low=0, low_open=True)
        if self.neuron_diameter is None and self.pixel_size is not None:
            number(self.diameter_pixels(), "data.soma_diameter_um / data.pixel_size (the soma diameter in pixels)",
                   low=MIN_DIAMETER)
        if self.var_name is not None and not isinstance(self.var_name, str):
            raise ValueError(f"data.var_name must be a dataset name or None, got {self.var_name!r}")

    def frame_rate(self, movie: Any = None, warn: bool = True) -> float:
        """The frame rate (Hz) for ``movie``: ``fr`` when given (a logged warning if the movie file records one
        more than 1 % different), else the one the movie file records (``Movie.frame_rate``), else ``DEFAULT_FR``
        with a ``UserWarning`` (unless ``warn`` is False: nothing that follows depends on the rate, as for
        detection alone).

        Parameters
        ----------
        movie : Movie, str, path, ndarray or None
            A :class:`cellfie_caiman.io.Movie`, a path ``load_movie`` opens (with ``var_name``), an array, or None.
        warn : bool
            Warn when ``DEFAULT_FR`` is assumed.

        Returns
        -------
        float
            Frames per second (Hz).
        """
        recorded = getattr(movie, "frame_rate", None)
        if recorded is None and isinstance(movie, (str, os.PathLike)):
            from .io import load_movie

            with load_movie(movie, var_name=self.var_name) as opened:
                recorded = opened.frame_rate
        if self.fr is not None:
            if recorded is not None and abs(recorded - self.fr) > 0.01 * self.fr:
                logger.warning("data.fr is %g Hz but the movie file records %g Hz: using %g Hz", self.fr, recorded,
                               self.fr)
            return float(self.fr)
        if recorded is not None:
            logger.info("frame rate %g Hz, as the movie file records it", recorded)
            return float(recorded)
        if not warn:
            return DEFAULT_FR
        warnings.warn(f"the frame rate is not given and the movie does not record it: assuming {DEFAULT_FR:g} Hz "
                      "(give data.fr, or --fr on the command line; deconvolution and traces.csv's times depend on it)",
                      UserWarning, stacklevel=3)
        return DEFAULT_FR

    def diameter_pixels(self, warn: bool = False) -> float | None:
        """Soma diameter in pixels: ``neuron_diameter`` when given, else ``soma_diameter_um / pixel_size``, None when
        neither is given.

        Parameters
        ----------
        warn : bool
            Warn (``UserWarning``) when ``neuron_diameter`` and ``pixel_size`` are both given and give sizes more than
            1 % apart, naming both and the one used (:func:`cellfie_caiman.run` asks once, before the movie is read).

        Returns
        -------
        float or None
            Pixels.
        """
        from_size = None if self.pixel_size is None else float(self.soma_diameter_um / self.pixel_size)
        if self.neuron_diameter is None:
            return from_size
        diameter = float(self.neuron_diameter)
        if warn and from_size is not None and abs(from_size - diameter) > 0.01 * diameter:
            warnings.warn(f"data.neuron_diameter ({diameter:g} px) and data.pixel_size ({self.pixel_size:g} microns "
                          f"per pixel: a soma of {self.soma_diameter_um:g} microns is {from_size:.3g} px) disagree: "
                          f"using {diameter:g} px, the neuron_diameter; give only one of them", UserWarning,
                          stacklevel=2)
        return diameter


@dataclass
class SummaryParams:
    """How summary images are computed.

    Attributes
    ----------
    batch_frames : int or None
        Frames per batch (at least 2); each image is the pixel-wise maximum over batches (the cellfie definition:
        250). None: one batch with every frame.
    """

    batch_frames: int | None = 250

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range."""
        number(self.batch_frames, "summary.batch_frames", low=2, integer=True, optional=True)


@dataclass
class DetectionParams:
    """The networks (see :func:`cellfie_caiman.initialize`).

    Attributes
    ----------
    model : str or path
        Shipped model name (:func:`cellfie_caiman.models.list_models`) or path to a ``.npz`` weight file. In a
        parameter file a relative path is relative to the file's folder (:meth:`Params.load`); a run records the
        weight file's absolute path in ``params.json``.
    min_score : float
        Instances whose score is below this are dropped (0..1).
    prob_threshold : float
        Local maxima of the probability map below this are not examined (0..1).
    max_overlap : float
        Two kept masks whose IoU exceeds this (in (0, 1]), or one lying more than 80 % inside the other, are
        duplicates; the lower-scoring one is dropped.
    tta : bool or int
        Average the networks over the 8 rotations and flips (True, default), over the 4 flips (4: faster, about
        as accurate on the validation data), or not at all (False: one pass, fastest, fewer neurons); see
        :func:`cellfie_caiman.initialize`.
    """

    model: str = "default"
    min_score: float = 0.5
    prob_threshold: float = 0.4
    max_overlap: float = 0.5
    tta: bool | int = True

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range."""
        from .initialize import check_detection_settings

        if not isinstance(self.model, (str, os.PathLike)):
            raise ValueError(f"detection.model must be a model name or a weight file's path, got {self.model!r}")
        try:
            check_detection_settings(self.min_score, self.prob_threshold, self.max_overlap, self.tta)
        except ValueError as exc:
            raise ValueError(f"detection.{exc}") from None  # named as in the parameter file


@dataclass
class RefineParams:
    """CNMF refinement (CaImAn's ``temporal``, ``init``, ``merging`` and ``spatial`` groups).

    Attributes
    ----------
    backend : str
        ``'auto'`` (CaImAn when importable, else builtin), ``'caiman'``, ``'builtin'`` or ``'none'`` (skip).
    p : int
        Order of the autoregressive model of the calcium dynamics (0, 1 or 2).
    nb : int
        Number of background components (CaImAn: ``init.nb``). CaImAn's seeded CNMF fits at least one: 0 (no
        background) needs the builtin backend (CaImAn's fits one, with a warning).
    merge_thr : float
        Overlapping components whose traces correlate above this are merged.
    gSig : tuple of int or None
        Half-size of a neuron in pixels (CaImAn: ``init.gSig``); None derives it from the neuron diameter. Recorded
        in CaImAn's parameters but without effect on a seeded run: CaImAn's seeded path does not use it and the
        builtin does not either.
    n_iter : int
        Alternating spatial/temporal update rounds of the builtin backend (CaImAn's seeded fit runs a fixed
        sequence and ignores it).
    chunk_frames : int
        Frames the builtin backend reads at a time from the movie (at most what fits the memory bound; 0: as many
        as fit it). CaImAn reads its memmap its own way and ignores it.
    """

    backend: str = "auto"
    p: int = 1
    nb: int = 2
    merge_thr: float = 0.85
    gSig: tuple[int, int] | None = None
    n_iter: int = 2
    chunk_frames: int = 1000

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown refinement backend {self.backend!r}; use "
                             + ", ".join(repr(b) for b in BACKENDS[:-1]) + f" or {BACKENDS[-1]!r}")
        if self.p not in (0, 1, 2) or isinstance(self.p, bool):
            raise ValueError(f"refine.p must be 0, 1 or 2, got {self.p!r}")
        number(self.nb, "refine.nb", low=0, integer=True)
        number(self.merge_thr, "refine.merge_thr", low=0, low_open=True)  # above 1: nothing is merged
        number(self.n_iter, "refine.n_iter", low=1, integer=True)
        number(self.chunk_frames, "refine.chunk_frames", low=0, integer=True)
        if self.gSig is not None:
            if not isinstance(self.gSig, (tuple, list)) or len(self.gSig) != 2:
                raise ValueError(f"refine.gSig must be two half-sizes in pixels (rows, cols) or None, "
                                 f"got {self.gSig!r}")
            for v in self.gSig:
                number(v, "each of refine.gSig", low=1, integer=True)


@dataclass
class QualityParams:
    """Component evaluation (CaImAn's ``quality`` group and rule).

    A component is accepted if (``r >= rval_thr`` or ``SNR > min_SNR`` or, with ``use_cnn``, ``cnn >= min_cnn_thr``)
    and ``r > rval_lowest`` and ``SNR > SNR_lowest`` and, with ``use_cnn``, ``cnn > cnn_lowest``. Any finite
    value is allowed: a threshold past the range of its measure (``r`` and ``cnn`` lie in [-1, 1] and [0, 1]) turns
    that test off.

    CaImAn's ``cnn`` is its own classifier of footprint shapes (weights not in its source, never used here); with
    ``use_cnn`` the networks' detection score takes its place: for each component, the score of the detected mask
    that overlaps it most (intersection over union; 0 when none), stored as ``cnn_preds``. It only applies when the
    seeds come with scores (the result of ``initialize``), not to plain masks.

    Attributes
    ----------
    min_SNR : float
        SNR above which a component is accepted (CaImAn: ``quality.min_SNR``).
    SNR_lowest : float
        SNR at or below which a component is rejected.
    rval_thr : float
        Spatial correlation ``r`` at or above which a component is accepted.
    rval_lowest : float
        ``r`` at or below which a component is rejected.
    use_cnn : bool
        Use the networks' detection score as CaImAn's ``cnn`` measure (above).
    min_cnn_thr : float
        Score at or above which a component is accepted (with ``use_cnn``).
    cnn_lowest : float
        Score at or below which a component is rejected (with ``use_cnn``).
    """

    min_SNR: float = 2.5
    SNR_lowest: float = 0.5
    rval_thr: float = 0.8
    rval_lowest: float = -1.0
    use_cnn: bool = True
    min_cnn_thr: float = 0.9
    cnn_lowest: float = 0.1

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range."""
        for name in ("min_SNR", "SNR_lowest", "rval_thr", "rval_lowest", "min_cnn_thr", "cnn_lowest"):
            number(getattr(self, name), f"quality.{name}")  # any finite threshold: one past its range turns it off


@dataclass
class OutputParams:
    """What :func:`cellfie_caiman.run` writes besides the results.

    Attributes
    ----------
    nwb : bool
        Also write the results as NWB (``results.nwb``; needs pynwb), with the session and subject of the ``nwb``
        group (:class:`NWBParams`).
    pictures : bool
        Write the pictures (``contours.png``, ``probability.png``, ``traces.png``, ``segmentation.gif``).
    gif_frames : int
        Frames shown in ``segmentation.gif`` (at least 1).
    """

    nwb: bool = False
    pictures: bool = True
    gif_frames: int = 200

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range."""
        number(self.gif_frames, "output.gif_frames", low=1, integer=True)


#: Values of ``nwb.sex`` (NWB's and DANDI's codes).
NWB_SEXES = ("M", "F", "U", "O")
_NUMBER = r"\d+(?:[.,]\d+)?"
#: An ISO 8601 duration (``P60D``, ``P10W``, ``P2Y3M``, ``P1DT12H``): at least one part, none after a bare ``T``.
_DURATION = re.compile(rf"P(?=\d)(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
                       rf"(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?")


@dataclass
class NWBParams:
    """The session and the animal, written into ``results.nwb`` (``output.nwb``). DANDI refuses an NWB file without
    a subject (``subject_id``, ``species``, ``sex``, and ``age``), and NWB's best practice wants the experimenter,
    lab and institution; an NWB movie's own session, subject, people and imaging plane are used where these are
    None (:func:`cellfie_caiman.outputs.nwb_session`).

    Attributes
    ----------
    subject_id : str or None
        The animal's identifier (text: in YAML, quote an identifier that reads as a number, ``'007'``).
    species : str or None
        Latin binomial (``Mus musculus``) or NCBI taxonomy URL, as DANDI wants it.
    sex : str or None
        ``'M'``, ``'F'``, ``'U'`` (unknown) or ``'O'`` (other).
    age : str or None
        Age at the session as an ISO 8601 duration (``P60D``: 60 days; ``P10W``, ``P2Y3M``), or a range
        (``P60D/P90D``).
    strain, genotype : str or None
        Of the animal (NWB ``Subject.strain`` and ``Subject.genotype``).
    session_description : str or None
        What the session was (NWB ``session_description``; None: ``'cellfie_caiman'``).
    session_start_time : str or None
        Start of the recording, ISO 8601 with a time zone (``2023-05-17T09:30:00+02:00``; ``Z`` for UTC). None: the
        NWB movie's, else the time results.nwb is written.
    experimenter : str, list of str or None
        Who recorded the session: one name or a list, each ``'Last, First'`` as NWB and DANDI want them (in a YAML
        list, quote each name: ``['Doe, Jane', 'Roe, Richard']``; a run warns about a name of another form).
    lab, institution : str or None
        Where the session was recorded (NWB ``lab`` and ``institution``).
    experiment_description : str or None
        What the experiment was about (NWB ``experiment_description``).
    keywords : str, list of str or None
        Terms to search the file by (NWB ``keywords``).
    indicator, location : str or None
        Of the imaging plane (e.g. ``GCaMP6s``, ``VISp``; None: ``'GCaMP'`` and ``'unknown'``).
    excitation_lambda, emission_lambda : float or None
        Wavelengths in nm (None: 920 and 510).
    """

    subject_id: str | None = None
    species: str | None = None
    sex: str | None = None
    age: str | None = None
    strain: str | None = None
    genotype: str | None = None
    session_description: str | None = None
    session_start_time: str | None = None
    experimenter: str | list[str] | None = None
    lab: str | None = None
    institution: str | None = None
    experiment_description: str | None = None
    keywords: str | list[str] | None = None
    indicator: str | None = None
    location: str | None = None
    excitation_lambda: float | None = None
    emission_lambda: float | None = None

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range."""
        for name in ("subject_id", "species", "sex", "age", "strain", "genotype", "session_description",
                     "session_start_time", "lab", "institution", "experiment_description", "indicator", "location"):
            _text(getattr(self, name), f"nwb.{name}")
        for name in ("experimenter", "keywords"):
            _texts(getattr(self, name), f"nwb.{name}")
        if self.sex is not None and self.sex not in NWB_SEXES:
            raise ValueError(f"nwb.sex must be one of {', '.join(repr(s) for s in NWB_SEXES)} (male, female, unknown, "
                             f"other), got {self.sex!r}")
        if self.age is not None and not all(_DURATION.fullmatch(part) for part in self.age.split("/", 1)):
            raise ValueError(f"nwb.age must be an ISO 8601 duration such as P60D (60 days), P10W or P2Y3M, or a range "
                             f"P60D/P90D, got {self.age!r}")
        self.start_time()
        number(self.excitation_lambda, "nwb.excitation_lambda (nm)", low=0, low_open=True, optional=True)
        number(self.emission_lambda, "nwb.emission_lambda (nm)", low=0, low_open=True, optional=True)

    def start_time(self) -> datetime.datetime | None:
        """``session_start_time`` as a timezone-aware datetime (None when not given); ``ValueError`` when it is not
        ISO 8601 with a time zone."""
        if self.session_start_time is None:
            return None
        text = self.session_start_time.strip()
        example = "e.g. 2023-05-17T09:30:00+02:00 (Z for UTC)"
        try:  # Python < 3.11 does not read Z
            when = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
        except ValueError:
            raise ValueError(f"nwb.session_start_time must be a date and time in ISO 8601 with a time zone, {example}"
                             f", got {self.session_start_time!r}") from None
        if when.tzinfo is None:
            raise ValueError(f"nwb.session_start_time has no time zone: add one, {example}; got "
                             f"{self.session_start_time!r}")
        return when

    def session(self) -> dict[str, Any]:
        """The settings given, as keyword arguments of :meth:`cellfie_caiman.cnmf.Estimates.to_nwb`: the subject's
        under ``subject`` (a dict of ``pynwb.file.Subject``'s arguments), ``session_start_time`` a datetime,
        ``experimenter`` and ``keywords`` lists of text."""
        given = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        for name in ("experimenter", "keywords"):
            if isinstance(given.get(name), str):
                given[name] = [given[name]]
        subject = {k: given.pop(k) for k in ("subject_id", "species", "sex", "age", "strain", "genotype") if k in given}
        if subject:
            given["subject"] = subject
        if "session_start_time" in given:
            given["session_start_time"] = self.start_time()
        return given


def _text(value: Any, name: str) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is None or non-empty text."""
    if value is None or (isinstance(value, str) and value.strip()):
        return
    if isinstance(value, str):
        raise ValueError(f"{name} must be text, got an empty one")
    raise ValueError(f"{name} must be text (in YAML, quote one that reads as a number or a date: '007'), got "
                     f"{type(value).__name__} {value!r}")


def _texts(value: Any, name: str) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is None, non-empty text or a non-empty list of them."""
    if value is None or isinstance(value, str):
        _text(value, name)
        return
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be text or a list of texts, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{name} must be text or a list of texts, got an empty list (leave it out instead)")
    for item in value:
        _text("" if item is None else item, f"each of {name}")  # None: an empty YAML list item (``- ``)


#: Settings that are counts (checked as whole numbers, used as ``int``); ``tta`` is a flag or a count.
_COUNTS = {
    "summary": ("batch_frames",),
    "detection": ("tta",),
    "refine": ("p", "nb", "n_iter", "chunk_frames"),
    "output": ("gif_frames",),
}


def _whole_as_int(value: Any) -> Any:
    """``int(value)`` for a float (numpy's too) holding a whole number, else ``value`` unchanged."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


_GROUPS = {
    "data": DataParams,
    "summary": SummaryParams,
    "detection": DetectionParams,
    "refine": RefineParams,
    "quality": QualityParams,
    "output": OutputParams,
    "nwb": NWBParams,
}


@dataclass
class Params:
    """All parameters of a run, grouped.

    Examples
    --------
    >>> p = Params.from_dict({"data": {"fr": 7.5, "decay_time": 1.0}})
    >>> p.data.fr
    7.5
    >>> p.refine.p
    1
    """

    data: DataParams = field(default_factory=DataParams)
    summary: SummaryParams = field(default_factory=SummaryParams)
    detection: DetectionParams = field(default_factory=DetectionParams)
    refine: RefineParams = field(default_factory=RefineParams)
    quality: QualityParams = field(default_factory=QualityParams)
    output: OutputParams = field(default_factory=OutputParams)
    nwb: NWBParams = field(default_factory=NWBParams)

    def with_frame_rate(self, movie: Any) -> Params:
        """These parameters when ``data.fr`` is given, else a copy with it set for ``movie``
        (:meth:`DataParams.frame_rate`: the rate the movie file records, else 30 Hz with a warning).

        Parameters
        ----------
        movie : Movie, str, path, ndarray or None
            As for :meth:`DataParams.frame_rate`.

        Returns
        -------
        Params
            ``self`` (not a copy) when ``data.fr`` is set.
        """
        if self.data.fr is not None:
            return self
        resolved = copy.deepcopy(self)
        resolved.data.fr = resolved.data.frame_rate(movie)
        return resolved

    @classmethod
    def coerce(cls, params: Params | Mapping[str, Any] | str | os.PathLike | None) -> Params:
        """A checked :class:`Params` from a Params (returned as is), a dict of groups, a JSON/YAML file path, or
        None (the defaults).

        Parameters
        ----------
        params : Params, mapping, str, path or None

        Returns
        -------
        Params

        Raises
        ------
        ValueError
            A setting out of its range (:meth:`check`), an unknown group or key, a file that cannot be parsed.
        FileNotFoundError
            A parameter file that does not exist.
        TypeError
            ``params`` of another type.
        """
        if params is None:
            return cls()
        if isinstance(params, cls):
            params.check()
            return params
        if isinstance(params, Mapping):
            return cls.from_dict(dict(params))
        if isinstance(params, (str, os.PathLike)):
            return cls.load(params)
        raise TypeError(f"params must be a Params, a dict of groups, a parameter file or None, "
                        f"got {type(params).__name__}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Params:
        """Build from ``{'group': {'key': value}}`` (missing groups and keys take their defaults), checked.

        Parameters
        ----------
        d : dict or None
            Groups ``data``, ``summary``, ``detection``, ``refine``, ``quality``, ``output``, ``nwb``. A number
            given as text (``"1e3"``, quoted in a file) is refused, saying so.

        Returns
        -------
        Params

        Raises
        ------
        ValueError
            An unknown group or key, a flag that is not true or false, or a value out of its range (:meth:`check`).
        """
        d = d or {}
        if not isinstance(d, Mapping):
            raise ValueError(f"parameters must be a mapping of groups, got {type(d).__name__}")
        unknown = set(d) - set(_GROUPS)
        if unknown:
            raise ValueError(f"unknown parameter group(s) {sorted(unknown, key=repr)}; known: {sorted(_GROUPS)}")
        groups = {}
        for name, klass in _GROUPS.items():
            values = d.get(name) or {}
            if not isinstance(values, Mapping):
                raise ValueError(f"parameter group '{name}' must be a mapping of settings (key: value), got "
                                 f"{type(values).__name__} {values!r}")
            values = dict(values)
            known = {f.name for f in dataclasses.fields(klass)}
            bad = set(values) - known
            if bad:
                raise ValueError(f"unknown parameter(s) {sorted(bad, key=repr)} in group '{name}'; "
                                 f"known: {sorted(known)}")
            # fields declared plain bool (annotations are strings here); tta ("bool | int") is checked below
            flags = sorted(f.name for f in dataclasses.fields(klass)
                           if f.type == "bool" and f.name in values and not isinstance(values[f.name], bool))
            if flags:
                raise ValueError(f"parameter(s) {flags} in group '{name}' must be true or false, got "
                                 f"{[values[k] for k in flags]}")
            _refuse_numbers_as_text(name, klass, values)
            if isinstance(values.get("gSig"), list):
                values["gSig"] = tuple(values["gSig"])  # JSON and YAML give a list
            if isinstance(values.get("session_start_time"), (datetime.date, datetime.datetime)):
                values["session_start_time"] = values["session_start_time"].isoformat()  # YAML reads timestamps
            groups[name] = klass(**values)
        params = cls(**groups)
        params.whole_numbers_as_int()
        params.check()
        return params

    def whole_numbers_as_int(self) -> None:
        """Turn the counts given as whole floats (``gif_frames: 20.0``, ``gSig: [6.0, 6.0]``) into ``int``, in place.

        :meth:`check` accepts ``20.0`` where a count belongs; the steps that use counts (array shapes, ranges) need
        ``int``, and ``params.json`` then records ``20``. Anything else is left as it is, for :meth:`check` to name.
        """
        for group_name, fields in _COUNTS.items():
            group = getattr(self, group_name)
            for key in fields:
                setattr(group, key, _whole_as_int(getattr(group, key)))
        if isinstance(self.refine.gSig, (tuple, list)):
            self.refine.gSig = tuple(_whole_as_int(v) for v in self.refine.gSig)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of its range or of the wrong type.

        :meth:`from_dict` (and so :meth:`load`) checks what it builds and :meth:`coerce` what it is given, so the
        functions that take parameters (:func:`cellfie_caiman.run` before it reads the movie, ``refine``,
        ``seeded_cnmf``) fail at once on a Params changed by hand, not hours later in the step that uses the value.

        Examples
        --------
        >>> p = Params()
        >>> p.detection.min_score = 50  # a percentage where a probability belongs
        >>> p.check()
        Traceback (most recent call last):
        ...
        ValueError: detection.min_score must be a number in [0, 1], got 50
        """
        for name in _GROUPS:
            getattr(self, name).check()

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (JSON-serialisable)."""
        out = dataclasses.asdict(self)
        for group in out.values():
            for k, v in group.items():
                if isinstance(v, tuple):
                    group[k] = list(v)
                elif isinstance(v, os.PathLike):  # a model given as a path
                    group[k] = os.fspath(v)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> Params:
        """Read parameters from a ``.json``, ``.yaml`` or ``.yml`` file (any other suffix is read as JSON).

        YAML files are read with YAML 1.2's numbers (PyYAML follows YAML 1.1): ``1e3``, ``1.0e3`` and ``1e-3`` are
        numbers (YAML 1.1: text), ``010`` is ten (YAML 1.1: octal 8), ``0o10`` octal 8 and ``0x10`` sixteen; YAML
        1.1's ``1_000``, ``0b11`` and base-60 ``1:30`` are text, refused where a number belongs. A relative
        ``detection.model`` path is relative to the file's folder (where a run's ``params.json`` is); one found only
        relative to the working folder, as files written before runs recorded absolute paths may name it, is used
        with a warning.

        Parameters
        ----------
        path : str or path

        Returns
        -------
        Params
            Checked (:meth:`from_dict`), ``detection.model`` an absolute path when it names a file found from a
            relative path.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If it cannot be parsed, does not hold a mapping of groups, or holds unknown or out-of-range settings.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"parameter file not found: {path}")
        text = path.read_text()
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                d = _parse_yaml(text)
            else:
                d = json.loads(text, object_pairs_hook=_mapping_without_repeats)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(f"cannot parse parameter file {path}: {exc}") from exc
        if d is not None and not isinstance(d, dict):
            raise ValueError(f"parameter file {path} must hold a mapping of groups, got {type(d).__name__}")
        params = cls.from_dict(d)
        params.detection.model = _model_beside(params.detection.model, path)
        return params

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters as JSON (or YAML when the suffix is ``.yaml``/``.yml``).

        Parameters
        ----------
        path : str or path
            Output file; :meth:`load` reads it back.
        """
        from ._files import atomic_path

        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.dump(self.to_dict(), Dumper=_yaml_class(yaml.SafeDumper), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2)
        with atomic_path(path) as tmp:  # never a half-written file
            tmp.write_text(text)


def _model_beside(model: str | os.PathLike, params_file: Path) -> str | os.PathLike:
    """``model`` as named in ``params_file``: a relative path to a file that exists beside ``params_file`` (or, with a
    warning, only relative to the working folder) as an absolute path; anything else (a shipped model's name, an
    absolute path, a path found nowhere: the run names it in its error) unchanged."""
    from .models import list_models

    text = os.fspath(model)
    if text in list_models() or Path(text).expanduser().is_absolute():
        return model
    beside = Path(os.path.abspath(params_file.parent / text))
    if beside.exists():
        return str(beside)
    if Path(text).exists():
        here = Path(os.path.abspath(text))
        warnings.warn(f"detection.model {text!r} is not in {Path(os.path.abspath(params_file.parent))}, the folder of "
                      f"{params_file.name}, but in the working folder: using {here} (a relative path in a parameter "
                      "file is relative to the file's folder; write it so, or as an absolute path)", UserWarning,
                      stacklevel=3)
        return str(here)
    return model


def _refuse_numbers_as_text(group: str, klass: type, values: Mapping[str, Any]) -> None:
    """``ValueError`` naming a numeric setting of ``klass`` given as text that reads as a number (``"1e3"`` in
    quotes): a number belongs there, and a quoted one is most likely a slip of the file's author."""
    for f in dataclasses.fields(klass):
        value = values.get(f.name)
        numeric = ("float" in f.type or "int" in f.type) and "str" not in f.type and "tuple" not in f.type
        if numeric and isinstance(value, str) and _reads_as_number(value):
            underscore = f" and without '_' ({value.replace('_', '')})" if "_" in value else ""  # text in YAML 1.2
            raise ValueError(f"{group}.{f.name} must be a number, got the text {value!r}: write the number without "
                             f"quotes{underscore}")


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
