"""Tests of cellfie_caiman.io against files written by the libraries that own each format."""
from __future__ import annotations

import errno
import os
import pickle
import re
import struct
import uuid
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from cellfie_caiman.io import (
    Movie,
    MovieError,
    NonFiniteWarning,
    decode_memmap_name,
    load_memmap,
    load_movie,
    save_memmap,
)

DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.fixture
def movie():
    rng = np.random.default_rng(0)
    return (rng.random((23, 11, 7)) * 1000).astype(np.float32)  # rows != cols so transposes show


def layout_offsets(T, d1, d2, order):
    """Element offset of (t, i, j) in a CaImAn memmap, straight from the layout equations (p = i + j*d1)."""
    t, i, j = np.meshgrid(np.arange(T), np.arange(d1), np.arange(d2), indexing="ij")
    p = i + j * d1
    return p * T + t if order == "C" else p + t * d1 * d2


# ---------------------------------------------------------------------------------------------------------------
# CaImAn memmaps
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["C", "F"])
def test_save_memmap_bytes_follow_caiman_layout(tmp_path, movie, order):
    T, d1, d2 = movie.shape
    fname = save_memmap(movie, "memmap_", order=order, directory=tmp_path, chunk_frames=5)
    assert Path(fname).name == f"memmap_d1_{d1}_d2_{d2}_d3_1_order_{order}_frames_{T}.mmap"
    raw = np.fromfile(fname, dtype="<f4")
    assert raw.size == T * d1 * d2
    np.testing.assert_array_equal(raw[layout_offsets(T, d1, d2, order)], movie)  # nothing added, unlike CaImAn
    # CaImAn's reader convention: images = reshape(Yr.T, [T] + dims, order='F')
    Yr, dims, T2 = load_memmap(fname)
    assert (dims, T2, Yr.shape) == ((d1, d2), T, (d1 * d2, T))
    np.testing.assert_array_equal(np.reshape(Yr.T, [T] + list(dims), order="F"), movie)
    m = load_movie(fname)
    assert m.shape == movie.shape and m.memmap_order == order and m.memmap_file == fname
    np.testing.assert_array_equal(m.to_array(), movie)
    np.testing.assert_array_equal(m[4:9], movie[4:9])


def test_save_memmap_default_directory_and_base_path(tmp_path, movie, monkeypatch):
    fname = save_memmap(movie, str(tmp_path / "sub" / "Yr"))
    assert Path(fname).parent == tmp_path / "sub"
    monkeypatch.chdir(tmp_path)
    fname = save_memmap(movie, "Yr", order="F")
    assert Path(fname).parent == tmp_path
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]  # no temporary left behind


def test_save_memmap_streams_from_a_lazy_source(tmp_path, movie):
    src = tmp_path / "m.tif"
    tifffile.imwrite(src, movie.astype(np.uint16), compression="zlib")
    fname = save_memmap(src, tmp_path / "x", chunk_frames=4)
    np.testing.assert_array_equal(load_movie(fname).to_array(), movie.astype(np.uint16).astype(np.float32))


@pytest.mark.parametrize("name", [
    "mov_d1_11_d2_7_d3_1_order_F_frames_23_.mmap",        # older names end in _frames_T_.mmap
    "mov_rig__d1_11_d2_7_d3_1_order_F_frames_23_.mmap",   # motion correction's names (double underscore)
    "run_d2_3_d1_11_d2_7_d3_1_order_C_frames_23.mmap",    # the value after the *last* occurrence of a key wins
])
def test_memmaps_written_by_hand_with_caiman_names(tmp_path, movie, name):
    T, d1, d2 = movie.shape
    order = "C" if "order_C" in name else "F"
    raw = np.empty(T * d1 * d2, np.float32)
    raw[layout_offsets(T, d1, d2, order)] = movie
    raw.tofile(tmp_path / name)
    assert decode_memmap_name(name) == {"d1": d1, "d2": d2, "d3": 1, "order": order, "T": T}
    np.testing.assert_array_equal(load_movie(tmp_path / name).to_array(), movie)
    Yr, dims, T2 = load_memmap(tmp_path / name)
    assert dims == (d1, d2) and T2 == T
    np.testing.assert_array_equal(Yr[:, 3], raw[layout_offsets(T, d1, d2, order)][3].ravel(order="F"))


def test_truncated_memmap_is_an_error_naming_the_file(tmp_path, movie):
    fname = Path(save_memmap(movie, "Yr", directory=tmp_path))
    data = fname.read_bytes()
    fname.write_bytes(data[:-4])
    for opener in (load_movie, load_memmap):
        with pytest.raises(MovieError, match=fname.name + ".*truncated"):
            opener(fname)


def test_memmap_with_undecodable_name(tmp_path):
    bad = tmp_path / "movie_frames.mmap"
    np.zeros(10, np.float32).tofile(bad)
    with pytest.raises(MovieError, match="movie_frames.mmap.*not a CaImAn memmap name"):
        load_movie(bad)


# ---------------------------------------------------------------------------------------------------------------
# TIFF, folders, HDF5, NWB, npy, arrays
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", [None, "zlib"])
def test_multipage_tiff(tmp_path, movie, compression):
    data = movie.astype(np.uint16)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, data, compression=compression)
    m = load_movie(path)
    assert (m.shape, m.dtype, m.n_frames, m.frame_shape, len(m)) == (data.shape, np.uint16, 23, (11, 7), 23)
    np.testing.assert_array_equal(m[3:8], data[3:8])
    np.testing.assert_array_equal(m[::4], data[::4])
    np.testing.assert_array_equal(m[[5, 1, 5]], data[[5, 1, 5]])
    np.testing.assert_array_equal(m[-1], data[-1])
    np.testing.assert_array_equal(m[2:6, 3:5, -2], data[2:6, 3:5, -2])
    out = m.read(3, 8)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data[3:8].astype(np.float32))
    m2 = pickle.loads(pickle.dumps(m))  # picklable (file handles are reopened)
    np.testing.assert_array_equal(m2[10], data[10])


def test_tiff_written_page_by_page(tmp_path, movie):
    data = movie.astype(np.int16)
    path = tmp_path / "pages.tiff"
    with tifffile.TiffWriter(path) as tw:
        for frame in data:
            tw.write(frame, compression="zlib", description="frame")
    np.testing.assert_array_equal(load_movie(path).to_array(), data.astype(np.float32))


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiff_of_stacks_appended_one_after_another_is_the_movie_of_all_its_frames(tmp_path, movie, compression):
    """A recording saved in pieces (tifffile's append, or several writes) is one movie, not its first piece."""
    data = movie.astype(np.uint16)
    path = tmp_path / "pieces.tif"
    for piece, append in ((data[:9], False), (data[9:20], True), (data[20:], True)):  # the last one: 3 frames
        tifffile.imwrite(path, piece, compression=compression, append=append, photometric="minisblack")
    assert len(tifffile.TiffFile(path).series) == 3
    m = load_movie(path)
    assert m.shape == data.shape
    np.testing.assert_array_equal(m.to_array(), data.astype(np.float32))
    np.testing.assert_array_equal(m.read(5, 22), data[5:22].astype(np.float32))


def test_tiff_of_stacks_of_different_frame_shapes_is_refused_with_the_series_named(tmp_path, movie):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(movie[:9].astype(np.uint16))
        tw.write(movie[9:, :5].astype(np.uint16))
    with pytest.raises(MovieError, match=r"2 image series \(\(9, 11, 7\) uint16, \(14, 5, 7\) uint16\).*series=k"):
        load_movie(path)


def test_tiff_of_several_multichannel_series_is_refused_not_joined_channels_as_frames(tmp_path, movie):
    """A (T, C, rows, cols) stack is refused; written in two pieces (or as an OME-TIFF of two positions) it must not
    become a movie whose frames alternate between the channels."""
    data = movie.astype(np.uint16)
    tcyx = np.stack([data, data // 10], axis=1)  # (23, 2, 11, 7): activity and a structural channel
    with tifffile.TiffWriter(tmp_path / "pieces.tif") as tw:
        tw.write(tcyx[:10])
        tw.write(tcyx[10:])
    with tifffile.TiffWriter(tmp_path / "positions.ome.tif", ome=True) as tw:
        tw.write(tcyx, metadata={"axes": "TCYX"})
        tw.write(tcyx, metadata={"axes": "TCYX"})
    for name, first in (("pieces.tif", (10, 2, 11, 7)), ("positions.ome.tif", (23, 2, 11, 7))):
        assert [s.shape for s in tifffile.TiffFile(tmp_path / name).series][0] == first
        with pytest.raises(MovieError, match=rf"{name}: image series 0 has shape {re.escape(str(first))}.*channels"
                                             r".*2 image series"):
            load_movie(tmp_path / name)


def test_a_colour_image_is_refused_not_read_as_a_movie_of_its_rows(tmp_path, movie):
    """An RGB TIFF (rows, cols, 3) would otherwise be a movie of `rows` frames of cols x 3 pixels."""
    rgb = np.stack([movie[0], movie[1], movie[2]], axis=-1).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert tifffile.TiffFile(tmp_path / "rgb.tif").series[0].axes == "YXS"
    with pytest.raises(MovieError, match=r"rgb.tif: a colour \(RGB\) image"):
        load_movie(tmp_path / "rgb.tif")
    tifffile.imwrite(tmp_path / "grey.tif", rgb[..., 1], photometric="minisblack")  # one grey image: not a movie
    with pytest.raises(MovieError, match="expected a 3-D movie"):
        load_movie(tmp_path / "grey.tif")


def _recipe_reads(message: str, path) -> np.ndarray:
    """What the ``tifffile.imread(path)[...]`` an error message suggests reads from ``path``."""
    found = re.search(r"tifffile\.imread\(path\)\[([-:\d, ]+)\]", message)
    assert found, message
    index = tuple(slice(None) if tok.strip() == ":" else int(tok) for tok in found.group(1).split(","))
    return tifffile.imread(path)[index]


def _hyperstack(frames: np.ndarray, n_extra: int) -> np.ndarray:
    """``frames`` (T, rows, cols) with ``n_extra`` axes of 2 entries after T (channels or planes), each entry other
    values: entry 0 of every extra axis is ``frames`` itself."""
    stack = frames
    for _ in range(n_extra):
        stack = np.stack([stack, stack + 1000], axis=1)
    return stack


@pytest.mark.parametrize("writer", ["imagej", "ome"])
@pytest.mark.parametrize("axes, held", [("TCYX", "23 time points x 2 channels"), ("ZCYX", "23 z-planes x 2 channels"),
                                        ("TZYX", "23 time points x 2 z-planes"),
                                        ("TZCYX", "23 time points x 2 z-planes x 2 channels")])
def test_tiff_hyperstack_is_refused_naming_its_axes_and_how_to_read_one_movie(tmp_path, movie, writer, axes, held):
    """An ImageJ hyperstack or OME-TIFF of several channels or z-planes per frame is not a movie: the error names its
    axes as tifffile reads them and a selection that reads one channel / plane as a (frames, rows, cols) movie."""
    data = movie.astype(np.uint16)
    stack = _hyperstack(data, len(axes) - 3)
    path = tmp_path / f"hyper.{'ome.' if writer == 'ome' else ''}tif"
    tifffile.imwrite(path, stack, imagej=writer == "imagej", ome=writer == "ome", metadata={"axes": axes})
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == axes and tf.series[0].shape == stack.shape
    with pytest.raises(MovieError, match=rf"hyper.*tif: .*axes {axes}.*{held}.*not one movie") as err:
        load_movie(path)
    picked = _recipe_reads(str(err.value), path)
    np.testing.assert_array_equal(picked, data)  # the first channel / plane at every time point
    np.testing.assert_array_equal(load_movie(picked)[:], data)


def test_scanimage_recording_of_two_channels_is_refused_saying_how_to_read_one(tmp_path, movie):
    """ScanImage saves the channels of each frame as consecutive pages (tifffile reads axes TCYX): they are not
    frames of one movie."""
    data = np.concatenate([movie, movie[::-1]])[:24].astype(np.int16)  # pages: frame 0 ch 1, frame 0 ch 2, ...
    frame_data = ("SI.hChannels.channelSave = [1;2]\nSI.hStackManager.numSlices = 1\n"
                  "SI.hStackManager.actualNumSlices = 1\nSI.hFastZ.enable = false\nSI.hRoiManager.scanFrameRate = 30\n")
    path = tmp_path / "si.tif"
    scanimage_tiff(path, data, frame_data)
    with pytest.raises(MovieError, match=r"si.tif: .*axes TCYX.*12 time points x 2 channels") as err:
        load_movie(path)
    np.testing.assert_array_equal(_recipe_reads(str(err.value), path), data[0::2])  # channel 1's frames


@pytest.mark.parametrize("how", ["imagej", "ome", "shaped", "imagej composite", "ome named"])
def test_tiff_of_channels_of_one_image_is_refused_not_read_as_frames(tmp_path, movie, how):
    """Channels (axes CYX) are not frames. tifffile labels a 3-D array C by default for ImageJ and OME-TIFF, so
    there a few channels (at most 8) are channels, and more are channels when the file describes them (ImageJ's
    composite or colour display, OME channel names); a tifffile shaped file labels an axis C only when told to."""
    data = movie.astype(np.uint16)
    image = data[:3] if how in ("imagej", "ome") else data
    metadata = {"axes": "CYX"}
    if how == "imagej composite":
        metadata["mode"] = "composite"
    if how == "ome named":
        metadata["Channel"] = {"Name": [f"ch{k}" for k in range(len(image))]}
    path = tmp_path / "channels.tif"
    tifffile.imwrite(path, image, imagej=how.startswith("imagej"), ome=how.startswith("ome"), metadata=metadata)
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == "CYX" and tf.series[0].shape == image.shape
    with pytest.raises(MovieError, match=rf"channels.tif: .*axes CYX.*{len(image)} channels of one 11 x 7 px image, "
                                         r"not a movie.*tifffile.imread\(path\)"):
        load_movie(path)
    np.testing.assert_array_equal(load_movie(tifffile.imread(path))[:], image)  # the way out the message gives


@pytest.mark.parametrize("kwargs, axes", [
    ({}, "QYX"),                                              # tifffile's plain TIFF
    ({"imagej": True}, "CYX"),                                 # tifffile's defaults label the frames channels
    ({"ome": True}, "CYX"),
    ({"imagej": True, "metadata": {"axes": "TYX"}}, "TYX"),
    ({"ome": True, "metadata": {"axes": "TYX"}}, "TYX"),
    ({"imagej": True, "metadata": {"axes": "ZYX"}}, "ZYX"),   # ImageJ's plain stack: slices
    ({"ome": True, "metadata": {"axes": "ZYX"}}, "ZYX"),      # Bio-Formats' plain stack: SizeZ
    ({"description": "ImageJ=1.54f\nimages=23\nslices=23\nloop=false\n", "metadata": None}, "ZYX"),
    ({"imagej": True, "metadata": {"axes": "TCYX"}, "channels": 1}, "TYX")])
def test_tiff_movies_as_writers_label_them_by_default_are_read_as_frames(tmp_path, movie, kwargs, axes):
    """Movies as ImageJ, Bio-Formats and tifffile store them by default (frames labelled T, Z, C or nothing, or
    singleton channels) stay movies."""
    data = movie.astype(np.uint16)
    kwargs = dict(kwargs)
    stack = data[:, None] if kwargs.pop("channels", None) else data
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, stack, **kwargs)
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == axes
    np.testing.assert_array_equal(load_movie(path)[:], data)


def test_folder_of_one_plane_per_file_of_several_channels_is_refused(tmp_path, movie):
    """One frame per file of a multi-file OME-TIFF series of 2 channels, in one numbered sequence (channel 0 and 1 of
    frame 0, then of frame 1, ...): the files' OME metadata place them in 2 channels, so they are not one movie;
    the files of one channel alone are."""
    data = movie[:6].astype(np.uint16)
    T, rows, cols = data.shape
    names = [f"img_{k:06d}.ome.tif" for k in range(2 * T)]
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in names]
    planes = "".join(f'<TiffData FirstT="{k // 2}" FirstZ="0" FirstC="{k % 2}" IFD="0" PlaneCount="1"><UUID '
                     f'FileName="{name}">{u}</UUID></TiffData>' for k, (name, u) in enumerate(zip(names, uuids,
                                                                                                  strict=True)))
    both, one = tmp_path / "both", tmp_path / "one"
    both.mkdir()
    one.mkdir()
    for k, name in enumerate(names):
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
               f'UUID="{uuids[k]}"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" '
               f'SizeX="{cols}" SizeY="{rows}" SizeC="2" SizeZ="1" SizeT="{T}"><Channel ID="Channel:0:0" '
               f'SamplesPerPixel="1"/><Channel ID="Channel:0:1" SamplesPerPixel="1"/>{planes}</Pixels></Image></OME>')
        frame = data[k // 2] + 1000 * (k % 2)
        for folder in (both, one) if k % 2 == 0 else (both,):
            tifffile.imwrite(folder / name, frame, description=xml, metadata=None)
    with pytest.raises(MovieError, match=r"both: .*OME metadata place them in 2 channels"):
        load_movie(both)
    np.testing.assert_array_equal(load_movie(one)[:], data)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_ome_tiff_of_several_positions_is_refused_naming_them_not_joined_in_time(tmp_path, movie, compression):
    """An OME-TIFF of two stage positions (two OME Images, each (T, rows, cols)) is not one movie of 2T frames."""
    data = movie.astype(np.uint16)
    path = tmp_path / "positions.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(data, metadata={"axes": "TYX", "Name": "Pos0"}, compression=compression)
        tw.write(data[::-1], metadata={"axes": "TYX", "Name": "Pos1"}, compression=compression)
    with tifffile.TiffFile(path) as tf:  # what the file holds, as tifffile reads it
        assert tf.is_ome and [(s.name, s.shape) for s in tf.series] == [("Pos0", data.shape), ("Pos1", data.shape)]
    with pytest.raises(MovieError, match=r"positions.ome.tif: OME-TIFF of 2 images.*series 0 'Pos0' \(23, 11, 7\)"
                                         r".*series 1 'Pos1' \(23, 11, 7\).*tifffile.imread\(path, series=k\)"):
        load_movie(path)
    # the way the message says to pick one gives that position's movie
    np.testing.assert_array_equal(load_movie(tifffile.imread(path, series=1))[:], data[::-1])


def test_multifile_ome_tiff_of_one_position_per_file_is_each_file_s_own_movie(tmp_path, movie):
    """Micro-Manager writes one file per position, each file's OME-XML describing all positions: a file is the movie
    of its own position (the other files' images are not counted as positions of this file)."""
    data = [movie.astype(np.uint16), movie[::-1].astype(np.uint16)]
    names, uuids = ["Pos0.ome.tif", "Pos1.ome.tif"], [f"urn:uuid:{uuid.uuid4()}" for _ in range(2)]
    T, rows, cols = movie.shape
    images = "".join(f'<Image ID="Image:{k}" Name="Pos{k}"><Pixels ID="Pixels:{k}" DimensionOrder="XYCZT" '
                     f'Type="uint16" SizeX="{cols}" SizeY="{rows}" SizeC="1" SizeZ="1" SizeT="{T}"><Channel '
                     f'ID="Channel:{k}:0" SamplesPerPixel="1"/><TiffData IFD="0" PlaneCount="{T}"><UUID '
                     f'FileName="{names[k]}">{uuids[k]}</UUID></TiffData></Pixels></Image>' for k in range(2))
    for k in range(2):
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
               f'UUID="{uuids[k]}">{images}</OME>')
        tifffile.imwrite(tmp_path / names[k], data[k], description=xml, metadata=None)
    with tifffile.TiffFile(tmp_path / names[0]) as tf:
        assert [s.name for s in tf.series] == ["Pos0", "Pos1"]
    for name, expected in zip(names, data, strict=True):
        with load_movie(tmp_path / name) as m:
            np.testing.assert_array_equal(m[:], expected)


@pytest.mark.parametrize("axes", ["RYX", "MYX"])
def test_tiff_of_positions_or_tiles_along_one_axis_is_refused_not_read_as_frames(tmp_path, movie, axes):
    """One series whose first axis is a stage position or mosaic tile (tifffile's R / M: an OME-TIFF's, a tifffile
    shaped TIFF's) is not a movie."""
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, movie[:4].astype(np.uint16), ome=axes == "RYX", metadata={"axes": axes},
                     photometric="minisblack")
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == axes and tf.series[0].shape == (4, 11, 7)
    with pytest.raises(MovieError, match=rf"tiles.tif: .*axes {axes}.*4 .*positions or tiles"):
        load_movie(path)


def _imagej_frame_bytes(path):
    """(offset of the first frame's data, bytes per frame) of a contiguous ImageJ TIFF, from its first page."""
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        return page.dataoffsets[0], page.nbytes


@pytest.mark.parametrize("extra", [0, 50])  # cut between frames, or inside the 41st frame
def test_truncated_imagej_hyperstack_is_an_error_saying_how_many_frames_it_holds(tmp_path, movie, extra):
    """An ImageJ TIFF (frame data first, the other pages' headers after it) cut short after 40 of 100 frames: an
    error saying so and how to read the frames present, not 'a 2-D image'."""
    data = np.concatenate([movie] * 5)[:100].astype(np.uint16)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, data, imagej=True, metadata={"axes": "TYX", "finterval": 0.1})
    offset, frame_bytes = _imagej_frame_bytes(full)
    path = tmp_path / "cut.tif"
    path.write_bytes(full.read_bytes()[:offset + 40 * frame_bytes + extra])
    with pytest.raises(MovieError, match=r"cut.tif: truncated TIFF: .*40 complete frames of the 100") as err:
        load_movie(path)
    recipe = re.search(r"numpy.memmap\(path, dtype='(.+?)', mode='r', offset=(\d+), shape=\((\d+), (\d+), (\d+)\)\)",
                       str(err.value))
    dtype, off, shape = recipe.group(1), int(recipe.group(2)), tuple(int(g) for g in recipe.groups()[2:])
    np.testing.assert_array_equal(np.memmap(path, dtype=dtype, mode="r", offset=off, shape=shape), data[:40])


def test_truncated_tiff_of_pages_each_with_its_header_says_how_many_frames_it_holds(tmp_path, movie):
    """A compressed ImageJ TIFF (each page's header beside its data) cut after 10 full pages of 23."""
    data = movie.astype(np.uint16)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, data, imagej=True, compression="zlib")
    with tifffile.TiffFile(full) as tf:
        end = tf.pages[10].dataoffsets[0] + 3  # inside the 11th page's data
    path = tmp_path / "cut.tif"
    path.write_bytes(full.read_bytes()[:end])
    with pytest.raises(MovieError, match=r"cut.tif: truncated TIFF: .*10 complete frames of the 23.*"
                                         r"tifffile.imread\(path, key=range\(10\)\)"):
        load_movie(path)
    np.testing.assert_array_equal(tifffile.imread(path, key=range(10)), data[:10])


def scanimage_tiff(path, pages, frame_data):
    """A ScanImage (2016+) BigTIFF as ScanImage writes it: the magic 0x07030301 at byte 16, then its non-varying
    frame data (also each page's Software tag) and ROI data, then one int16 page per frame with its varying data as
    the ImageDescription."""
    pages = np.asarray(pages, dtype="<i2")
    n, rows, cols = pages.shape
    text = frame_data.encode() + b"\0"
    out = bytearray(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))
    out += struct.pack("<IIII", 0x07030301, 3, len(text), 3) + text + b"{}\0"
    link = 8  # where the offset of the next IFD goes
    for k in range(n):
        blocks = {}
        for tag, blob in ((270, f"frameNumbers = {k + 1}\n".encode() + b"\0"), (305, text),
                          (273, pages[k].tobytes())):
            out += b"\0" * (-len(out) % 8)
            blocks[tag] = (len(out), len(blob))
            out += blob
        out += b"\0" * (-len(out) % 8)
        struct.pack_into("<Q", out, link, len(out))
        entries = [(256, 4, 1, cols), (257, 4, 1, rows), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
                   (270, 2, blocks[270][1], blocks[270][0]), (273, 16, 1, blocks[273][0]), (277, 3, 1, 1),
                   (278, 4, 1, rows), (279, 16, 1, blocks[273][1]), (305, 2, blocks[305][1], blocks[305][0]),
                   (339, 3, 1, 2)]
        out += struct.pack("<Q", len(entries)) + b"".join(struct.pack("<HHQQ", *e) for e in entries)
        link = len(out)
        out += struct.pack("<Q", 0)
    Path(path).write_bytes(bytes(out))


@pytest.mark.parametrize("planes", [1, 3])
def test_scanimage_volume_recording_is_refused_not_read_with_planes_as_frames(tmp_path, movie, planes):
    """A fast-Z recording's pages cycle through the z-planes: refused, saying how many and what to do; a single-plane
    recording is the movie of its pages, at ScanImage's frame rate."""
    data = movie.astype(np.int16)  # 23 pages
    frame_data = (f"SI.hChannels.channelSave = 1\nSI.hStackManager.numSlices = {planes}\n"
                  f"SI.hStackManager.actualNumSlices = {planes}\nSI.hStackManager.framesPerSlice = 1\n"
                  f"SI.hFastZ.enable = {'true' if planes > 1 else 'false'}\nSI.hRoiManager.scanFrameRate = 30\n")
    path = tmp_path / "si.tif"
    scanimage_tiff(path, data, frame_data)
    with tifffile.TiffFile(path) as tf:  # tifffile reads it as ScanImage writes it
        assert tf.is_scanimage and tf.scanimage_metadata["FrameData"]["SI.hStackManager.numSlices"] == planes
        np.testing.assert_array_equal(tf.asarray().reshape(data.shape), data)
    if planes == 1:
        m = load_movie(path)
        assert m.frame_rate == 30.0
        np.testing.assert_array_equal(m[:], data)
        return
    with pytest.raises(MovieError, match=r"si.tif: ScanImage volume recording of 3 z-planes.*deinterleave.*\[k::3\]"):
        load_movie(path)


def test_real_shared_tiff_is_read_lazily():
    path = DATA / "neurofinder.01.01" / "movie.tif"
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    m = load_movie(path)
    assert m.shape == (101, 512, 512) and m.dtype == np.uint16
    expected = tifffile.imread(path, key=range(40, 47))
    np.testing.assert_array_equal(m[40:47], expected)
    starts = [s for s, block in m.chunks(30)]
    assert starts == [0, 30, 60, 90]
    np.testing.assert_array_equal(m.read(40, 47), expected.astype(np.float32))


def test_folder_of_frames_sorted_naturally(tmp_path, movie):
    data = movie.astype(np.uint16)
    for t, frame in enumerate(data):
        tifffile.imwrite(tmp_path / f"image{t}.tiff", frame)  # image2 must come before image10
    (tmp_path / "notes.txt").write_text("not a frame")
    m = load_movie(tmp_path)
    assert m.shape == data.shape
    np.testing.assert_array_equal(m[:], data)
    np.testing.assert_array_equal(m.read(8, 12), data[8:12].astype(np.float32))


def test_folder_of_two_channels_or_with_a_projection_is_refused(tmp_path, movie):
    """Bruker's Ch1/Ch2 frame files side by side, or ImageJ's AVG_ projection saved beside the frames, are not one
    numbered sequence: refused with the sequences listed, not read as extra frames."""
    data = movie.astype(np.uint16)
    bruker, with_avg = tmp_path / "bruker", tmp_path / "avg"
    bruker.mkdir()
    with_avg.mkdir()
    for t, frame in enumerate(data):
        tifffile.imwrite(bruker / f"TSeries-001_Cycle00001_Ch1_{t + 1:06d}.ome.tif", frame // 10)
        tifffile.imwrite(bruker / f"TSeries-001_Cycle00001_Ch2_{t + 1:06d}.ome.tif", frame)
        tifffile.imwrite(with_avg / f"img_{t:04d}.tif", frame)
    tifffile.imwrite(with_avg / "AVG_img.tif", data.mean(axis=0).astype(np.uint16))
    with pytest.raises(MovieError, match=r"bruker: .*2 sequences.*'TSeries-001_Cycle00001_Ch1_#.ome.tif' \(23 files: "
                                         r"TSeries-001_Cycle00001_Ch1_000001.ome.tif.*_Ch2_#.ome.tif.*one sequence"):
        load_movie(bruker)
    with pytest.raises(MovieError, match=r"avg: .*'AVG_img.tif' \(1 file: AVG_img.tif\).*'img_#.tif' \(23 files"):
        load_movie(with_avg)
    (with_avg / "AVG_img.tif").unlink()
    np.testing.assert_array_equal(load_movie(with_avg)[:], data)


@pytest.mark.parametrize("pattern", ["img_channel000_position000_time{t:09d}_z000.tif",  # Micro-Manager 2
                                     "img_{t:09d}_Default_000.tif",  # Micro-Manager 1.4
                                     "t{t}_ch2_z5.tif"])  # the first run of digits is the frame number, unpadded
def test_folder_of_frames_numbered_in_an_earlier_run_of_digits(tmp_path, movie, pattern):
    """Acquisition software numbers the frames in any run of digits of the names, the others fixed (channel,
    position, z-plane): one sequence, in the order of the frame number."""
    data = movie.astype(np.uint16)
    for t in np.random.default_rng(1).permutation(len(data)):
        tifffile.imwrite(tmp_path / pattern.format(t=t), data[t])
    np.testing.assert_array_equal(load_movie(tmp_path)[:], data)


def test_folder_of_frames_of_several_channels_named_by_micromanager_is_refused(tmp_path, movie):
    """Names differing in two runs of digits (time and channel) are the channels of a hyperstack, not one movie:
    refused, the message naming both runs."""
    data = movie.astype(np.uint16)
    for c in range(2):
        for t, frame in enumerate(data):
            tifffile.imwrite(tmp_path / f"img_channel{c:03d}_position000_time{t:09d}_z000.tif", frame + c)
    with pytest.raises(MovieError, match=r"2 sequences.*'img_channel000_position000_time#_z000.tif' \(23 files.*"
                                         r"differ in 2 runs of digits.*'channel' \(2 values: 0 to 1\) and 'time' "
                                         r"\(23 values: 0 to 22\)"):
        load_movie(tmp_path)


def test_folder_of_frames_with_the_same_number_is_refused(tmp_path, movie):
    """'img_7.tif' beside 'img_007.tif': two frames 7, whose order would be a guess."""
    for name, frame in zip(("img_6.tif", "img_7.tif", "img_007.tif"), movie.astype(np.uint16), strict=False):
        tifffile.imwrite(tmp_path / name, frame)
    with pytest.raises(MovieError, match=r"img_(00)?7.tif and img_(00)?7.tif carry the same frame number"):
        load_movie(tmp_path)


def test_folder_of_single_frame_ome_tiffs_of_one_multifile_series(tmp_path, movie):
    """Bruker Prairie View and Micro-Manager (image per file) write one frame per file, each file's OME-XML
    describing the whole series: the folder is the movie of the files' own frames."""
    data = movie.astype(np.uint16)
    T, rows, cols = data.shape
    names = [f"TSeries_Cycle00001_Ch2_{t + 1:06d}.ome.tif" for t in range(T)]
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in range(T)]
    planes = "".join(f'<TiffData FirstT="{t}" FirstZ="0" FirstC="0" IFD="0" PlaneCount="1"><UUID FileName="{name}">'
                     f'{u}</UUID></TiffData>' for t, (name, u) in enumerate(zip(names, uuids, strict=True)))
    for t, frame in enumerate(data):
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
               f'UUID="{uuids[t]}"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" '
               f'SizeX="{cols}" SizeY="{rows}" SizeC="1" SizeZ="1" SizeT="{T}"><Channel ID="Channel:0:0" '
               f'SamplesPerPixel="1"/>{planes}</Pixels></Image></OME>')
        tifffile.imwrite(tmp_path / names[t], frame, description=xml, metadata=None)
    with tifffile.TiffFile(tmp_path / names[0]) as tf:
        assert len(tf.pages) == 1 and tf.series[0].shape == data.shape  # the series spans the folder's files
    m = load_movie(tmp_path)
    assert m.shape == data.shape
    np.testing.assert_array_equal(m[:], data)
    np.testing.assert_array_equal(m.read(20, 23), data[20:23].astype(np.float32))
    tifffile.imwrite(tmp_path / names[5], data[:2], description=None)  # still one 2-D frame per file
    with pytest.raises(MovieError, match=f"{names[5]}: expected one 2-D frame per file.*2 page"):
        load_movie(tmp_path)


def test_folder_with_frames_of_different_shapes(tmp_path, movie):
    for t, frame in enumerate(movie[:4]):
        tifffile.imwrite(tmp_path / f"f{t:03d}.tif", frame)
    tifffile.imwrite(tmp_path / "f004.tif", movie[4, :-1])
    with pytest.raises(MovieError, match="f004.tif.*differs"):
        load_movie(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(MovieError, match=f"{tmp_path.name}.*no .tif"):
        load_movie(tmp_path)


def test_hdf5_dataset_choice(tmp_path, movie):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["mov"] = movie
        f["other/data"] = movie[:, ::-1] * 2
        f["meta"] = np.arange(3)
    with pytest.warns(UserWarning, match="read 'mov' \\(the default\\) of the 2 3-D datasets"):
        np.testing.assert_array_equal(load_movie(path).to_array(), movie)
    np.testing.assert_array_equal(load_movie(path, var_name="other/data")[:], movie[:, ::-1] * 2)
    with pytest.raises(MovieError, match="m.h5.*no dataset 'nope'"):
        load_movie(path, var_name="nope")
    path2 = tmp_path / "only.hdf5"
    with h5py.File(path2, "w") as f:
        f.create_dataset("group/images", data=movie.astype(np.uint8), chunks=(4, 11, 7), compression="gzip")
        f["vector"] = np.arange(5)
    m = load_movie(path2)
    assert m.dtype == np.uint8
    np.testing.assert_array_equal(m[5:9], movie.astype(np.uint8)[5:9])
    path3 = tmp_path / "two.h5"
    with h5py.File(path3, "w") as f:
        f["a"] = movie
        f["b"] = movie
    with pytest.raises(MovieError, match="two.h5.*var_name"):
        load_movie(path3)
    path4 = tmp_path / "flat.h5"
    with h5py.File(path4, "w") as f:
        f["frames2d"] = movie[0]
        f["times"] = np.arange(23.0)
    with pytest.raises(MovieError, match=r"0 3-D datasets \(datasets: frames2d \(11, 7\), times \(23,\)\)"):
        load_movie(path4)  # what is in the file is listed


def test_hdf5_mov_beside_other_3d_datasets_is_read_with_a_warning_naming_them(tmp_path, movie):
    """'mov' (CaImAn's name) is taken, but not silently when the file holds other movies (a motion-corrected one)."""
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["mov"] = movie
        f["corrected/mov"] = movie[:, ::-1]
        f["mean"] = movie.mean(axis=0)  # 2-D: not a candidate
    with pytest.warns(UserWarning, match=r"two.h5: read 'mov' \(the default\) of the 2 3-D datasets in the file "
                                         r"\(corrected/mov, mov\).*var_name"):
        m = load_movie(path)
    np.testing.assert_array_equal(m[:], movie)
    m.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # chosen by name: nothing to say
        with load_movie(path, var_name="corrected/mov") as chosen:
            np.testing.assert_array_equal(chosen[:], movie[:, ::-1])
        with h5py.File(path, "a") as f:
            del f["corrected"]
        load_movie(path)  # 'mov' alone: nothing to say


def nwb_series_by_hand(path, series):
    """An NWB-like HDF5 file holding TwoPhotonSeries groups {path in file: data}, as the reader finds them (by their
    neurodata_type attribute)."""
    with h5py.File(path, "w") as f:
        for name, data in series.items():
            group = f.create_group(name)
            group.attrs["neurodata_type"] = "TwoPhotonSeries"
            group["data"] = data


def test_nwb_acquisition_series_beside_processed_ones_is_read_with_a_warning_naming_them(tmp_path, movie):
    path = tmp_path / "m.nwb"
    nwb_series_by_hand(path, {"acquisition/raw": movie, "processing/ophys/corrected": movie[:, ::-1]})
    with pytest.warns(UserWarning, match=r"m.nwb: read 'acquisition/raw' \(the default\) of the 2 TwoPhotonSeries in "
                                         r"the file.*processing/ophys/corrected.*var_name"):
        m = load_movie(path)
    np.testing.assert_array_equal(m[:], movie)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_movie(path, var_name="corrected")[:], movie[:, ::-1])


def _nwb_with_plane():
    """An NWBFile with one imaging plane, as pynwb builds it: (nwb, plane)."""
    from datetime import datetime, timezone

    from pynwb import NWBFile
    from pynwb.ophys import OpticalChannel

    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    nwb = NWBFile(session_description="test", identifier="id", session_start_time=start)
    device = nwb.create_device(name="scope")
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="ch", description="green", emission_lambda=520.0),
        description="plane", device=device, excitation_lambda=920.0, imaging_rate=30.0, indicator="GCaMP6s",
        location="V1")
    return nwb, plane


def _times(rate=None, timestamps=None):
    """A TimeSeries' times as pynwb takes them: a ``rate`` (Hz) or ``timestamps`` (s)."""
    return dict(rate=rate) if timestamps is None else dict(timestamps=timestamps)


def _write(path, nwb):
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _need_one_photon():
    """Skip where pynwb has no OnePhotonSeries (added in pynwb 2.4)."""
    import pynwb.ophys

    if not hasattr(pynwb.ophys, "OnePhotonSeries"):
        pytest.skip(f"pynwb {pynwb.__version__} has no OnePhotonSeries")


def write_nwb(path, data, masks=None, rate=30.0, timestamps=None, series_type="TwoPhotonSeries"):
    """An NWB file with a ``series_type`` ('TwoPhotonSeries' or 'OnePhotonSeries', named so) in ``acquisition/``
    (and optionally a PlaneSegmentation), written by pynwb; its times as a ``rate`` (Hz) or as ``timestamps`` (s)."""
    import pynwb.ophys
    from pynwb.ophys import ImageSegmentation

    nwb, plane = _nwb_with_plane()
    nwb.add_acquisition(getattr(pynwb.ophys, series_type)(name=series_type, data=data, imaging_plane=plane,
                                                          unit="a.u.", **_times(rate, timestamps)))
    if masks is not None:
        module = nwb.create_processing_module(name="ophys", description="rois")
        seg = ImageSegmentation()
        module.add(seg)
        ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="rois", imaging_plane=plane)
        for mask in masks:
            ps.add_roi(image_mask=mask.astype(float))
    _write(path, nwb)


def write_nwb_corrected(path, raw, corrected, rate=30.0, corrected_times=None, corrected_type="ImageSeries",
                        raw_type="TwoPhotonSeries"):
    """An NWB file written by pynwb as motion correction leaves it: raw movies ``raw`` {name: data} in
    ``acquisition/`` (each a ``raw_type``: 'TwoPhotonSeries' or 'OnePhotonSeries', at ``rate`` Hz), and in
    ``processing/ophys/MotionCorrection`` one CorrectedImageStack per item of ``corrected`` {stack name: (name of its
    original raw series, corrected data)}, its ``corrected`` series an ``ImageSeries`` (or a ``TwoPhotonSeries``, as
    some writers store it) timed by ``corrected_times`` (the arguments of :func:`_times`; default: the original's
    rate)."""
    import pynwb.ophys
    from pynwb import TimeSeries
    from pynwb.image import ImageSeries
    from pynwb.ophys import CorrectedImageStack, MotionCorrection, TwoPhotonSeries

    nwb, plane = _nwb_with_plane()
    originals = {}
    for name, data in raw.items():
        originals[name] = getattr(pynwb.ophys, raw_type)(name=name, data=data, imaging_plane=plane, unit="a.u.",
                                                         rate=rate)
        nwb.add_acquisition(originals[name])
    stacks = []
    for stack, (original, data) in corrected.items():
        times = corrected_times or {"rate": rate}
        series = (TwoPhotonSeries(name="corrected", data=data, imaging_plane=plane, unit="a.u.", **times)
                  if corrected_type == "TwoPhotonSeries" else
                  ImageSeries(name="corrected", data=data, unit="a.u.", **times))
        shifts = TimeSeries(name="xy_translation", data=np.zeros((len(data), 2)), unit="pixels", **times)
        stacks.append(CorrectedImageStack(name=stack, corrected=series, original=originals[original],
                                          xy_translation=shifts))
    module = nwb.create_processing_module(name="ophys", description="motion correction")
    module.add(MotionCorrection(corrected_image_stacks=stacks))
    _write(path, nwb)


def test_nwb_two_photon_series(tmp_path, movie):
    path = tmp_path / "m.nwb"
    write_nwb(path, movie.astype(np.uint16))
    m = load_movie(path)
    assert m.shape == movie.shape  # NWB (time, x, y) is read as (time, rows, cols)
    np.testing.assert_array_equal(m[:], movie.astype(np.uint16))
    np.testing.assert_array_equal(load_movie(path, var_name="TwoPhotonSeries")[2], movie.astype(np.uint16)[2])
    with pytest.raises(MovieError, match="m.nwb.*nope"):
        load_movie(path, var_name="nope")


def test_nwb_one_photon_series_is_read_like_a_two_photon_series(tmp_path, movie):
    """A miniscope or widefield recording (pynwb >= 2.4's OnePhotonSeries) is the file's movie, at its rate, found
    by default and by name as a TwoPhotonSeries is."""
    _need_one_photon()
    data = movie.astype(np.uint16)
    path = tmp_path / "m.nwb"
    write_nwb(path, data, rate=20.0, series_type="OnePhotonSeries")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = load_movie(path)
        for name in ("OnePhotonSeries", "acquisition/OnePhotonSeries"):
            np.testing.assert_array_equal(load_movie(path, var_name=name)[:], data)
    np.testing.assert_array_equal(m[:], data)
    assert m.frame_rate == 20.0
    with pytest.raises(MovieError, match=r"m.nwb: no movie named 'nope'; the file holds: acquisition/OnePhotonSeries"):
        load_movie(path, var_name="nope")


def test_nwb_motion_corrected_stack_of_a_one_photon_series(tmp_path, movie):
    """A CorrectedImageStack whose original is a OnePhotonSeries: the corrected movie is the default (no warning: its
    original is no rival), the raw one is read by its name, and a corrected series without times takes its
    original's rate."""
    _need_one_photon()
    raw, corrected = movie.astype(np.uint16), movie[:, ::-1].astype(np.uint16)
    path = tmp_path / "m.nwb"
    write_nwb_corrected(path, {"OnePhotonSeries": raw}, {"plane0": ("OnePhotonSeries", corrected)}, rate=20.0,
                        raw_type="OnePhotonSeries")
    with h5py.File(path, "a") as f:
        del f[f"{STACK}/corrected/starting_time"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = load_movie(path)
        np.testing.assert_array_equal(load_movie(path, var_name="OnePhotonSeries")[:], raw)
    np.testing.assert_array_equal(m[:], corrected)
    assert m.frame_rate == 20.0


def test_nwb_of_a_one_photon_and_a_two_photon_series_needs_var_name(tmp_path, movie):
    """Two raw movies of different types in ``acquisition/``: no default; each is read by its name."""
    _need_one_photon()
    from pynwb.ophys import OnePhotonSeries, TwoPhotonSeries

    one, two = movie.astype(np.uint16), movie[:, ::-1].astype(np.uint16)
    nwb, plane = _nwb_with_plane()
    nwb.add_acquisition(OnePhotonSeries(name="widefield", data=one, imaging_plane=plane, unit="a.u.", rate=20.0))
    nwb.add_acquisition(TwoPhotonSeries(name="twophoton", data=two, imaging_plane=plane, unit="a.u.", rate=30.0))
    path = tmp_path / "m.nwb"
    _write(path, nwb)
    with pytest.raises(MovieError, match=r"m.nwb: 2 TwoPhotonSeries and OnePhotonSeries in the file "
                                         r"\(acquisition/\w+, acquisition/\w+\); choose one with var_name="):
        load_movie(path)
    np.testing.assert_array_equal(load_movie(path, var_name="widefield")[:], one)
    np.testing.assert_array_equal(load_movie(path, var_name="twophoton")[:], two)


def test_frame_rate_as_the_file_records_it(tmp_path, movie):
    """NWB's rate or timestamps, ImageJ's frame interval; None where a format has no such field."""
    data = movie.astype(np.uint16)
    write_nwb(tmp_path / "rate.nwb", data, rate=7.5)
    assert load_movie(tmp_path / "rate.nwb").frame_rate == 7.5
    write_nwb(tmp_path / "times.nwb", data, timestamps=np.arange(len(data)) / 15.25 + 3.0)
    assert load_movie(tmp_path / "times.nwb").frame_rate == pytest.approx(15.25)
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, metadata={"axes": "TYX", "finterval": 0.25})
    assert load_movie(tmp_path / "ij.tif").frame_rate == pytest.approx(4.0)
    tifffile.imwrite(tmp_path / "plain.tif", data)
    np.save(tmp_path / "m.npy", data)
    for source in (tmp_path / "plain.tif", tmp_path / "m.npy", data):
        assert load_movie(source).frame_rate is None


STACK = "processing/ophys/MotionCorrection/plane0"


@pytest.mark.parametrize("corrected_type", ["ImageSeries", "TwoPhotonSeries"])
def test_nwb_motion_corrected_stack_is_read_by_default_and_each_movie_by_its_name(tmp_path, movie, corrected_type):
    """Raw acquisition + one CorrectedImageStack: the corrected movie is the default, without a warning (the raw
    movie it was corrected from is no rival); var_name names the stack (by its name or path) or the raw series."""
    raw, corrected = movie.astype(np.uint16), movie[:, ::-1].astype(np.uint16)  # corrected: the rows flipped
    path = tmp_path / "m.nwb"
    write_nwb_corrected(path, {"TwoPhotonSeries": raw}, {"plane0": ("TwoPhotonSeries", corrected)},
                        corrected_type=corrected_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_movie(path)[:], corrected)
        for name in ("plane0", "MotionCorrection/plane0", STACK, f"/{STACK}/", "plane0/corrected",
                     f"{STACK}/corrected"):
            np.testing.assert_array_equal(load_movie(path, var_name=name)[:], corrected)
        for name in ("TwoPhotonSeries", "acquisition/TwoPhotonSeries"):
            np.testing.assert_array_equal(load_movie(path, var_name=name)[:], raw)
    with pytest.raises(MovieError, match=rf"m.nwb: no movie named 'nope'.*{STACK} \(motion-corrected\), "
                                         "acquisition/TwoPhotonSeries"):
        load_movie(path, var_name="nope")


def test_nwb_several_motion_corrected_stacks_need_var_name(tmp_path, movie):
    raw = {"plane0": movie.astype(np.uint16), "plane1": (movie + 1).astype(np.uint16)}
    corrected = {"fov0": ("plane0", raw["plane0"][:, ::-1]), "fov1": ("plane1", raw["plane1"][:, :, ::-1])}
    path = tmp_path / "m.nwb"
    write_nwb_corrected(path, raw, corrected)
    with pytest.raises(MovieError, match=r"m.nwb: 2 motion-corrected stacks .*MotionCorrection/fov0 "
                                         r"\(motion-corrected\), .*MotionCorrection/fov1.*var_name"):
        load_movie(path)
    for stack, (_, data) in corrected.items():
        np.testing.assert_array_equal(load_movie(path, var_name=stack)[:], data)
    with pytest.raises(MovieError, match="no movie named 'fov2'.*fov0.*fov1.*acquisition/plane0.*acquisition/plane1"):
        load_movie(path, var_name="fov2")


def test_nwb_one_motion_corrected_stack_beside_another_raw_movie_is_read_with_a_warning_naming_it(tmp_path, movie):
    """A raw series that is not the stack's original (another plane) is a rival: the warning names it, and the
    stack's own original is not listed."""
    raw = {"plane0": movie.astype(np.uint16), "plane1": (movie + 1).astype(np.uint16)}
    path = tmp_path / "m.nwb"
    write_nwb_corrected(path, raw, {"fov0": ("plane0", raw["plane0"][:, ::-1])})
    with pytest.warns(UserWarning, match=r"m.nwb: read '.*MotionCorrection/fov0' \(the default\) of the 2 movies in "
                                         r"the file \(.*fov0 \(motion-corrected\), acquisition/plane1\); .*var_name") \
            as record:
        m = load_movie(path)
    assert "plane0" not in str(record[0].message)
    np.testing.assert_array_equal(m[:], raw["plane0"][:, ::-1])


@pytest.mark.parametrize("times, expected", [({"rate": 7.5}, 7.5),
                                             ({"timestamps": np.arange(23) / 15.25 + 3.0}, 15.25),
                                             (None, 30.0)])
def test_frame_rate_of_a_motion_corrected_stack(tmp_path, movie, times, expected):
    """The corrected series' own rate or timestamps, not its original's (30 Hz); when it records neither (deleted
    here by hand, as a writer other than pynwb may leave it), its original's, as the frames are the same."""
    from cellfie_caiman.params import DataParams

    data = movie.astype(np.uint16)
    path = tmp_path / "m.nwb"
    write_nwb_corrected(path, {"TwoPhotonSeries": data}, {"plane0": ("TwoPhotonSeries", data[:, ::-1])}, rate=30.0,
                        corrected_times=times)
    if times is None:
        with h5py.File(path, "a") as f:
            del f[f"{STACK}/corrected/starting_time"]
    assert load_movie(path).frame_rate == pytest.approx(expected)
    assert DataParams().frame_rate(path) == pytest.approx(expected)


def test_frame_rate_of_a_corrected_stack_is_not_taken_from_an_original_of_other_frames(tmp_path, movie):
    """A corrected movie of other frames than its original's (here every other frame) without times of its own has
    no known rate: the original's would be wrong."""
    data = movie.astype(np.uint16)
    path = tmp_path / "m.nwb"
    write_nwb_corrected(path, {"TwoPhotonSeries": data}, {"plane0": ("TwoPhotonSeries", data[::2])}, rate=30.0)
    with h5py.File(path, "a") as f:
        del f[f"{STACK}/corrected/starting_time"]
    assert load_movie(path).frame_rate is None


def test_nwb_motion_corrected_stack_in_external_files_or_empty_is_refused(tmp_path, movie):
    """The checks of a TwoPhotonSeries hold for a corrected stack: frames in external files and a stack of too few
    frames are errors naming it, never a silent read of the raw movie instead."""
    data = movie.astype(np.uint16)
    path = tmp_path / "m.nwb"
    write_nwb_corrected(path, {"TwoPhotonSeries": data}, {"plane0": ("TwoPhotonSeries", data[:1])})
    with pytest.raises(MovieError, match=f"m.nwb:{STACK}/corrected"):
        load_movie(path)
    with h5py.File(path, "a") as f:  # as pynwb writes an external ImageSeries: data (0, 0, 0), external_file
        group = f[f"{STACK}/corrected"]
        del group["data"]
        group["data"] = np.zeros((0, 0, 0), np.uint8)
        group["external_file"] = [b"corrected.tif"]
    with pytest.raises(MovieError, match=f"m.nwb: motion-corrected stack '{STACK}' stores its frames in external "
                                         r"files \(\['corrected.tif'\]\)"):
        load_movie(path)


@pytest.mark.parametrize("tunit, finterval, rate", [
    (None, 0.25, 4.0), ("sec", 0.25, 4.0), ("ms", 1000 / 30, 30.0), ("msec", 50.0, 20.0), ("us", 40000.0, 25.0),
    ("min", 0.5, 1 / 30), ("frames", 2.0, None)])
def test_imagej_frame_interval_is_in_its_time_unit(tmp_path, movie, tunit, finterval, rate):
    """ImageJ writes 'finterval' in the time unit 'tunit' (left out when it is 'sec'); a unit it cannot convert to
    seconds gives no rate, so that the pipeline says it assumes 30 Hz."""
    from cellfie_caiman.params import DEFAULT_FR, DataParams

    path = tmp_path / "ij.tif"
    unit = "" if tunit is None else f"tunit={tunit}\n"
    description = f"ImageJ=1.54f\nimages=23\nframes=23\nfinterval={finterval!r}\n{unit}loop=false\n"
    tifffile.imwrite(path, movie.astype(np.uint16), description=description, metadata=None)
    assert tifffile.TiffFile(path).imagej_metadata["finterval"] == finterval
    m = load_movie(path)
    if rate is not None:
        assert m.frame_rate == pytest.approx(rate)
        return
    assert m.frame_rate is None
    with pytest.warns(UserWarning, match="assuming 30 Hz"):
        assert DataParams().frame_rate(m) == DEFAULT_FR


def test_var_name_for_a_source_with_one_movie_is_said_to_be_ignored(tmp_path, movie):
    tifffile.imwrite(tmp_path / "m.tif", movie)
    for source in (tmp_path / "m.tif", movie):
        with pytest.warns(UserWarning, match="var_name 'mov' ignored"):
            assert load_movie(source, var_name="mov").shape == movie.shape


def test_npy_is_memory_mapped(tmp_path, movie):
    path = tmp_path / "m.npy"
    np.save(path, movie)
    m = load_movie(path)
    np.testing.assert_array_equal(m[1:4], movie[1:4])
    np.testing.assert_array_equal(m.to_array(), movie)


def test_array_and_movie_sources(movie):
    m = load_movie(movie)
    assert load_movie(m) is m
    assert m.source == "<ndarray>"
    np.testing.assert_array_equal(np.asarray(m), movie)
    chunks = list(m.chunks(10))
    assert [s for s, _ in chunks] == [0, 10, 20]
    np.testing.assert_array_equal(np.concatenate([b for _, b in chunks]), movie)
    assert sum(len(b) for _, b in m.chunks()) == len(movie)
    with pytest.raises(IndexError):
        m[23]


# ---------------------------------------------------------------------------------------------------------------
# Bad input: always a MovieError that names the file
# ---------------------------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "absent.tif"
    with pytest.raises(MovieError, match="absent.tif"):
        load_movie(path)
    with pytest.raises(FileNotFoundError):
        load_movie(path)


def test_unknown_format(tmp_path):
    path = tmp_path / "movie.avi"
    path.write_bytes(b"RIFF")
    with pytest.raises(MovieError, match="movie.avi.*unknown movie format"):
        load_movie(path)


@pytest.mark.parametrize("shape", [(5, 6), (3, 4, 5, 6), (2, 3, 4, 5, 6)])
def test_wrong_number_of_dimensions(tmp_path, shape):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(MovieError, match="bad.npy.*3-D"):
        load_movie(path)
    with pytest.raises(MovieError, match="3-D"):
        load_movie(np.zeros(shape))


def test_fewer_than_two_frames(tmp_path, movie):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, movie[:1].astype(np.uint16))
    with pytest.raises(MovieError, match="one.tif.*(at least 2 frames|3-D)"):
        load_movie(path)
    with pytest.raises(MovieError, match="at least 2 frames"):
        load_movie(movie[:1])
    h5 = tmp_path / "one.h5"
    with h5py.File(h5, "w") as f:
        f["mov"] = movie[:1]
    with pytest.raises(MovieError, match="one.h5.*at least 2 frames"):
        load_movie(h5)


@pytest.mark.parametrize("dtype", [complex, bool, "U3", object])
def test_non_numeric_dtype(tmp_path, dtype):
    arr = np.zeros((3, 4, 5), dtype=dtype)
    with pytest.raises(MovieError, match="numeric"):
        load_movie(arr)
    if dtype is not object:
        path = tmp_path / "x.npy"
        np.save(path, arr)
        with pytest.raises(MovieError, match="x.npy"):
            load_movie(path)


def test_corrupt_files(tmp_path, movie):
    tif = tmp_path / "garbage.tif"
    tif.write_bytes(b"this is not a tiff file at all" * 10)
    with pytest.raises(MovieError, match="garbage.tif"):
        load_movie(tif)
    npy = tmp_path / "cut.npy"
    np.save(npy, movie)
    npy.write_bytes(npy.read_bytes()[:500])
    with pytest.raises(MovieError, match="cut.npy"):
        load_movie(npy)
    h5 = tmp_path / "junk.h5"
    h5.write_bytes(b"\x00" * 100)
    with pytest.raises(MovieError, match="junk.h5"):
        load_movie(h5)
    # a multi-page TIFF whose last page's data is cut off: found when the page is decoded
    cut = tmp_path / "cut.tif"
    tifffile.imwrite(cut, movie.astype(np.uint16), compression="zlib")
    data = bytearray(cut.read_bytes())
    with tifffile.TiffFile(cut) as tf:
        off, count = tf.pages[-1].dataoffsets[0], tf.pages[-1].databytecounts[0]
    data[off:off + count] = b"\xff" * count
    cut.write_bytes(bytes(data))
    m = load_movie(cut)
    np.testing.assert_array_equal(m[0], movie[0].astype(np.uint16))
    with pytest.raises(MovieError, match="cut.tif"):
        m.read(20, 23)


def test_bad_source_type():
    with pytest.raises(MovieError, match="not a movie source"):
        load_movie(42)
    with pytest.raises(MovieError, match="^a list is not a movie source") as err:  # named, not printed whole
        load_movie(np.zeros((5, 64, 64)).tolist())
    assert len(str(err.value)) < 200


# ---------------------------------------------------------------------------------------------------------------
# Non-finite pixels
# ---------------------------------------------------------------------------------------------------------------

def test_nan_pixels_are_filled_with_a_warning(tmp_path, movie):
    bad = movie.copy()
    bad[5:8, 2, 3] = np.nan           # interior gap: linear interpolation between frames 4 and 8
    bad[0:3, 0, :] = np.nan           # border row at the start (motion correction): nearest later value
    bad[10, 4, 4] = np.inf
    bad[:, 9, 6] = np.nan             # a pixel that is never finite: constant, the median of the first frame
    bad[0, 1, 1] = np.nan             # ... of its finite values
    n_bad = int((~np.isfinite(bad)).sum())
    path = tmp_path / "nan.npy"
    np.save(path, bad)
    m = load_movie(path)
    with pytest.warns(NonFiniteWarning, match=f"nan.npy.*{n_bad} non-finite"):
        out = m.to_array()
    assert np.isfinite(out).all()
    expected = movie[4, 2, 3] + (movie[8, 2, 3] - movie[4, 2, 3]) * np.array([1, 2, 3]) / 4
    np.testing.assert_allclose(out[5:8, 2, 3], expected, rtol=1e-6)
    np.testing.assert_array_equal(out[0:3, 0, :], np.broadcast_to(movie[3, 0, :], (3, 7)))
    np.testing.assert_allclose(out[10, 4, 4], (movie[9, 4, 4] + movie[11, 4, 4]) / 2, rtol=1e-6)
    first = bad[0][np.isfinite(bad[0])]
    np.testing.assert_array_equal(out[:, 9, 6], np.float32(np.median(first)))
    untouched = np.isfinite(bad)
    np.testing.assert_array_equal(out[untouched], movie[untouched])
    assert m.n_filled == n_bad
    # chunking does not change the answer, and raw indexing keeps the NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per movie: no second warning
        for chunk in (1, 3, 10):
            np.testing.assert_array_equal(np.concatenate([b for _, b in m.chunks(chunk)]), out)
            np.testing.assert_array_equal(np.concatenate([m.read(s, s + chunk) for s in range(0, 23, chunk)]), out)
    assert np.isnan(m[6, 2, 3])


def test_all_nan_frames_are_interpolated_and_an_all_nan_movie_is_refused(movie):
    bad = movie.copy()
    bad[:, 1, 1] = np.nan
    bad[0] = bad[4] = np.nan
    with pytest.warns(NonFiniteWarning):
        out = load_movie(bad).to_array()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[4, 2, 2], (movie[3, 2, 2] + movie[5, 2, 2]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(out[0, 2, 2], movie[1, 2, 2])
    # the never-finite pixel: the median of the first frame with finite values (frame 1), in every frame
    np.testing.assert_array_equal(out[:, 1, 1], np.float32(np.median(bad[1][np.isfinite(bad[1])])))
    blank = np.full((5, 4, 3), np.nan, np.float32)
    blank[2, 1] = np.inf
    with pytest.raises(MovieError, match="no finite value in any of its 5 frames"):
        load_movie(blank).to_array()


def test_float64_values_beyond_float32_are_refused_not_filled(movie):
    """Movies are processed in float32: a float64 value beyond its range would become inf and then be 'filled' as
    if it were missing."""
    big = movie.astype(np.float64)
    big[3, 2, 2] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only the error, not numpy's 'overflow encountered in cast' before it
        with pytest.raises(MovieError, match="1e\\+39.*beyond float32's range"):
            load_movie(big).to_array()
    big[3, 2, 2] = np.inf  # a real inf is still filled
    with pytest.warns(NonFiniteWarning):
        assert np.isfinite(load_movie(big).to_array()).all()


def test_save_memmap_of_nan_movie_has_no_nan(tmp_path, movie):
    bad = movie.copy()
    bad[:, :2] = np.nan
    with pytest.warns(NonFiniteWarning):
        fname = save_memmap(bad, "Yr", directory=tmp_path)
    assert np.isfinite(np.fromfile(fname, np.float32)).all()


def test_movie_type():
    assert isinstance(load_movie(np.zeros((2, 3, 3), np.uint8)), Movie)


@pytest.mark.parametrize("kind", ["npy", "tiff", "tiff-zlib", "h5", "mmap-C", "mmap-F"])
def test_every_file_reader_pickles_without_its_open_file(tmp_path, movie, kind):
    """A movie sent to another process carries its path, not its open file, map or data: opened and read
    before pickling, it pickles small and reads the same frames after."""
    data = np.repeat(movie, 20, axis=0)  # 1.4 MB
    if kind == "npy":
        path = tmp_path / "m.npy"
        np.save(path, data)
    elif kind.startswith("tiff"):
        path = tmp_path / "m.tif"
        tifffile.imwrite(path, data, compression="zlib" if kind == "tiff-zlib" else None)
    elif kind == "h5":
        path = tmp_path / "m.h5"
        with h5py.File(path, "w") as f:
            f["mov"] = data
    else:
        path = save_memmap(data, str(tmp_path / "m"), order=kind[-1])
    m = load_movie(path)
    np.testing.assert_array_equal(m.read(0, 5), data[:5])  # the file is open now
    blob = pickle.dumps(m)
    assert len(blob) < 10_000
    np.testing.assert_array_equal(pickle.loads(blob).read(100, 110), data[100:110])


def test_file_backed_movies_pickle_as_their_path(tmp_path, movie):
    path = tmp_path / "big.npy"
    np.save(path, np.repeat(movie, 20, axis=0))
    m = load_movie(path)
    blob = pickle.dumps(m)
    assert len(blob) < 10_000  # the data (1.4 MB) is not copied into the pickle
    np.testing.assert_array_equal(pickle.loads(blob)[100], np.repeat(movie, 20, axis=0)[100])


def test_caiman_yr_saved_as_npy(tmp_path, movie):
    T, d1, d2 = movie.shape
    yr = np.stack([frame.flatten(order="F") for frame in movie], axis=1)  # (pixels, T), p = i + j*d1
    name = tmp_path / f"Yr_d1_{d1}_d2_{d2}_d3_1_order_C_frames_{T}.npy"
    np.save(name, yr)
    np.testing.assert_array_equal(load_movie(name).to_array(), movie)
    Yr, dims, T2 = load_memmap(name)
    np.testing.assert_array_equal(Yr, yr)
    np.save(name, yr[:, :-1])
    with pytest.raises(MovieError, match=name.name):
        load_movie(name)


def test_singleton_axes_are_dropped(tmp_path, movie):
    path = tmp_path / "zc.h5"
    with h5py.File(path, "w") as f:
        f["mov"] = movie[:, None]  # (T, Z=1, rows, cols)
    m = load_movie(path)
    assert m.shape == movie.shape
    np.testing.assert_array_equal(m[3:5], movie[3:5])
    np.testing.assert_array_equal(m.to_array(), movie)


@pytest.mark.parametrize("d1, d2, n", [(1, 1, 1), (17, 5, 33), (40, 37, 3), (3, 50, 20)])
def test_pixels_to_frames_matches_caiman_layout(d1, d2, n):
    """The tiled transpose of pixel-major rows equals the layout equation frame[t, i, j] = Yr[i + j*d1, t],
    evaluated element by element, on shapes that are not multiples of its tile, and on a strided row block."""
    from cellfie_caiman._transpose import pixels_to_frames

    rng = np.random.default_rng(d1 * 1000 + d2)
    yr_full = rng.standard_normal((d1 * d2, n + 7)).astype(np.float32)
    yr = yr_full[:, 3:3 + n]  # rows not contiguous with each other, like Yr[:, start:stop] of a memmap
    expected = np.empty((n, d1, d2), np.float32)
    for t in range(n):
        for i in range(d1):
            for j in range(d2):
                expected[t, i, j] = yr[i + j * d1, t]
    np.testing.assert_array_equal(pixels_to_frames(yr, d1), expected)
    with pytest.raises(ValueError, match="whole number"):
        pixels_to_frames(np.zeros((7, n), np.float32), 2)


# ---------------------------------------------------------------------------------------------------------------
# CaImAn memmaps: names that lie, renamed files, write modes, replacing files
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["w+", "write"])
def test_load_memmap_refuses_a_mode_that_would_erase_the_movie(tmp_path, movie, mode):
    fname = Path(save_memmap(movie, "Yr", directory=tmp_path))
    before = fname.read_bytes()
    with pytest.raises(ValueError, match="erase"):
        load_memmap(fname, mode=mode)
    assert fname.read_bytes() == before  # np.memmap(mode='w+') would have zeroed it
    np.testing.assert_array_equal(load_movie(fname).to_array(), movie)


def test_save_memmap_does_not_replace_a_read_only_file(tmp_path, movie):
    fname = Path(save_memmap(movie, "Yr", directory=tmp_path))
    fname.chmod(0o444)
    try:
        with pytest.raises(PermissionError, match=re.escape(fname.name) + ".*read-only"):
            save_memmap(movie * 2, "Yr", directory=tmp_path)
        assert fname.stat().st_mode & 0o777 == 0o444
        np.testing.assert_array_equal(load_movie(fname).to_array(), movie)
        assert sorted(p.name for p in tmp_path.iterdir()) == [fname.name]  # no temporary left behind
    finally:
        fname.chmod(0o644)
    assert save_memmap(movie * 2, "Yr", directory=tmp_path) == str(fname)  # a writable one is replaced
    np.testing.assert_array_equal(load_movie(fname).to_array(), movie * 2)


@pytest.mark.parametrize("order", ["C", "F"])
def test_save_memmap_on_a_full_disk_is_an_error_and_leaves_nothing(tmp_path, movie, monkeypatch, order):
    # a memory-mapped write onto a full disk kills the process with SIGBUS and leaves a partial file; the space is
    # checked before anything is written
    import shutil

    nbytes = movie.size * 4
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=nbytes - 1))
    with pytest.raises(OSError, match=f"needs {nbytes / 1000:.3g} kB, {(nbytes - 1) / 1000:.3g} kB free") as err:
        save_memmap(movie, "Yr", directory=tmp_path, order=order)
    assert err.value.errno == errno.ENOSPC
    assert not any(tmp_path.iterdir())
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=nbytes))
    np.testing.assert_array_equal(load_movie(save_memmap(movie, "Yr", directory=tmp_path, order=order)).to_array(),
                                  movie)


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="posix_fallocate: POSIX systems only")
def test_save_memmap_reserves_its_blocks_before_writing(tmp_path, movie):
    # a limit the free-space check cannot see (here the process's file-size limit; on a real disk a quota or
    # another program filling it) stops the write at the reservation, with a clear error and no file left
    import subprocess
    import sys

    script = (
        "import resource, signal, numpy as np\n"
        "from cellfie_caiman.io import save_memmap\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({movie.size * 2}, {movie.size * 2}))\n"
        f"save_memmap(np.load({str(tmp_path / 'movie.npy')!r}), 'Yr', directory={str(tmp_path / 'out')!r})\n")
    np.save(tmp_path / "movie.npy", movie)
    (tmp_path / "out").mkdir()
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "OSError: [Errno 27] could not reserve" in run.stderr
    assert not any((tmp_path / "out").iterdir())


def test_save_memmap_onto_a_folder_of_that_name_says_so(tmp_path, movie):
    T, d1, d2 = movie.shape
    target = tmp_path / f"Yr_d1_{d1}_d2_{d2}_d3_1_order_C_frames_{T}.mmap"
    target.mkdir()
    with pytest.raises(IsADirectoryError, match=re.escape(str(target)) + ".*folder"):
        save_memmap(movie, "Yr", directory=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name] and not any(target.iterdir())


def test_memmap_named_with_zero_frames_is_a_movie_error(tmp_path):
    empty = tmp_path / "Yr_d1_13_d2_9_d3_1_order_C_frames_0.mmap"
    empty.touch()
    for opener in (load_memmap, load_movie):
        with pytest.raises(MovieError, match=empty.name + ".*0 frames"):
            opener(empty)


def test_renamed_memmap_errors_say_what_is_wrong_with_the_name(tmp_path, movie):
    T, d1, d2 = movie.shape
    src = Path(save_memmap(movie, "Yr", directory=tmp_path))
    cases = {
        "movie.mmap": "only in its name",                                          # renamed by a user
        f"d1_{d1}_d2_{d2}_d3_1_order_C_frames_{T}.mmap": "first '_'-separated part",  # base name dropped
        f"Yr_d1_{d1}_d2_{d2}_d3_1_order_C_frames_{T} (1).mmap": re.escape(f"'{T} (1)'"),  # a download's copy
        f"Yr_d1_{d1}x_d2_{d2}_d3_1_order_C_frames_{T}.mmap": re.escape(f"d1 '{d1}x'"),
    }
    for name, message in cases.items():
        renamed = tmp_path / name
        renamed.write_bytes(src.read_bytes())
        for opener in (load_memmap, load_movie):
            with pytest.raises(MovieError, match=re.escape(name) + ".*" + message):
                opener(renamed)


# NWB axis order: NeuroConv's files (frames, width, height) against CaImAn's (frames, rows, cols)

#: ``general/source_script`` as each writer leaves it: NeuroConv 0.4.10-0.10.0 (basedatainterface's watermark),
#: NeuroConv >= 0.10.1 (its provenance record, nwb_helpers/_provenance.py) and NWB GUIDE (which runs NeuroConv).
NEUROCONV_SCRIPTS = {
    "watermark": "Created using NeuroConv v0.6.1",
    "provenance record": "NeuroConv provenance record\nneuroconv_version: 0.10.1\nexecution_environment: python "
                         "script\nsource_script: convert.py\nneuroconv_provenance_format: 1",
    "guide": "Created using NWB GUIDE v1.0.6-beta",
}


def bright_pixel_movie(rows=9, cols=14, at=(2, 11)):
    """A (20, rows, cols) uint16 movie, dark but for one bright pixel ``at`` (row, col) and a bright first row,
    so that a transposed reading shows (rows != cols, the bright pixel off the diagonal)."""
    mov = np.full((20, rows, cols), 10, np.uint16)
    mov[:, 0, :] = 50
    mov[:, at[0], at[1]] = 1000
    return mov


def write_nwb_like(path, frames, script=None, stored_transposed=False):
    """An NWB file written by pynwb with one TwoPhotonSeries of ``frames`` (frames, rows, cols), as NeuroConv writes
    it (``stored_transposed``: ``data`` = frames.transpose(0, 2, 1), ``dimension`` = (rows, cols), its
    ``get_sample_shape()``; ``general/source_script`` = ``script``) or as CaImAn's ``movie.save`` does (``data`` =
    frames, ``dimension`` = (rows, cols), no source_script)."""
    from datetime import datetime, timezone

    from pynwb import NWBFile
    from pynwb.ophys import OpticalChannel, TwoPhotonSeries

    marks = {} if script is None else dict(source_script=script, source_script_file_name="convert.py")
    nwb = NWBFile(session_description="t", identifier="i", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
                  **marks)
    plane = nwb.create_imaging_plane(
        name="ImagingPlane", optical_channel=OpticalChannel(name="ch", description="g", emission_lambda=520.0),
        description="p", device=nwb.create_device(name="scope"), excitation_lambda=920.0, imaging_rate=30.0,
        indicator="GCaMP6s", location="V1")
    data = frames.transpose(0, 2, 1) if stored_transposed else frames
    nwb.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", data=data, imaging_plane=plane, rate=30.0,
                                        unit="n.a.", dimension=list(frames.shape[1:])))
    _write(path, nwb)


@pytest.mark.parametrize("writer", sorted(NEUROCONV_SCRIPTS))
def test_nwb_written_by_neuroconv_is_read_in_rows_cols_order(tmp_path, writer, caplog):
    """NeuroConv stores ImagingExtractor.get_series().transpose(0, 2, 1): (frames, width, height). Read as stored,
    the movie came back (frames, cols, rows), its bright pixel at (col, row)."""
    frames = bright_pixel_movie()
    path = tmp_path / "neuroconv.nwb"
    write_nwb_like(path, frames, NEUROCONV_SCRIPTS[writer], stored_transposed=True)
    with h5py.File(path, "r") as f:
        assert f["acquisition/TwoPhotonSeries/data"].shape == (20, 14, 9)  # stored columns first
    with caplog.at_level("INFO", logger="cellfie_caiman.io.nwb"):
        m = load_movie(path)
    assert m.shape == frames.shape
    np.testing.assert_array_equal(m[:], frames)
    np.testing.assert_array_equal(m[3], frames[3])
    np.testing.assert_array_equal(m.read(2, 7), frames[2:7].astype(np.float32))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(m))[5:9], frames[5:9])  # as worker processes get it
    assert m.frame_rate == pytest.approx(30.0)
    assert np.unravel_index(np.argmax(m[0]), m.shape[1:]) == (2, 11)
    assert re.search(r"read as \(frames, rows, cols\) = \(20, 9, 14\): written by (NeuroConv|NWB GUIDE).*"
                     r"\(frames, width, height\)", caplog.text)
    m.close()


def test_nwb_without_a_writer_mark_is_read_as_stored_and_says_so(tmp_path, caplog):
    """CaImAn's movie.save (and Suite2p) store (frames, rows, cols) and mark nothing: read as before, and the log
    says which order was assumed and how to transpose."""
    frames = bright_pixel_movie()
    path = tmp_path / "caiman.nwb"
    write_nwb_like(path, frames)
    with caplog.at_level("INFO", logger="cellfie_caiman.io.nwb"):
        m = load_movie(path)
    np.testing.assert_array_equal(m[:], frames)
    assert "no NeuroConv mark in general/source_script" in caplog.text and "transpose(0, 2, 1)" in caplog.text
    m.close()
    write_nwb_like(path, frames, script="my_conversion.py, by hand")  # another writer's script: no mark either
    np.testing.assert_array_equal(load_movie(path)[:], frames)


def test_nwb_of_a_neuroconv_newer_than_the_checked_ones_is_read_as_stored_with_a_warning(tmp_path):
    """NeuroConv's order is known up to 0.10; a later one (nwb-schema #660 proposes (height, width)) is not
    guessed: read as stored, with a warning saying how to transpose."""
    frames = bright_pixel_movie()
    path = tmp_path / "future.nwb"
    write_nwb_like(path, frames, "Created using NeuroConv v0.11.0", stored_transposed=True)
    with pytest.warns(UserWarning, match=r"NeuroConv v0\.11.*newer than the versions whose axis order is known.*"
                                         r"transpose\(0, 2, 1\)"):
        m = load_movie(path)
    np.testing.assert_array_equal(m[:], frames.transpose(0, 2, 1))


def test_nwb_motion_corrected_stack_in_a_neuroconv_file_is_read_as_stored(tmp_path, caplog):
    """NeuroConv writes no CorrectedImageStack: one in its file came from another tool, whose order is unknown,
    and is read as stored (said in the log); the raw series beside it is NeuroConv's, read transposed."""
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.image import ImageSeries
    from pynwb.ophys import CorrectedImageStack, MotionCorrection

    frames = bright_pixel_movie()
    path = tmp_path / "neuroconv.nwb"
    write_nwb_like(path, frames, NEUROCONV_SCRIPTS["watermark"], stored_transposed=True)
    with NWBHDF5IO(str(path), "a") as io:
        nwb = io.read()
        raw = nwb.acquisition["TwoPhotonSeries"]
        stack = CorrectedImageStack(
            name="plane0", corrected=ImageSeries(name="corrected", data=frames[:, ::-1], unit="a.u.", rate=30.0),
            original=raw, xy_translation=TimeSeries(name="xy_translation", data=np.zeros((20, 2)), unit="pixels",
                                                    rate=30.0))
        nwb.create_processing_module(name="ophys", description="mc").add(MotionCorrection(
            corrected_image_stacks=[stack]))
        io.write(nwb)
    with caplog.at_level("INFO", logger="cellfie_caiman.io.nwb"):
        np.testing.assert_array_equal(load_movie(path)[:], frames[:, ::-1])
    assert "NeuroConv writes no motion-corrected stack" in caplog.text
    np.testing.assert_array_equal(load_movie(path, var_name="acquisition/TwoPhotonSeries")[:], frames)
