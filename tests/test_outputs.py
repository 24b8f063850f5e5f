"""outputs: the writers (atomic), the output-folder guard, and the scores drawn on the pictures."""
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

