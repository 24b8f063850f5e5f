"""cellfie_caiman.provenance: the record of what produced a result."""
import hashlib
import os

import numpy as np
import pytest


def test_file_sha256_is_hashlibs_and_follows_the_file(tmp_path):
    from cellfie_caiman.provenance import file_sha256

    path = tmp_path / "w.npz"
    path.write_bytes(b"first")
    assert file_sha256(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"second, longer")  # another size: not the cached digest
    assert file_sha256(path) == hashlib.sha256(b"second, longer").hexdigest()
    os.utime(path, ns=(0, 0))
    path.write_bytes(b"second, LONGER")  # same size, new modification time
    assert file_sha256(path) == hashlib.sha256(b"second, LONGER").hexdigest()


def test_file_sha256_of_a_file_rewritten_with_its_old_size_and_time_is_the_new_bytes(tmp_path):
    # FAT/exFAT (2 s) and some network filesystems (1 s) keep times coarser than a rewrite takes; a user's
    # os.utime or a copy tool can also put the old time back
    from cellfie_caiman.provenance import file_sha256

    path = tmp_path / "movie.tif"
    path.write_bytes(b"frames A")
    before = os.stat(path)
    assert file_sha256(path) == hashlib.sha256(b"frames A").hexdigest()
    with open(path, "r+b") as fh:  # in place: the same inode
        fh.write(b"frames B")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert file_sha256(path) == hashlib.sha256(b"frames B").hexdigest()


def test_a_model_given_by_path_is_hashed_and_a_changed_one_is_not(tmp_path):
    from cellfie_caiman.models import load_model, model_file, new_model
    from cellfie_caiman.provenance import provenance

    weights = model_file("default")
    record = provenance(model=str(weights))
    assert record["model"]["file"] == str(weights)
    assert record["model"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert provenance(model=load_model("default"))["model"]["sha256"] == record["model"]["sha256"]
    fresh = provenance(model=new_model())["model"]  # weights only in memory: no file to name
    assert fresh["file"] is None and fresh["sha256"] is None
    with pytest.raises(FileNotFoundError):
        provenance(model=tmp_path / "missing.npz")


def test_movie_record_of_an_array_and_of_a_file(tmp_path):
    from cellfie_caiman.io import load_movie
    from cellfie_caiman.provenance import provenance

    data = np.zeros((5, 8, 9), np.float32)
    np.save(tmp_path / "m.npy", data)
    record = provenance(movie=load_movie(tmp_path / "m.npy"), backend="none")["movie"]
    assert record["shape"] == [5, 8, 9] and record["dtype"] == "float32"
    assert record["path"] == str((tmp_path / "m.npy").resolve())
    assert record["size_bytes"] == (tmp_path / "m.npy").stat().st_size
    in_memory = provenance(movie=load_movie(data))["movie"]
    assert in_memory["shape"] == [5, 8, 9] and "path" not in in_memory and "dataset" not in in_memory


def test_the_dataset_read_from_an_hdf5_file_is_recorded(tmp_path):
    import h5py

    from cellfie_caiman.io import load_movie
    from cellfie_caiman.provenance import provenance

    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["mov"] = np.zeros((5, 8, 9), np.float32)
        f["registered/frames"] = np.ones((6, 8, 9), np.float32)
    record = provenance(movie=load_movie(tmp_path / "m.h5", var_name="registered/frames"))["movie"]
    assert record["dataset"] == "registered/frames" and record["shape"] == [6, 8, 9]
    with pytest.warns(UserWarning, match="registered/frames"):  # read by default: 'mov', the other one named
        assert provenance(movie=load_movie(tmp_path / "m.h5"))["movie"]["dataset"] == "mov"


def test_a_movie_file_is_hashed_and_the_parameters_are_recorded(tmp_path):
    from cellfie_caiman.io import load_movie
    from cellfie_caiman.params import Params
    from cellfie_caiman.provenance import provenance

    data = np.arange(5 * 8 * 9, dtype=np.float32).reshape(5, 8, 9)
    np.save(tmp_path / "m.npy", data)
    params = Params.from_dict({"data": {"fr": 7.5}})
    record = provenance(movie=load_movie(tmp_path / "m.npy"), params=params)
    assert record["movie"]["sha256"] == hashlib.sha256((tmp_path / "m.npy").read_bytes()).hexdigest()
    assert record["params"] == params.to_dict() and Params.from_dict(record["params"]) == params
    assert "sha256" not in provenance(movie=load_movie(data))["movie"]  # an array has no file
