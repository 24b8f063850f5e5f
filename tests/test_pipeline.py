"""pipeline: parameters, the run's summary, and run() on a simulated movie."""
import numpy as np
import pytest

from cellfie_caiman import pipeline
from cellfie_caiman.params import Params


def test_as_params(tmp_path):
    p = Params.from_dict({"data": {"fr": 7.5}})
    assert pipeline.as_params(None) == Params()
    assert pipeline.as_params(p) is p
    assert pipeline.as_params({"data": {"fr": 7.5}}) == p
    p.save(tmp_path / "p.yaml")
    assert pipeline.as_params(tmp_path / "p.yaml") == p
    with pytest.raises(TypeError, match="params"):
        pipeline.as_params(3)
    with pytest.raises(ValueError, match="backend"):
        pipeline.as_params({"refine": {"backend": "fast"}})


def test_run_result_summary_lists_counts_scores_and_times(tmp_path):
    from cellfie_caiman.evaluate import MatchResult

    m = MatchResult(8, 2, 4, 0.8, 8 / 12, 16 / 22, [], None)
    r = pipeline.RunResult(out_dir=tmp_path, source="m.tif", shape=(100, 64, 48), backend="builtin", n_detected=12,
                           n_components=11, n_accepted=10, timings={"load": 0.5, "refine": 2.25},
                           scores={"refined": {"caiman": m, "iou": m}}, n_gt=12)
    text = r.summary()
    assert "100 frames of 64x48" in text and "12 detected" in text and "10 accepted" in text
    assert "0.727" in text and "refine 2.2" in text and "total 2.8" in text
    assert r.f1("refined") == pytest.approx(16 / 22) and r.f1("detected") is None


def test_run_without_caiman_fails_before_any_work(tmp_path, monkeypatch):
    import sys

    from cellfie_caiman.cnmf.caiman_adapter import caiman_available

    monkeypatch.setitem(sys.modules, "caiman", None)  # importlib treats this as "not installed"
    caiman_available.cache_clear()
    try:
        # a movie that does not exist: any step that ran before the check would fail with another error
        with pytest.raises(ImportError, match="backend builtin"):
            pipeline.run(tmp_path / "missing.tif", tmp_path / "out", {"refine": {"backend": "caiman"}},
                         progress=False)
    finally:
        caiman_available.cache_clear()
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------- run

@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from cellfie_caiman.simulate import simulate

    sim = simulate(300, (80, 80), 12, seed=3, diameter=12.0, rate=1.0)  # active enough for 10 s
    path = tmp_path_factory.mktemp("sim") / "movie.npy"
    np.save(path, sim.movie)
    return sim, path


def test_run_scores_against_simulated_truth(simulated, tmp_path):
    sim, path = simulated
    from cellfie_caiman.cnmf.caiman_adapter import caiman_available

    params = Params.from_dict({"data": {"fr": sim.fs, "decay_time": sim.decay_time, "neuron_diameter": 12.0},
                               "refine": {"backend": "auto"}, "output": {"pictures": False}})
    res = pipeline.run(path, tmp_path / "out", params, gt=sim.masks, progress=False)
    expected = "caiman" if caiman_available() else "builtin"
    assert res.backend == expected and res.shape == (300, 80, 80)
    assert params.refine.backend == "auto"  # the caller's object is left alone...
    assert Params.load(tmp_path / "out" / "params.json").refine.backend == expected  # ...the file says what ran
    assert set(res.scores) == {"detected", "refined"} and set(res.scores["refined"]) == {"caiman", "iou"}
    assert res.n_gt == len(sim.masks)
    # the pipeline's scores are match_rois on what it wrote
    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.rois import read_rois

    written = read_rois(tmp_path / "out" / "rois.json", (80, 80))
    assert len(written) == res.n_accepted
    for rule in ("caiman", "iou"):
        expected = match_rois(sim.masks, written, rule=rule)
        assert res.scores["refined"][rule][:6] == expected[:6]  # tp, fp, fn, precision, recall, f1
    # simulated neurons are easy: most are found
    assert res.f1("detected") > 0.6, res.summary()
    assert res.f1("refined") > 0.5, res.summary()
    assert list(res.timings) == ["load", "summary", "detect", "refine", "evaluate", "save"]
    assert res.estimates.A.shape[1] == res.n_components and len(res.initialization.masks) == res.n_detected
    # accepted on the networks' score alone: neither the trace's SNR nor the space correlation passed (naive count)
    est = res.estimates
    alone = [k for k in est.idx_components if est.SNR_comp[k] <= 2.5 and est.r_values[k] < 0.8]
    assert res.n_accepted_by_score == len(alone)
    assert (f"({len(alone)} on the networks' score alone" in res.summary()) == (len(alone) > 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["results.hdf5", "rois.json", "masks.npz", "traces.csv", "params.json", "provenance.json"])


def test_run_takes_the_frame_rate_the_movie_file_records_and_warns_when_there_is_none(simulated, tmp_path):
    """An NWB movie recorded at 7.5 Hz is refined, timed and saved at 7.5 Hz unless data.fr says otherwise; an
    array has no rate: 30 Hz, said in a warning."""
    sim, path = simulated
    import h5py
    from test_io import write_nwb

    write_nwb(tmp_path / "m.nwb", sim.movie.astype(np.float32), rate=7.5)
    params = {"data": {"decay_time": sim.decay_time, "neuron_diameter": 12.0}, "refine": {"backend": "builtin"},
              "output": {"pictures": False, "nwb": True}}
    res = pipeline.run(tmp_path / "m.nwb", tmp_path / "a", params, progress=False)
    assert Params.load(tmp_path / "a" / "params.json").data.fr == 7.5
    times = np.loadtxt(tmp_path / "a" / "traces.csv", delimiter=",", skiprows=1, usecols=1)
    np.testing.assert_allclose(times, np.arange(300) / 7.5, atol=1e-6)
    with h5py.File(tmp_path / "a" / "results.nwb", "r") as f:
        rates = [f[name].attrs["rate"] for name in _visit(f) if name.endswith("starting_time")]
        external = [f[name][0] for name in _visit(f) if name.endswith("external_file")]
    assert rates and all(rate == 7.5 for rate in rates)
    assert [x.decode() if isinstance(x, bytes) else x for x in external] == ["../m.nwb"]  # from results.nwb
    assert res.estimates.params["data"]["fr"] == 7.5
    # the run's three ROI files hold the same masks, so evaluate scores them alike
    from cellfie_caiman.rois import read_rois

    rois = read_rois(tmp_path / "a" / "rois.json", (80, 80))
    assert len(rois) == res.n_accepted > 0
    for name in ("results.hdf5", "results.nwb"):
        np.testing.assert_array_equal(read_rois(tmp_path / "a" / name), rois)
    with pytest.warns(UserWarning, match="assuming 30 Hz"):
        pipeline.run(sim.movie[:60], tmp_path / "b", {**params, "output": {"pictures": False}}, progress=False)
    assert Params.load(tmp_path / "b" / "params.json").data.fr == 30.0


def _visit(f) -> list[str]:
    names = []
    f.visit(names.append)
    return names


def test_run_rejects_mismatched_ground_truth(simulated, tmp_path):
    sim, path = simulated
    with pytest.raises(ValueError, match="ground-truth"):
        pipeline.run(path, tmp_path / "out", gt=np.zeros((2, 10, 10), bool), progress=False)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        pipeline.run(path, tmp_path / "out2", gt=tmp_path / "nope.json", progress=False)
    assert not list(tmp_path.iterdir())  # bad input creates no output folder


def test_run_with_nothing_accepted_still_writes_consistent_outputs(simulated, tmp_path):
    sim, path = simulated
    params = {"data": {"fr": sim.fs, "decay_time": sim.decay_time, "neuron_diameter": 12.0},
              "refine": {"backend": "builtin"}, "quality": {"min_SNR": 1e9, "rval_thr": 2.0, "min_cnn_thr": 2.0},
              "output": {"gif_frames": 20}}
    res = pipeline.run(path, tmp_path / "out", params, progress=False)
    assert res.n_accepted == 0 and res.n_components > 0
    out = tmp_path / "out"
    assert (out / "traces.csv").read_text().splitlines()[0] == "frame,time_s"
    assert len(np.loadtxt(out / "traces.csv", delimiter=",", skiprows=1)) == 300
    from cellfie_caiman.rois import read_rois

    assert read_rois(out / "rois.json", (80, 80)).shape == (0, 80, 80)
    npz = np.load(out / "masks.npz")
    assert npz["masks"].shape == (0, 80, 80) and not npz["accepted"].any()
    assert npz["detection_diameter"] == 12.0 and "somata of 12.0 px" in res.summary()  # the diameter it was given
    assert (out / "traces.png").is_file() and (out / "contours.png").is_file()  # rejected components shown


def test_a_non_empty_output_folder_is_refused_before_anything_else_is_said(tmp_path):
    """The folder is checked first: no frame-rate warning (this movie records no rate) before the refusal."""
    import warnings

    np.save(tmp_path / "movie.npy", np.random.default_rng(0).random((20, 16, 16), dtype=np.float32))
    out = tmp_path / "out"
    out.mkdir()
    (out / "rois.json").write_text("[]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning raised before the refusal fails the test
        with pytest.raises(FileExistsError, match="overwrite=True"):
            pipeline.run(tmp_path / "movie.npy", out, {"refine": {"backend": "builtin"}})
    assert [p.name for p in out.iterdir()] == ["rois.json"]


def test_an_unknown_model_is_refused_before_the_movie_is_read(tmp_path):
    # a movie that does not exist: reading it first would raise a MovieError instead
    with pytest.raises(ValueError, match="unknown model 'nosuch'"):
        pipeline.run(tmp_path / "missing.tif", tmp_path / "out", {"detection": {"model": "nosuch"}}, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_whole_number_float_count_set_by_hand_runs(simulated, tmp_path):
    sim, path = simulated
    params = Params.from_dict({"data": {"fr": sim.fs, "decay_time": sim.decay_time, "neuron_diameter": 12.0},
                               "refine": {"backend": "none"}})
    params.output.gif_frames = 20.0  # checked (a whole number), then used as a count of frames
    pipeline.run(path, tmp_path / "out", params, progress=False)
    assert (tmp_path / "out" / "segmentation.gif").exists()
    assert Params.load(tmp_path / "out" / "params.json").output.gif_frames == 20


def test_params_json_fed_back_reproduces_the_run(simulated, tmp_path):
    sim, path = simulated
    first = {"data": {"decay_time": sim.decay_time}, "refine": {"backend": "builtin"}, "output": {"pictures": False}}
    with pytest.warns(UserWarning, match="assuming 30 Hz"):
        pipeline.run(path, tmp_path / "a", first, progress=False)
    pipeline.run(path, tmp_path / "b", tmp_path / "a" / "params.json", progress=False)  # no warning: fr recorded
    for name in ("rois.json", "traces.csv", "params.json"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text(), name
    a, b = np.load(tmp_path / "a" / "masks.npz"), np.load(tmp_path / "b" / "masks.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    import json

    record = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert record["params"] == json.loads((tmp_path / "b" / "params.json").read_text())


def test_neuron_diameter_and_a_disagreeing_pixel_size_warn_once_before_the_movie_is_read(tmp_path):
    """Both given: neuron_diameter is used, and one warning (at the start, before anything is read) says so."""
    import warnings

    from cellfie_caiman.io import MovieError

    params = {"data": {"neuron_diameter": 12.0, "pixel_size": 0.5, "soma_diameter_um": 12.0}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(MovieError):  # a movie that does not exist: the warning came before it was read
            pipeline.run(tmp_path / "missing.tif", tmp_path / "out", params, progress=False)
    said = [str(w.message) for w in caught if "pixel_size" in str(w.message)]
    assert len(said) == 1 and "(12 px)" in said[0] and "24 px" in said[0] and "using 12 px" in said[0], said


def test_a_bad_nwb_setting_fails_before_the_movie_is_read(tmp_path):
    with pytest.raises(ValueError, match="nwb.sex must be one of"):
        pipeline.run(tmp_path / "missing.tif", tmp_path / "out", {"nwb": {"sex": "female"}}, progress=False)
    assert not (tmp_path / "out").exists()


def test_run_writes_the_subject_and_session_of_the_nwb_settings(simulated, tmp_path):
    """results.nwb of a movie that is not NWB gets the subject DANDI requires from the nwb settings, which params.json
    and provenance.json record."""
    pynwb = pytest.importorskip("pynwb")
    import json
    import warnings
    from datetime import datetime, timedelta, timezone

    sim, path = simulated
    nwb = {"subject_id": "m7", "species": "Mus musculus", "sex": "F", "age": "P60D", "session_description": "V1",
           "session_start_time": "2023-05-17T09:30:00+02:00", "indicator": "GCaMP6s", "location": "VISp"}
    params = {"data": {"fr": sim.fs, "decay_time": sim.decay_time, "neuron_diameter": 12.0},
              "refine": {"backend": "builtin"}, "output": {"pictures": False, "nwb": True}, "nwb": nwb}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*DANDI")  # the subject is complete
        pipeline.run(path, tmp_path / "out", params, progress=False)
    with pynwb.NWBHDF5IO(str(tmp_path / "out" / "results.nwb"), "r") as io:
        f = io.read()
        subject = {k: getattr(f.subject, k) for k in ("subject_id", "species", "sex", "age")}
        start, description = f.session_start_time, f.session_description
        plane = next(iter(f.imaging_planes.values()))
        indicator, location = plane.indicator, plane.location
    assert subject == {k: nwb[k] for k in subject}
    assert start == datetime(2023, 5, 17, 7, 30, tzinfo=timezone.utc) and start.utcoffset() == timedelta(hours=2)
    assert (description, indicator, location) == ("V1", "GCaMP6s", "VISp")
    recorded = json.loads((tmp_path / "out" / "params.json").read_text())["nwb"]
    assert {k: v for k, v in recorded.items() if v is not None} == nwb
    assert json.loads((tmp_path / "out" / "provenance.json").read_text())["params"]["nwb"] == recorded
    try:  # DANDI's own rules, where they are installed: nothing that blocks an upload
        from nwbinspector import Importance, inspect_nwbfile, load_config
    except ImportError:
        return
    found = inspect_nwbfile(nwbfile_path=str(tmp_path / "out" / "results.nwb"), config=load_config("dandi"),
                            importance_threshold=Importance.CRITICAL)
    blocking = [m.message for m in found]
    assert blocking == []


def test_a_model_file_is_recorded_absolute_so_params_json_runs_from_any_folder(simulated, tmp_path, monkeypatch):
    """A model given relative to the working folder: params.json records where it is, and the run it describes is
    reproduced from another folder."""
    import shutil

    from cellfie_caiman.models import model_file

    sim, path = simulated
    work, other = tmp_path / "work", tmp_path / "other"
    (work / "weights").mkdir(parents=True)
    other.mkdir()
    shutil.copy(model_file("default"), work / "weights" / "mine.npz")
    monkeypatch.chdir(work)
    params = {"data": {"fr": sim.fs, "neuron_diameter": 12.0}, "detection": {"model": "weights/mine.npz", "tta": False},
              "refine": {"backend": "none"}, "output": {"pictures": False}}
    pipeline.run(path, "out", params, progress=False)
    assert Params.load(work / "out" / "params.json").detection.model == str((work / "weights" / "mine.npz").resolve())
    monkeypatch.chdir(other)
    pipeline.run(path, "out", work / "out" / "params.json", progress=False)
    for name in ("rois.json", "params.json"):
        assert (work / "out" / name).read_bytes() == (other / "out" / name).read_bytes(), name
