"""outputs: the writers (atomic), the output-folder guard, and the scores drawn on the pictures."""
from pathlib import Path

import numpy as np
import pytest

from cellfie_caiman import outputs


def test_best_overlap_scores():
    a = np.zeros((3, 10, 10), bool)
    a[0, :3, :3] = a[1, 5:, 5:] = a[2, 0, 9] = True
    seeds = np.zeros((2, 10, 10), bool)
    seeds[0, :4, :4] = seeds[1, 6:, 6:] = True
    np.testing.assert_array_equal(outputs._best_overlap_scores(a, seeds, np.array([0.9, 0.6])), [0.9, 0.6, np.nan])


# ------------------------------------------------------------------------------------------------------ writers

def test_traces_csv(tmp_path):
    traces = np.random.default_rng(0).normal(size=(3, 7))
    path = outputs.write_traces_csv(tmp_path / "t.csv", traces, fr=7.5)
    lines = path.read_text().splitlines()
    assert lines[0] == "frame,time_s,roi_0,roi_1,roi_2"
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, 0], np.arange(7))
    np.testing.assert_allclose(table[:, 1], np.arange(7) / 7.5, atol=1e-6)
    np.testing.assert_allclose(table[:, 2:].T, traces, rtol=1e-6)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_writer_keeps_previous_file(tmp_path, monkeypatch, exc):
    path = tmp_path / "traces.csv"
    path.write_text("previous results\n")
    real = np.savetxt

    def dies_half_way(fname, table, **kwargs):
        real(fname, table[:2], **kwargs)  # part of the file is on disk...
        raise exc("interrupted")  # ...when the write is interrupted

    monkeypatch.setattr(np, "savetxt", dies_half_way)
    with pytest.raises(exc):
        outputs.write_traces_csv(path, np.ones((2, 50)), fr=30.0)
    assert path.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["traces.csv"]


def test_npz_reads_back_with_np_load(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"masks": rng.random((3, 40, 50)) < 0.1, "component": np.arange(3, dtype=np.int64),
              "detection_diameter": np.float64(np.nan), "prob_map": rng.random((40, 50)).astype(np.float32),
              "empty": np.zeros((0, 40, 50), bool)}
    outputs.write_npz(tmp_path / "masks.npz", **arrays)
    with np.load(tmp_path / "masks.npz") as npz:
        assert sorted(npz.files) == sorted(arrays)
        for name, value in arrays.items():
            assert npz[name].dtype == value.dtype and npz[name].shape == np.shape(value)
            np.testing.assert_array_equal(npz[name], value)


def test_interrupted_npz_leaves_nothing(tmp_path, monkeypatch):
    write_array = np.lib.format.write_array

    def dies(f, array, **kwargs):
        write_array(f, array[:1], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", dies)
    with pytest.raises(KeyboardInterrupt):
        outputs.write_npz(tmp_path / "masks.npz", masks=np.zeros((2, 2, 2), bool))
    assert not list(tmp_path.iterdir())


def test_prepare_out_dir(tmp_path):
    out = outputs.prepare_out_dir(tmp_path / "a" / "b", overwrite=False)
    assert out.is_dir()
    (out / "x").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite"):
        outputs.prepare_out_dir(out, overwrite=False)
    assert outputs.prepare_out_dir(out, overwrite=True) == out and (out / "x").exists()
    with pytest.raises(FileExistsError, match="not a folder"):
        outputs.prepare_out_dir(out / "x", overwrite=True)



# ------------------------------------------------------------------------------------------------------ pictures

def _summary(shape=(20, 30)):
    from cellfie_caiman.summary import SummaryImages

    rng = np.random.default_rng(0)
    images = {name: rng.random(shape).astype(np.float32) for name in SummaryImages._fields}
    return SummaryImages(**images)


def test_summary_png_colour_bars_say_what_their_values_are(tmp_path, monkeypatch):
    """Every summary PNG's colour bar is labelled: a unitless label for the ratio images, the movie's units for the
    intensity images (a bare number scale cannot be read)."""
    from cellfie_caiman import report

    figures = {}
    real_save = report._save

    def keep_figure(fig, path):
        figures[Path(path).stem] = fig
        return real_save(fig, path)

    monkeypatch.setattr(report, "_save", keep_figure)
    summary = _summary()
    outputs.write_summary_images(summary, tmp_path)
    assert sorted(figures) == sorted(summary._fields)
    labels = {}
    for name, fig in figures.items():
        image_ax, bar_ax = fig.axes  # the image, then its colour bar
        labels[name] = bar_ax.get_ylabel()
        assert labels[name], f"{name}.png: colour bar without a label"
    for name in ("std", "mean", "median", "max"):
        assert "movie units" in labels[name]
    for name in ("corr", "pnr", "pnr_filtered"):
        assert "unitless" in labels[name]


def test_summary_images_rewritten_leave_no_file_of_the_earlier_movie(tmp_path):
    """Writing a second movie's summary images into the folder of a first (``summary --overwrite``) leaves only the
    second's files: no PNG or optional image of the first next to them, and the user's own files kept."""
    import tifffile

    first = _summary((20, 30))
    outputs.write_summary_images(first, tmp_path, pictures=True)
    (tmp_path / "notes.txt").write_text("mine")
    second = _summary((12, 16))._replace(pnr_filtered=None)
    files = outputs.write_summary_images(second, tmp_path, pictures=False)
    expected = {f"{name}.tif" for name in second._fields if getattr(second, name) is not None}
    assert set(files) == expected
    assert {p.name for p in tmp_path.iterdir()} == expected | {"notes.txt"}
    for name in expected:
        assert tifffile.imread(tmp_path / name).shape == (12, 16)


def test_log_names_the_published_files_not_the_staging_folder(tmp_path, caplog):
    """With -v a run logs the files it wrote: at their place in the output folder, never at the hidden staging
    name that is gone once the run ends."""
    import logging

    from cellfie_caiman import report

    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.INFO, logger="cellfie_caiman"), outputs.staged(out) as stage:
        files = {"traces_picture": report.plot_traces(np.ones((2, 20)), stage / "traces.png", fr=10.0),
                 "traces": outputs.write_traces_csv(stage / "traces.csv", np.ones((2, 20)), fr=10.0)}
        published = outputs.publish(out, files)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in messages if ".partial-" in m], messages
    for path in published.values():
        assert path.exists() and any(str(path) in m for m in messages), messages


def test_a_non_empty_folder_is_refused_in_the_words_of_the_caller(tmp_path):
    """The Python API is told of ``overwrite=True``, the command line of ``--overwrite`` (not of both)."""
    (tmp_path / "results.hdf5").write_bytes(b"x")
    with pytest.raises(FileExistsError) as api:
        outputs.prepare_out_dir(tmp_path, overwrite=False)
    assert "overwrite=True" in str(api.value) and "--overwrite" not in str(api.value)
    with pytest.raises(FileExistsError) as cli:
        outputs.prepare_out_dir(tmp_path, overwrite=False, option="--overwrite")
    assert "--overwrite" in str(cli.value) and "overwrite=True" not in str(cli.value)
    assert [p.name for p in tmp_path.iterdir()] == ["results.hdf5"]


def test_nwb_session_of_an_nwb_movie_is_carried_to_the_results(tmp_path):
    """A run on an NWB movie gives results.nwb the movie's session start, subject and imaging plane (not the time
    of writing and the writer's placeholders)."""
    pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    from pynwb.file import Subject

    start = datetime(2023, 5, 17, 9, 30, tzinfo=timezone.utc)
    movie = _nwb_movie(tmp_path / "movie.nwb")
    session = outputs.nwb_session_of(movie)
    assert {k: session[k] for k in ("indicator", "location", "excitation_lambda", "emission_lambda")} == {
        "indicator": "GCaMP6s", "location": "VISp", "excitation_lambda": 940.0, "emission_lambda": 525.0}
    assert session["session_start_time"] == start
    animal = {"subject_id": "m7", "species": "Mus musculus", "sex": "M", "age": "P60D"}
    assert {k: session["subject"].get(k) for k in animal} == animal
    assert Subject(**session["subject"]).subject_id == "m7"  # what Estimates.to_nwb makes of it
    assert outputs.nwb_session_of(tmp_path / "movie.tif") == {}
    assert outputs.nwb_session_of(None) == {}
    broken = tmp_path / "broken.nwb"
    broken.write_bytes(b"not hdf5")
    with pytest.warns(UserWarning, match="broken.nwb: pynwb cannot read its session"):
        assert outputs.nwb_session_of(broken) == {}


def test_the_imaging_plane_of_the_movie_read_is_described_where_the_file_has_several(tmp_path):
    """Two planes, one raw movie each, and a motion-corrected stack of the second: results.nwb describes the plane
    of the movie that was read (a stack's through its original), and none when it is not known which."""
    pynwb = pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    from pynwb import TimeSeries
    from pynwb.image import ImageSeries
    from pynwb.ophys import CorrectedImageStack, MotionCorrection, OpticalChannel, TwoPhotonSeries

    from cellfie_caiman.io import load_movie

    nwb = pynwb.NWBFile(session_description="rec", identifier="rec",
                        session_start_time=datetime(2023, 5, 17, 9, 30, tzinfo=timezone.utc))
    device = nwb.create_device(name="scope")
    series = {}
    for name, indicator, location in (("upper", "GCaMP6s", "VISp L2/3"), ("lower", "jRGECO1a", "VISp L5")):
        plane = nwb.create_imaging_plane(
            name=name, optical_channel=OpticalChannel(name="ch", description="c", emission_lambda=525.0),
            description=name, device=device, excitation_lambda=940.0, imaging_rate=10.0, indicator=indicator,
            location=location)
        series[name] = TwoPhotonSeries(name=f"TwoPhotonSeries_{name}", data=np.zeros((4, 8, 8), np.uint16),
                                       imaging_plane=plane, unit="a.u.", rate=10.0)
        nwb.add_acquisition(series[name])
    stack = CorrectedImageStack(name="lower_corrected", original=series["lower"],
                                corrected=ImageSeries(name="corrected", data=np.ones((4, 8, 8), np.float32),
                                                      unit="a.u.", rate=10.0),
                                xy_translation=TimeSeries(name="xy_translation", data=np.zeros((4, 2)),
                                                          unit="pixels", rate=10.0))
    nwb.create_processing_module(name="ophys", description="mc").add(MotionCorrection(corrected_image_stacks=[stack]))
    path = tmp_path / "two_planes.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)

    def described(var_name=None):
        movie = load_movie(path, var_name=var_name)
        session = outputs.nwb_session_of(path, outputs.movie_dataset(movie))
        return session.get("indicator"), session.get("location")

    assert described("TwoPhotonSeries_upper") == ("GCaMP6s", "VISp L2/3")
    assert described("TwoPhotonSeries_lower") == ("jRGECO1a", "VISp L5")
    with pytest.warns(UserWarning, match="TwoPhotonSeries_upper"):  # the stack, read by default; the other plane named
        assert described() == ("jRGECO1a", "VISp L5")
    assert "indicator" not in outputs.nwb_session_of(path)  # which plane? not a guess


def _nwb_movie(path, subject=True, **session):
    """An NWB movie recorded 2023-05-17 09:30 UTC from mouse m7 (without a subject: ``subject=False``) through one
    imaging plane (GCaMP6s in VISp, 940 / 525 nm), written with pynwb; ``session``: more NWBFile arguments
    (experimenter, lab, ...)."""
    from datetime import datetime, timezone

    import pynwb
    from pynwb.file import Subject
    from pynwb.ophys import OpticalChannel, TwoPhotonSeries

    animal = Subject(subject_id="m7", species="Mus musculus", sex="M", age="P60D") if subject else None
    nwb = pynwb.NWBFile(session_description="rec", identifier="rec", subject=animal,
                        session_start_time=datetime(2023, 5, 17, 9, 30, tzinfo=timezone.utc), **session)
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="ch", description="green", emission_lambda=525.0),
        description="plane", device=nwb.create_device(name="scope"), excitation_lambda=940.0, imaging_rate=10.0,
        indicator="GCaMP6s", location="VISp")
    nwb.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", data=np.zeros((4, 8, 8), np.uint16),
                                        imaging_plane=plane, unit="a.u.", rate=10.0))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_nwb_settings_fill_in_and_override_the_session_of_an_nwb_movie(tmp_path):
    """The parameter file's nwb group wins where it says something; the movie's own session fills in the rest."""
    pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    from cellfie_caiman.params import NWBParams

    movie = _nwb_movie(tmp_path / "movie.nwb")
    session = outputs.nwb_session(NWBParams(subject_id="m8", strain="C57BL/6J", indicator="jGCaMP8f"), movie)
    assert {k: session["subject"].get(k) for k in ("subject_id", "species", "sex", "age", "strain")} == {
        "subject_id": "m8", "species": "Mus musculus", "sex": "M", "age": "P60D", "strain": "C57BL/6J"}
    assert session["indicator"] == "jGCaMP8f" and session["location"] == "VISp"
    assert session["excitation_lambda"] == 940.0
    assert session["session_start_time"] == datetime(2023, 5, 17, 9, 30, tzinfo=timezone.utc)


def test_nwb_settings_alone_make_the_session_of_another_movie(tmp_path):
    from datetime import datetime, timedelta, timezone

    from cellfie_caiman.params import NWBParams

    given = NWBParams(subject_id="007", species="Mus musculus", sex="F", age="P90D", session_description="V1",
                      session_start_time="2024-02-01T08:00:00Z", excitation_lambda=940.0)
    session = outputs.nwb_session(given, tmp_path / "movie.tif")
    assert session == {"subject": {"subject_id": "007", "species": "Mus musculus", "sex": "F", "age": "P90D"},
                       "session_description": "V1", "excitation_lambda": 940.0,
                       "session_start_time": datetime(2024, 2, 1, 8, tzinfo=timezone.utc)}
    plus_two = NWBParams(session_start_time="2024-02-01T10:00:00+02:00").start_time()
    assert plus_two == datetime(2024, 2, 1, 8, tzinfo=timezone.utc) and plus_two.utcoffset() == timedelta(hours=2)


def test_an_nwb_file_without_a_full_subject_is_announced(tmp_path):
    """DANDI refuses NWB files whose subject lacks an id, species, sex or age: the run says which to set."""
    pytest.importorskip("pynwb")
    import warnings

    from cellfie_caiman.params import NWBParams

    with pytest.warns(UserWarning, match=r"no subject.*DANDI.*nwb\.subject_id, nwb\.species, nwb\.sex, nwb\.age"):
        outputs.nwb_session(NWBParams(), tmp_path / "movie.tif")
    with pytest.warns(UserWarning, match=r"subject has no sex, age.*DANDI.*nwb\.sex, nwb\.age"):
        outputs.nwb_session(NWBParams(subject_id="m1", species="Mus musculus"), None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs.nwb_session(NWBParams(), _nwb_movie(tmp_path / "movie.nwb"))  # the movie's subject is complete
        outputs.nwb_session(NWBParams(subject_id="m1", species="Mus musculus", sex="U", age="P1Y"), None)
    with pytest.warns(UserWarning, match=r"no subject"):
        outputs.nwb_session(NWBParams(), _nwb_movie(tmp_path / "bare.nwb", subject=False))


def test_nwb_experimenter_lab_and_institution_fill_in_and_override_an_nwb_movie_s(tmp_path):
    """The movie's experimenter, lab, institution, description and keywords go to results.nwb; the nwb settings
    replace them field by field."""
    pytest.importorskip("pynwb")
    from cellfie_caiman.params import NWBParams

    movie = _nwb_movie(tmp_path / "movie.nwb", experimenter=["Doe, Jane"], lab="Smith lab",
                       institution="University of Oslo", experiment_description="gratings", keywords=["V1"])
    animal = {"subject_id": "m1", "species": "Mus musculus", "sex": "F", "age": "P60D"}
    session = outputs.nwb_session(NWBParams(lab="Jones lab", **animal), movie)
    assert {k: session[k] for k in ("experimenter", "lab", "institution", "experiment_description", "keywords")} == {
        "experimenter": ["Doe, Jane"], "lab": "Jones lab", "institution": "University of Oslo",
        "experiment_description": "gratings", "keywords": ["V1"]}
    given = NWBParams(experimenter=["Roe, Richard", "Doe, Jane"], keywords="calcium", **animal)
    session = outputs.nwb_session(given, movie)
    assert session["experimenter"] == ["Roe, Richard", "Doe, Jane"] and session["keywords"] == ["calcium"]
    bare = outputs.nwb_session(NWBParams(**animal), tmp_path / "movie.tif")
    assert not {"experimenter", "lab", "institution", "experiment_description", "keywords"} & set(bare)


@pytest.mark.parametrize("experimenter, named", [("Jane Doe", "'Jane Doe'"), (["Doe", "Jane"], "'Doe', 'Jane'")])
def test_an_experimenter_not_written_last_comma_first_is_announced(experimenter, named):
    """NWB and DANDI want 'Last, First'; a YAML flow list [Doe, Jane] makes two names of one: the run says so."""
    import warnings

    from cellfie_caiman.params import NWBParams

    animal = {"subject_id": "m1", "species": "Mus musculus", "sex": "U", "age": "P1Y"}
    with pytest.warns(UserWarning, match=rf"experimenter {named}.*'Last, First'"):
        outputs.nwb_session(NWBParams(experimenter=experimenter, **animal), None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs.nwb_session(NWBParams(experimenter=["Doe, Jane", "O'Neil-Smith, Ann B."], **animal), None)


def test_the_written_pnr_filtered_image_says_the_soma_diameter_it_was_computed_for(tmp_path, monkeypatch):
    """``cellfie-caiman summary --filter-diameter D`` wrote pnr_filtered.tif without D: read back, it could not say
    for which soma size it was filtered. Its TIFF metadata and PNG title now say so (when the images record it)."""
    import json

    import tifffile

    from cellfie_caiman import report

    titles = {}
    real_save = report._save

    def keep_title(fig, path):
        titles[Path(path).stem] = fig.axes[0].get_title()
        return real_save(fig, path)

    monkeypatch.setattr(report, "_save", keep_title)
    summary = _summary()._replace(filter_diameter=7.5)
    outputs.write_summary_images(summary, tmp_path / "known", batch_frames=250)
    with tifffile.TiffFile(tmp_path / "known" / "pnr_filtered.tif") as tif:
        assert json.loads(tif.pages[0].description)["filter_diameter_px"] == 7.5
    assert "for somata of 7.5 px" in titles["pnr_filtered"]
    assert not any("somata" in titles[name] for name in titles if name != "pnr_filtered")
    outputs.write_summary_images(_summary(), tmp_path / "unknown")  # no diameter recorded: nothing said
    with tifffile.TiffFile(tmp_path / "unknown" / "pnr_filtered.tif") as tif:
        assert "filter_diameter_px" not in json.loads(tif.pages[0].description)
    assert "somata" not in titles["pnr_filtered"]


# ------------------------------------------------------------------------------------------ results.nwb's movie

def _external_files(nwb_path: Path) -> list[str]:
    """The ``external_file`` paths of the ``TwoPhotonSeries`` of the NWB file ``nwb_path``, read back with pynwb."""
    import pynwb

    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        files = io.read().acquisition["TwoPhotonSeries"].external_file[:]
    return [x.decode() if isinstance(x, bytes) else str(x) for x in files]


def _is_relative(name: str) -> bool:
    """Whether ``name`` is a relative path on POSIX and on Windows (what nwbinspector asks)."""
    from pathlib import PurePosixPath, PureWindowsPath

    return not PurePosixPath(name).is_absolute() and not PureWindowsPath(name).is_absolute()


@pytest.mark.parametrize("kind", ["npy", "nwb"])
def test_results_nwb_names_its_movie_relative_to_itself(tmp_path, monkeypatch, kind):
    """results.nwb named its movie (an NWB file, or another kind of file) by its absolute path: moved or shared with
    the movie, it named a file that was not there, and nwbinspector reported it. The path is now relative to
    results.nwb's folder (not to the run's staging folder, nor to the working folder the run started from and
    named the movie from), and still leads to the movie once the movie's and the results' folders move together."""
    pytest.importorskip("pynwb")
    import shutil

    from cellfie_caiman import pipeline
    from cellfie_caiman.simulate import simulate

    sim = simulate(100, (64, 64), 6, seed=3, diameter=12.0, rate=1.0)
    project = tmp_path / "project"
    movie = project / "data" / f"movie.{kind}"
    movie.parent.mkdir(parents=True)
    if kind == "nwb":
        from test_io import write_nwb

        write_nwb(movie, sim.movie.astype(np.float32), rate=sim.fs)
    else:
        np.save(movie, sim.movie)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    params = {"data": {"fr": sim.fs, "decay_time": sim.decay_time, "neuron_diameter": 12.0},
              "refine": {"backend": "builtin"}, "output": {"pictures": False, "nwb": True}}
    pipeline.run(Path("..", "project", "data", movie.name), project / "results" / "run1", params, progress=False)
    nwb = project / "results" / "run1" / "results.nwb"
    (external,) = _external_files(nwb)
    assert _is_relative(external), external
    assert (nwb.parent / external).resolve() == movie.resolve()
    moved = tmp_path / "shared" / "project"
    shutil.move(project, moved)
    assert (moved / "results" / "run1" / external).resolve() == (moved / "data" / movie.name).resolve()
    inspector = pytest.importorskip("nwbinspector")
    found = {m.check_function_name: m.message
             for m in inspector.inspect_nwbfile(nwbfile_path=str(moved / "results" / "run1" / "results.nwb"))}
    assert "check_image_series_external_file_relative" not in found and "check_image_series_external_file_valid" \
        not in found, found


def _tiny_estimates():
    """Estimates of one 2 x 2 px footprint in a 4 x 4 px field over 5 frames."""
    import scipy.sparse

    from cellfie_caiman.cnmf.estimates import Estimates

    a = np.zeros((4, 4))
    a[1:3, 1:3] = 0.5
    return Estimates(A=scipy.sparse.csc_matrix(a.reshape(-1, 1, order="F")), C=np.ones((1, 5)), dims=(4, 4))


def test_to_nwb_names_an_absolute_movie_path_relative_to_where_the_nwb_file_is_read(tmp_path, monkeypatch, caplog):
    """``Estimates.to_nwb(raw_data_file=<absolute path>)``: relative to the NWB file's folder, or to ``relative_to``
    (the folder the file will be moved to); a movie on another Windows drive (no relative path there) keeps its
    absolute path, and the log says why. A relative path is taken as relative to the NWB file already."""
    pytest.importorskip("pynwb")
    import logging
    import os

    movie = tmp_path / "data" / "movie.tif"
    movie.parent.mkdir()
    movie.write_bytes(b"frames")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    est = _tiny_estimates()
    nwb = est.to_nwb(tmp_path / "out" / "deeper" / "r.nwb", fr=10.0, raw_data_file=str(movie))
    (external,) = _external_files(nwb)
    assert _is_relative(external) and (nwb.parent / external).resolve() == movie.resolve()
    final = tmp_path / "final"
    nwb = est.to_nwb(tmp_path / "stage" / "sub" / "r.nwb", fr=10.0, raw_data_file=str(movie), relative_to=final)
    (external,) = _external_files(nwb)
    assert _is_relative(external) and (final / external).resolve() == movie.resolve()
    assert _external_files(est.to_nwb(tmp_path / "r.nwb", fr=10.0, raw_data_file="data/movie.tif")) == [
        "data/movie.tif"]

    def other_drive(path, start=os.curdir):  # what ntpath.relpath does for a path on another drive
        raise ValueError("path is on mount 'D:', start on mount 'C:'")

    monkeypatch.setattr(os.path, "relpath", other_drive)
    with caplog.at_level(logging.WARNING, logger="cellfie_caiman"):
        nwb = est.to_nwb(tmp_path / "out" / "r2.nwb", fr=10.0, raw_data_file=str(movie))
    assert _external_files(nwb) == [str(movie)]
    assert any(str(movie) in r.getMessage() and "absolute" in r.getMessage() for r in caplog.records)


def _strict_json(text: str):
    """Parse as a strict JSON parser does: ``Infinity`` and ``NaN`` are not JSON."""
    import json

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_outputs_write_non_finite_numbers_as_null(tmp_path):
    """Python's json writes Infinity / NaN, which strict parsers (JavaScript, jq, R's jsonlite) refuse."""
    record = {"snr": [float("inf"), 3.0, float("nan")], "nested": {"r": -np.inf, "n": np.float64(np.nan)}, "k": 2}
    path = outputs.write_json(tmp_path / "provenance.json", record)
    assert _strict_json(path.read_text()) == {"snr": [None, 3.0, None], "nested": {"r": None, "n": None}, "k": 2}
