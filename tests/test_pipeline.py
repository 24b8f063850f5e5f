"""pipeline: footprint binarisation, writers (atomic), output-folder guard, and run() on a simulated movie."""
import numpy as np
import pytest
import scipy.sparse as sp

from cellfie_caiman import pipeline
from cellfie_caiman.params import Params


def _f_order(footprints):
    """(K, rows, cols) -> (rows*cols, K) with pixel i + j*rows (CaImAn's layout), computed pixel by pixel."""
    k, rows, cols = footprints.shape
    A = np.zeros((rows * cols, k))
    for i in range(rows):
        for j in range(cols):
            A[i + j * rows] = footprints[:, i, j]
    return A


# ----------------------------------------------------------------------------------------------- binarisation

def test_footprints_to_masks_keeps_peak_component_above_threshold():
    rows, cols = 30, 40
    yy, xx = np.mgrid[:rows, :cols]
    blob = np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / (2 * 3.0**2))
    far = 0.5 * np.exp(-((yy - 22) ** 2 + (xx - 32) ** 2) / (2 * 1.5**2))  # separate, above 0.2 of the peak
    ring = (np.hypot(yy - 15, xx - 20) <= 5) & (np.hypot(yy - 15, xx - 20) > 2)  # a hole in the middle
    fps = np.stack([blob + far, ring * 1.0, np.zeros((rows, cols))])
    masks = pipeline.footprints_to_masks(sp.csc_matrix(_f_order(fps)), (rows, cols), thr=0.2)
    assert masks.shape == (3, rows, cols) and masks.dtype == bool
    # naive expectation: the blob's pixels above 0.2 of its peak (the far blob is excluded: not connected)
    np.testing.assert_array_equal(masks[0], blob > 0.2)
    np.testing.assert_array_equal(masks[1], np.hypot(yy - 15, xx - 20) <= 5)  # hole filled
    assert not masks[2].any()
    # dense input gives the same
    np.testing.assert_array_equal(pipeline.footprints_to_masks(_f_order(fps), (rows, cols)), masks)


def test_footprints_to_masks_checks_dims():
    with pytest.raises(ValueError, match="pixels"):
        pipeline.footprints_to_masks(np.zeros((10, 2)), (4, 4))


def test_best_overlap_scores():
    a = np.zeros((3, 10, 10), bool)
    a[0, :3, :3] = a[1, 5:, 5:] = a[2, 0, 9] = True
    seeds = np.zeros((2, 10, 10), bool)
    seeds[0, :4, :4] = seeds[1, 6:, 6:] = True
    np.testing.assert_array_equal(pipeline._best_overlap_scores(a, seeds, np.array([0.9, 0.6])), [0.9, 0.6, np.nan])


# ------------------------------------------------------------------------------------------------------ writers

def test_traces_csv(tmp_path):
    traces = np.random.default_rng(0).normal(size=(3, 7))
    path = pipeline.write_traces_csv(tmp_path / "t.csv", traces, fr=7.5)
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
        pipeline.write_traces_csv(path, np.ones((2, 50)), fr=30.0)
    assert path.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["traces.csv"]


def test_npz_reads_back_with_np_load(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"masks": rng.random((3, 40, 50)) < 0.1, "component": np.arange(3, dtype=np.int64),
              "detection_diameter": np.float64(np.nan), "prob_map": rng.random((40, 50)).astype(np.float32),
              "empty": np.zeros((0, 40, 50), bool)}
    pipeline._write_npz(tmp_path / "masks.npz", **arrays)
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
        pipeline._write_npz(tmp_path / "masks.npz", masks=np.zeros((2, 2, 2), bool))
    assert not list(tmp_path.iterdir())


def test_prepare_out_dir(tmp_path):
    out = pipeline.prepare_out_dir(tmp_path / "a" / "b", overwrite=False)
    assert out.is_dir()
    (out / "x").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite"):
        pipeline.prepare_out_dir(out, overwrite=False)
    assert pipeline.prepare_out_dir(out, overwrite=True) == out and (out / "x").exists()
    with pytest.raises(FileExistsError, match="not a folder"):
        pipeline.prepare_out_dir(out / "x", overwrite=True)


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
