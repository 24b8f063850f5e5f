"""Tests of cellfie_caiman.rois on files written by the libraries that own each format (roifile, h5py, pynwb)."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse
from roifile import ROI_TYPE, ImagejRoi, roiread, roiwrite
from skimage.draw import disk, ellipse

from cellfie_caiman.io import MovieError
from cellfie_caiman.rois import RoiError, read_rois, write_rois

DATA = Path(__file__).parents[1].parent / "shared" / "data"
SHAPE = (40, 32)


def centre_inside(x, y, shape):
    """Naive ImageJ rule (ImageJ's PolygonFiller, written pixel by pixel): pixel (r, c) is in the ROI when an odd
    number of edges cross its row's centre line strictly left of its centre (c + .5, r + .5), a crossing taken
    1e-8 to the right; an edge spans rows round(y_low) to round(y_high), exclusive. (This rule gave the same
    masks as ImageJ 1.x itself on 52 integer, half-pixel and sub-pixel polygons, session 23.)"""
    x, y = np.asarray(x, float), np.asarray(y, float)
    mask = np.zeros(shape, bool)
    for r in range(shape[0]):
        for c in range(shape[1]):
            count = 0
            for k in range(len(x)):
                (xa, ya), (xb, yb) = (x[k], y[k]), (x[(k + 1) % len(x)], y[(k + 1) % len(x)])
                if ya > yb:
                    xa, ya, xb, yb = xb, yb, xa, ya
                if not np.floor(ya + 0.5) <= r < np.floor(yb + 0.5):
                    continue
                if xa + (r - ya + 0.5) * (xb - xa) / (yb - ya) + 1e-8 < c + 0.5:
                    count += 1
            mask[r, c] = count % 2 == 1
    return mask


@pytest.fixture
def blobs():
    """Discs and rotated ellipses (one piece, no holes), some touching the image border."""
    rng = np.random.default_rng(3)
    masks = []
    for k in range(12):
        m = np.zeros(SHAPE, bool)
        if k % 2:
            rr, cc = disk((rng.uniform(0, SHAPE[0]), rng.uniform(0, SHAPE[1])), rng.uniform(2, 7), shape=SHAPE)
        else:
            rr, cc = ellipse(rng.uniform(5, 35), rng.uniform(5, 27), rng.uniform(2, 6), rng.uniform(3, 8),
                             rotation=rng.uniform(0, np.pi), shape=SHAPE)
        m[rr, cc] = True
        masks.append(m)
    return np.array(masks)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


# ---------------------------------------------------------------------------------------------------------------
# neurofinder JSON
# ---------------------------------------------------------------------------------------------------------------

def test_real_neurofinder_regions():
    path = DATA / "neurofinder.01.01" / "regions.json"
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    masks = read_rois(path, shape=(512, 512))
    regions = json.loads(path.read_text())
    assert masks.shape == (350, 512, 512) and masks.dtype == bool
    expected = np.zeros_like(masks)
    for k, region in enumerate(regions):
        for row, col in region["coordinates"]:
            expected[k, row, col] = True
    np.testing.assert_array_equal(masks, expected)


def test_json_round_trip_and_format(tmp_path, blobs):
    path = tmp_path / "out" / "rois.json"
    write_rois(path, blobs)
    regions = json.loads(path.read_text())
    assert [r["id"] for r in regions] == list(range(len(blobs)))
    for region, mask in zip(regions, blobs, strict=True):
        assert sorted(map(tuple, region["coordinates"])) == sorted(zip(*np.nonzero(mask), strict=True))
    np.testing.assert_array_equal(read_rois(path, SHAPE), blobs)
    sub = tmp_path / "submission.json"
    sub.write_text(json.dumps({"dataset": "x", "regions": regions}))
    np.testing.assert_array_equal(read_rois(sub, SHAPE), blobs)


def test_json_errors(tmp_path, blobs):
    path = tmp_path / "rois.json"
    write_rois(path, blobs)
    with pytest.raises(RoiError, match="rois.json.*shape"):
        read_rois(path)
    with pytest.raises(RoiError, match="rois.json.*outside the image"):
        read_rois(path, shape=(10, 10))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RoiError, match="bad.json"):
        read_rois(bad, SHAPE)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"points": [[1, 2]]}]))
    with pytest.raises(RoiError, match="wrong.json.*coordinates"):
        read_rois(wrong, SHAPE)


# ---------------------------------------------------------------------------------------------------------------
# ImageJ
# ---------------------------------------------------------------------------------------------------------------

def test_imagej_polygon_follows_imagej_geometry(tmp_path):
    # the example of the reference (§6): vertices x = 3..8, y = 2..6; CaImAn gives rows 1..5, cols 2..7
    roi = ImagejRoi.frompoints(np.array([[3, 2], [8, 2], [8, 6], [3, 6]]))
    roi.roitype = ROI_TYPE.POLYGON
    path = tmp_path / "poly.roi"
    roi.tofile(path)
    mask = read_rois(path, shape=(10, 12))
    expected = np.zeros((1, 10, 12), bool)
    expected[0, 2:6, 3:8] = True  # centres (c+.5, r+.5) inside [3, 8] x [2, 6]
    np.testing.assert_array_equal(mask, expected)


def test_imagej_zip_of_every_area_type(tmp_path):
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    free = ImagejRoi.frompoints(np.stack([15 + 6.3 * np.cos(t), 20 + 4.2 * np.sin(t)], axis=1).astype(np.float32))
    poly = ImagejRoi.frompoints(np.array([[2, 30], [12, 28], [7, 39]]))
    poly.roitype = ROI_TYPE.POLYGON
    rect = ImagejRoi(roitype=ROI_TYPE.RECT, left=20, top=3, right=26, bottom=11)
    oval = ImagejRoi(roitype=ROI_TYPE.OVAL, left=4, top=5, right=15, bottom=12)
    path = tmp_path / "RoiSet.zip"
    roiwrite(path, [free, poly, rect, oval], name=["a", "b", "c", "d"])
    masks = read_rois(path, SHAPE)
    assert masks.shape == (4,) + SHAPE
    fx, fy = free.coordinates().T
    np.testing.assert_array_equal(masks[0], centre_inside(fx, fy, SHAPE))
    np.testing.assert_array_equal(masks[1], centre_inside(np.array([2, 12, 7]), np.array([30, 28, 39]), SHAPE))
    expected_rect = np.zeros(SHAPE, bool)
    expected_rect[3:11, 20:26] = True
    np.testing.assert_array_equal(masks[2], expected_rect)
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    expected_oval = ((cols + 0.5 - 9.5) / 5.5) ** 2 + ((rows + 0.5 - 8.5) / 3.5) ** 2 <= 1
    np.testing.assert_array_equal(masks[3], expected_oval)


def test_polygon_pixels_on_slanted_edges_follow_imagej():
    """Integer vertices put pixel centres exactly on slanted edges: ImageJ 1.x fills this diamond with 200 pixels
    (its filler counts such centres on the right-hand edges only; counting them on every edge gives 220)."""
    from cellfie_caiman.rois import polygon_mask

    x, y = np.array([20, 30, 20, 10]), np.array([10, 20, 30, 20])
    mask = polygon_mask(x, y, (40, 40))
    assert mask.sum() == 200
    np.testing.assert_array_equal(mask, centre_inside(x, y, (40, 40)))


def test_imagej_clipping_and_non_area_rois(tmp_path):
    edge = ImagejRoi(roitype=ROI_TYPE.RECT, left=28, top=-2, right=40, bottom=3)
    path = tmp_path / "edge.roi"
    edge.tofile(path)
    expected = np.zeros(SHAPE, bool)
    expected[0:3, 28:32] = True
    np.testing.assert_array_equal(read_rois(path, SHAPE)[0], expected)
    line = ImagejRoi(roitype=ROI_TYPE.LINE, x1=1, y1=1, x2=10, y2=10)
    path = tmp_path / "line.roi"
    line.tofile(path)
    with pytest.raises(RoiError, match="line.roi.*no area"):
        read_rois(path, SHAPE)
    with pytest.raises(RoiError, match="edge.roi.*shape"):
        read_rois(tmp_path / "edge.roi")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(RoiError, match="junk.zip"):
        read_rois(junk, SHAPE)


def test_imagej_zip_round_trip(tmp_path, blobs):
    path = tmp_path / "RoiSet.zip"
    write_rois(path, blobs)
    rois = roiread(path)  # readable by roifile (and so by ImageJ/Fiji)
    assert len(rois) == len(blobs)
    assert all(r.roitype == ROI_TYPE.TRACED for r in rois)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [f"{k + 1:04d}.roi" for k in range(len(blobs))]
    back = read_rois(path, SHAPE)
    assert min(iou(a, b) for a, b in zip(back, blobs, strict=True)) > 0.9
    np.testing.assert_array_equal(back, blobs)  # traced outlines are exact for one-piece masks


def test_imagej_writer_diagonal_pieces_and_holes(tmp_path):
    diag = np.zeros(SHAPE, bool)
    diag[2:5, 2:5] = True
    diag[5:8, 5:8] = True  # touches the first square at one corner only
    ring = np.zeros(SHAPE, bool)
    ring[10:20, 10:20] = True
    ring[14:16, 14:16] = False
    path = tmp_path / "x.zip"
    with pytest.warns(UserWarning, match="holes or several pieces"):
        write_rois(path, np.array([diag, ring]))
    back = read_rois(path, SHAPE)
    np.testing.assert_array_equal(back[0], diag)
    np.testing.assert_array_equal(back[1], ring | (np.pad(np.ones((2, 2), bool), ((14, 24), (14, 16)))))
    with pytest.raises(RoiError, match="empty.zip.*empty"):
        write_rois(tmp_path / "empty.zip", np.zeros((1,) + SHAPE, bool))
    assert not list(tmp_path.glob("*empty*"))  # nothing half-written


# ---------------------------------------------------------------------------------------------------------------
# numpy, CaImAn HDF5, Suite2p, NWB
# ---------------------------------------------------------------------------------------------------------------

def test_numpy_masks_and_ain(tmp_path, blobs):
    np.save(tmp_path / "m.npy", blobs.astype(np.float32) * 0.5)
    np.testing.assert_array_equal(read_rois(tmp_path / "m.npy"), blobs)
    np.savez(tmp_path / "m.npz", masks=blobs, other=np.arange(3))
    np.testing.assert_array_equal(read_rois(tmp_path / "m.npz", SHAPE), blobs)
    np.savez(tmp_path / "one.npz", blobs)
    np.testing.assert_array_equal(read_rois(tmp_path / "one.npz"), blobs)
    ain = np.stack([m.flatten(order="F") for m in blobs], axis=1)  # CaImAn's Ain: column k = mask_k in F order
    np.save(tmp_path / "ain.npy", ain)
    np.testing.assert_array_equal(read_rois(tmp_path / "ain.npy", SHAPE), blobs)
    with pytest.raises(RoiError, match="ain.npy.*shape"):
        read_rois(tmp_path / "ain.npy")
    with pytest.raises(RoiError, match="m.npy.*shape"):
        read_rois(tmp_path / "m.npy", shape=(32, 40))


def write_caiman_hdf5(path, A, dims, idx_components=None):
    """The layout CaImAn's save_dict_to_hdf5 writes: /dims and a CSC group /estimates/A."""
    A = scipy.sparse.csc_matrix(A)
    with h5py.File(path, "w") as f:
        f["dims"] = np.array(dims)
        g = f.create_group("estimates/A")
        g["data"], g["indices"], g["indptr"], g["shape"] = A.data, A.indices, A.indptr, np.array(A.shape)
        f["estimates/idx_components"] = "NoneType" if idx_components is None else np.asarray(idx_components)


def naive_protocol_mask(weights: np.ndarray) -> np.ndarray:
    """CaImAn's benchmark binarisation of one footprint image, written out: > 0.2 of its peak, the 8-connected part
    that holds the peak, holes filled."""
    from scipy import ndimage

    labels, _ = ndimage.label(weights > 0.2 * weights.max(), structure=np.ones((3, 3)))
    peak = np.unravel_index(np.argmax(weights), weights.shape)
    return ndimage.binary_fill_holes(labels == labels[peak])


def test_caiman_hdf5(tmp_path, blobs):
    rng = np.random.default_rng(0)
    weights = rng.random(blobs.shape) * blobs  # soft footprints on the masks' support
    weights[:, 0, 0] = 0
    A = np.stack([w.flatten(order="F") for w in weights], axis=1)
    path = tmp_path / "results.hdf5"
    write_caiman_hdf5(path, A, SHAPE)
    protocol = np.stack([naive_protocol_mask(w) for w in weights])
    assert (protocol != (weights > 0)).any()  # the protocol's mask is not the support here
    np.testing.assert_array_equal(read_rois(path), protocol)
    np.testing.assert_array_equal(read_rois(path, a_threshold=0), weights > 0)
    half = read_rois(path, a_threshold=0.5)
    np.testing.assert_array_equal(half, weights > 0.5 * weights.max(axis=(1, 2), keepdims=True))
    write_caiman_hdf5(path, A, SHAPE, idx_components=[4, 1])
    np.testing.assert_array_equal(read_rois(path), protocol[[4, 1]])
    assert len(read_rois(path, accepted_only=False)) == len(blobs)
    with pytest.raises(RoiError, match="results.hdf5.*differ"):
        read_rois(path, shape=(32, 40))


def test_suite2p(tmp_path, blobs):
    folder = tmp_path / "plane0"
    folder.mkdir()
    stat = np.array([{"ypix": np.nonzero(m)[0], "xpix": np.nonzero(m)[1], "lam": np.ones(m.sum()),
                      "overlap": np.zeros(m.sum(), bool)} for m in blobs], dtype=object)
    np.save(folder / "stat.npy", stat, allow_pickle=True)
    with pytest.raises(RoiError, match="stat.npy.*shape"):
        read_rois(folder / "stat.npy")
    np.testing.assert_array_equal(read_rois(folder / "stat.npy", SHAPE), blobs)
    np.save(folder / "ops.npy", np.array({"Ly": SHAPE[0], "Lx": SHAPE[1]}, dtype=object), allow_pickle=True)
    iscell = np.zeros((len(blobs), 2))
    iscell[[0, 3, 7], 0] = 1
    np.save(folder / "iscell.npy", iscell)
    np.testing.assert_array_equal(read_rois(folder / "stat.npy"), blobs[[0, 3, 7]])


def write_nwb_rois(path, masks, pixel_mask=False, raw_shape=None, corrected_shape=None, raw_type="TwoPhotonSeries"):
    """An NWB file of ``masks`` (image or pixel masks) and a raw movie (a ``raw_type``: 'TwoPhotonSeries' or
    'OnePhotonSeries') of frames ``raw_shape`` (default: the masks'; 0: frames in an external file), with a
    motion-corrected stack of frames ``corrected_shape`` if given."""
    from datetime import datetime, timezone

    import pynwb.ophys
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.image import ImageSeries
    from pynwb.ophys import CorrectedImageStack, ImageSegmentation, MotionCorrection, OpticalChannel

    series_type = getattr(pynwb.ophys, raw_type)

    nwb = NWBFile(session_description="t", identifier="i", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device(name="scope")
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="ch", description="g", emission_lambda=520.0),
        description="p", device=device, excitation_lambda=920.0, imaging_rate=30.0, indicator="GCaMP",
        location="V1")
    raw_shape = masks.shape[1:] if raw_shape is None else raw_shape
    raw = series_type(name=raw_type, data=np.zeros((3,) + tuple(raw_shape), np.uint16), imaging_plane=plane,
                      rate=30.0, unit="a.u.") if raw_shape else \
        series_type(name=raw_type, external_file=["raw.tif"], starting_frame=[0], format="external",
                    imaging_plane=plane, timestamps=np.arange(3) / 30.0, unit="a.u.")
    nwb.add_acquisition(raw)
    seg = ImageSegmentation()
    ophys = nwb.create_processing_module(name="ophys", description="rois")
    ophys.add(seg)
    if corrected_shape is not None:
        corrected = ImageSeries(name="corrected", data=np.zeros((3,) + tuple(corrected_shape), np.float32),
                                unit="a.u.", rate=30.0)
        shifts = TimeSeries(name="xy_translation", data=np.zeros((3, 2)), unit="pixels", rate=30.0)
        ophys.add(MotionCorrection(corrected_image_stacks=[CorrectedImageStack(
            name="plane0", corrected=corrected, original=raw, xy_translation=shifts)]))
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="rois", imaging_plane=plane)
    for mask in masks:
        if pixel_mask:  # NWB: x is the first image axis (rows here), as image_to_pixel writes it
            rows, cols = np.nonzero(mask)
            ps.add_roi(pixel_mask=[(int(r), int(c), float(mask[r, c])) for r, c in zip(rows, cols, strict=True)])
        else:
            ps.add_roi(image_mask=mask.astype(float))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


@pytest.mark.parametrize("pixel_mask", [False, True])
def test_nwb_plane_segmentation(tmp_path, blobs, pixel_mask):
    path = tmp_path / "rois.nwb"
    write_nwb_rois(path, blobs[:5], pixel_mask=pixel_mask)
    np.testing.assert_array_equal(read_rois(path), blobs[:5])
    # weighted masks (footprints, as CNMF results hold them): binarised as CaImAn HDF5 results are
    weights = np.random.default_rng(1).random(blobs[:5].shape) * blobs[:5]
    write_nwb_rois(path, weights, pixel_mask=pixel_mask)
    np.testing.assert_array_equal(read_rois(path), np.stack([naive_protocol_mask(w) for w in weights]))
    np.testing.assert_array_equal(read_rois(path, a_threshold=0), weights > 0)


def test_nwb_pixel_masks_take_the_frame_shape_of_a_motion_corrected_movie(tmp_path, blobs):
    """Pixel masks do not store the frame size: it comes from the file's movies, motion-corrected ones included
    (the raw movie may be in an external file, or of another size where the corrected one was cropped)."""
    path = tmp_path / "rois.nwb"
    write_nwb_rois(path, blobs[:5], pixel_mask=True, raw_shape=0, corrected_shape=blobs.shape[1:])
    np.testing.assert_array_equal(read_rois(path), blobs[:5])
    cropped = (blobs.shape[1] - 4, blobs.shape[2])
    write_nwb_rois(path, blobs[:5], pixel_mask=True, corrected_shape=cropped)
    with pytest.raises(RoiError, match=re.escape(str(sorted({cropped, blobs.shape[1:]})))):
        read_rois(path)  # which frame shape? the caller says (shape=...)
    np.testing.assert_array_equal(read_rois(path, shape=blobs.shape[1:]), blobs[:5])


def test_nwb_pixel_masks_take_the_frame_shape_of_a_one_photon_movie(tmp_path, blobs):
    """A miniscope or widefield recording (pynwb >= 2.4's OnePhotonSeries) gives the frame size of pixel masks as a
    TwoPhotonSeries does."""
    import pynwb.ophys

    if not hasattr(pynwb.ophys, "OnePhotonSeries"):
        pytest.skip(f"pynwb {pynwb.__version__} has no OnePhotonSeries")
    path = tmp_path / "rois.nwb"
    write_nwb_rois(path, blobs[:5], pixel_mask=True, raw_type="OnePhotonSeries")
    np.testing.assert_array_equal(read_rois(path), blobs[:5])


@pytest.mark.parametrize("writer", ["caiman", "other"])
def test_nwb_in_caimans_layout_gives_the_kept_rois_without_the_background(tmp_path, blobs, writer):
    """The layout of CaImAn's save_NWB (written here with pynwb as it does): a 'keep' column, and the background
    components as extra rows of the same table, named by the Background_Fluorescence_Response series. CaImAn's
    own files (its module description) hold each image as ``A[:, k].toarray().reshape(dims)``: the column-major
    footprint reshaped row-major (CaImAn 1.12 estimates.py); another writer's hold the images themselves."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel

    rois, background = blobs[:6], np.ones((2,) + blobs.shape[1:])
    keep = np.array([True, False, True, True, False, True])
    nwb = NWBFile(session_description="t", identifier="i", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="ch", description="g", emission_lambda=520.0),
        description="p", device=nwb.create_device(name="scope"), excitation_lambda=920.0, imaging_rate=30.0,
        indicator="GCaMP", location="V1")
    description = "contains caiman estimates for the main imaging plane" if writer == "caiman" else "other tool"

    def stored(image):  # CaImAn: its A's column (Fortran pixel order) reshaped in C order
        return image.flatten(order="F").reshape(image.shape) if writer == "caiman" else image

    module = nwb.create_processing_module(name="ophys", description=description)
    seg = ImageSegmentation()
    module.add(seg)
    fl = Fluorescence()
    module.add(fl)
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="CNMF_ROIs", imaging_plane=plane)
    ps.add_column("keep", "in idx_components")
    for mask, k in zip(rois, keep, strict=True):
        ps.add_roi(image_mask=stored(mask.astype(float)), keep=bool(k))
    for image in background:
        ps.add_roi(image_mask=stored(image), keep=False)
    for name, region in [("RoiResponseSeries", range(6)), ("Background_Fluorescence_Response", range(6, 8))]:
        fl.create_roi_response_series(name=name, data=np.zeros((5, len(region))), unit="a.u.", rate=30.0,
                                      rois=ps.create_roi_table_region(name, region=list(region)))
    path = tmp_path / "caiman.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    np.testing.assert_array_equal(read_rois(path), rois[keep])
    np.testing.assert_array_equal(read_rois(path, accepted_only=False), rois)


def test_nwb_from_suite2p_gives_its_cells(tmp_path, blobs):
    """Suite2p's NWB export: pixel masks (ypix, xpix, lam) and an (N, 2) 'iscell' column (classification,
    probability), written here with pynwb as it does."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import ImageSegmentation, OpticalChannel

    rois = blobs[:5]
    iscell = np.array([[1, 0.9], [0, 0.2], [1, 0.7], [0, 0.45], [1, 0.6]])
    nwb = NWBFile(session_description="t", identifier="i", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="ch", description="g", emission_lambda=520.0),
        description="p", device=nwb.create_device(name="scope"), excitation_lambda=920.0, imaging_rate=30.0,
        indicator="GCaMP", location="V1")
    seg = ImageSegmentation()
    nwb.create_processing_module(name="ophys", description="suite2p").add(seg)
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="suite2p", imaging_plane=plane)
    for mask in rois:
        ypix, xpix = np.nonzero(mask)
        ps.add_roi(pixel_mask=np.array([ypix, xpix, np.full(len(ypix), 0.5)]).T)
    ps.add_column("iscell", "two columns - iscell & probcell", iscell)
    path = tmp_path / "suite2p.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    np.testing.assert_array_equal(read_rois(path, blobs.shape[1:]), rois[[0, 2, 4]])
    np.testing.assert_array_equal(read_rois(path, blobs.shape[1:], accepted_only=False), rois)


def test_missing_and_unknown(tmp_path):
    with pytest.raises(RoiError, match="nothere.json"):
        read_rois(tmp_path / "nothere.json", SHAPE)
    other = tmp_path / "rois.csv"
    other.write_text("1,2\n")
    with pytest.raises(MovieError, match="rois.csv.*unknown ROI format"):
        read_rois(other, SHAPE)
    with pytest.raises(RoiError, match="rois.txt"):
        write_rois(tmp_path / "rois.txt", np.zeros((1,) + SHAPE, bool))


def test_imagej_fit_spline_is_the_curve_imagej_fills():
    """A polygon saved with Edit > Selection > Fit Spline keeps its 4 control points and the SPLINE_FIT flag; ImageJ
    fits the spline when it reads the file. Reference: the mask real ImageJ 1.x (compiled from imagej/ImageJ;
    RoiDecoder, then ImageProcessor.fill(roi)) gives for this file on a 48 x 48 image, as (row, first col, end col)
    runs: 396 pixels; the control polygon alone has 260."""
    from roifile import ROI_OPTIONS

    runs = [(10, 22, 26), (11, 19, 29), (12, 17, 31), (13, 16, 32), (14, 15, 32), (15, 15, 33), (16, 14, 34),
            (17, 14, 34), (18, 14, 34), (19, 13, 34), (20, 13, 35), (21, 13, 35), (22, 13, 35), (23, 13, 35),
            (24, 14, 34), (25, 14, 34), (26, 14, 34), (27, 14, 33), (28, 15, 33), (29, 16, 32), (30, 16, 31),
            (31, 17, 29), (32, 19, 27)]
    imagej = np.zeros((48, 48), bool)
    for r, c0, c1 in runs:
        imagej[r, c0:c1] = True
    roi = ImagejRoi.frompoints(np.array([[15, 15], [30, 12], [33, 28], [18, 32]], np.int32))
    roi.roitype = ROI_TYPE.POLYGON
    plain = read_rois_bytes(roi, (48, 48))
    roi.options |= ROI_OPTIONS.SPLINE_FIT
    np.testing.assert_array_equal(read_rois_bytes(roi, (48, 48)), imagej)
    assert plain.sum() < 300


def read_rois_bytes(roi, shape):
    """read_rois of one ImageJ ROI written to a temporary .roi file."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.roi"
        roi.tofile(path)
        return read_rois(path, shape)[0]


def test_imagej_rois_outside_the_frame_are_an_error_not_empty_masks(tmp_path):
    """Fiji gives image sizes as width x height: (width, height) passed for (rows, cols) put ROIs outside."""
    squares = [ImagejRoi.frompoints(np.array([[x, y], [x + 6, y], [x + 6, y + 6], [x, y + 6]], np.int32))
               for x, y in [(5, 5), (50, 10), (44, 30)]]
    roiwrite(tmp_path / "RoiSet.zip", squares)
    assert read_rois(tmp_path / "RoiSet.zip", (40, 64)).sum(axis=(1, 2)).tolist() == [36, 36, 36]
    with pytest.raises(RoiError, match="outside the frame of 64 rows x 40 columns.*width, height"):
        read_rois(tmp_path / "RoiSet.zip", (64, 40))
    # partly outside (drawn across the border) stays a clipped mask
    roiwrite(tmp_path / "edge.zip", [ImagejRoi.frompoints(np.array([[36, 5], [44, 5], [44, 11], [36, 11]],
                                                                   np.int32))])
    assert read_rois(tmp_path / "edge.zip", (40, 40)).sum() == 6 * 4


def test_imagej_composite_with_curves_is_a_clear_error(tmp_path):
    """ImageJ writes curved path segments (SEG_CUBICTO, 3) in composite ROIs of rounded rectangles; roifile cannot
    flatten them."""
    path = [0, 10, 10, 1, 20, 10, 3, 25, 10, 25, 15, 25, 20, 1, 10, 20, 4]
    roi = ImagejRoi()
    roi.roitype, roi.version = ROI_TYPE.RECT, 228
    roi.left, roi.top, roi.right, roi.bottom = 10, 10, 26, 21
    roi.multi_coordinates = np.array(path, np.float32)
    roi.shape_roi_size = len(path)
    roi.tofile(tmp_path / "curve.roi")
    with pytest.raises(RoiError, match="curve.roi.*curved segments"):
        read_rois(tmp_path / "curve.roi", (48, 48))


def test_scores_without_a_shape_read_every_roi_whole(tmp_path):
    """An ImageJ prediction reaching beyond the ground truth's JSON extent: without a shape it must be read whole
    (scored as with the true frame), not cut to the JSON's rows."""
    from cellfie_caiman.pipeline import evaluate_files
    from cellfie_caiman.rois import file_extent

    gt = np.zeros((64, 64), bool)
    gt[20:30, 10:20] = True
    (tmp_path / "gt.json").write_text(json.dumps([{"coordinates": np.argwhere(gt).tolist()}]))
    roiwrite(tmp_path / "pred.zip", [ImagejRoi.frompoints(np.array([[10, 25], [20, 25], [20, 41], [10, 41]],
                                                                   np.int32))])
    assert file_extent(tmp_path / "gt.json") == (30, 20)
    rows, cols = file_extent(tmp_path / "pred.zip")  # the ROI's bounds (ImageJ's, which may hold one more pixel)
    assert rows >= 41 and cols >= 20
    for rule in ("caiman", "iou"):
        auto = evaluate_files(tmp_path / "pred.zip", tmp_path / "gt.json")[rule]
        true = evaluate_files(tmp_path / "pred.zip", tmp_path / "gt.json", (64, 64))[rule]
        assert (auto.tp, auto.fp, auto.fn) == (true.tp, true.fp, true.fn) == (0, 1, 1)


def test_files_that_are_not_what_they_seem_are_clear_errors(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "images.zip", "w") as z:  # a zip of images given as ROIs
        z.writestr("frame0001.tif", b"II*\x00")
    with pytest.raises(RoiError, match="no ImageJ .roi entry.*frame0001.tif"):
        read_rois(tmp_path / "images.zip", (32, 32))
    roiwrite(tmp_path / "empty.zip", [])  # an empty RoiSet is zero ROIs
    assert read_rois(tmp_path / "empty.zip", (32, 32)).shape == (0, 32, 32)
    (tmp_path / "ragged.json").write_text(json.dumps([{"coordinates": [[1, 2], [3]]}]))
    with pytest.raises(RoiError, match="ragged.json: region 0 coordinates must be"):
        read_rois(tmp_path / "ragged.json", (32, 32))
    (tmp_path / "one.json").write_text(json.dumps([{"coordinates": [[1, 2]]}]))
    with pytest.raises(RoiError, match="whole numbers"):
        read_rois(tmp_path / "one.json", (31.9, 32))
    A = scipy.sparse.csc_matrix(np.eye(32 * 32, 2))
    with h5py.File(tmp_path / "r.hdf5", "w") as f:
        g = f.create_group("estimates/A")
        g["data"], g["indices"], g["indptr"], g["shape"] = A.data, A.indices, A.indptr, A.shape
        f["dims"], f["estimates/idx_components"] = [32, 32], [0, 5]
    with pytest.raises(RoiError, match="idx_components names components 0..5, but A has 2"):
        read_rois(tmp_path / "r.hdf5")


def test_a_roiset_zipped_by_macos_reads_without_its_appledouble_entries(tmp_path):
    import zipfile

    square = ImagejRoi.frompoints(np.array([[2, 2], [6, 2], [6, 6], [2, 6]], np.int32))
    with zipfile.ZipFile(tmp_path / "mac.zip", "w") as z:
        z.writestr("RoiSet/0001.roi", square.tobytes())
        z.writestr("__MACOSX/RoiSet/._0001.roi", b"\x00\x05\x16\x07" + b"\x00" * 30)
    masks = read_rois(tmp_path / "mac.zip", (32, 32))
    assert masks.shape == (1, 32, 32) and masks[0, 2:6, 2:6].all() and masks.sum() == 16


def test_evaluate_files_refuses_two_files_of_different_recorded_fields(tmp_path):
    """Mask arrays record their frame: 32 x 32 predictions scored against 64 x 64 ground truth were padded and
    scored as if drawn on the same field; ROI files that record no frame are read on the one the other records."""
    from cellfie_caiman.pipeline import evaluate_files

    gt = np.zeros((2, 64, 64), bool)
    gt[0, 5:12, 5:12] = gt[1, 40:48, 30:38] = True
    np.save(tmp_path / "gt64.npy", gt)
    np.save(tmp_path / "pred32.npy", gt[:1, :32, :32])
    with pytest.raises(ValueError, match=r"\(32, 32\).*\(64, 64\).*different fields"):
        evaluate_files(tmp_path / "pred32.npy", tmp_path / "gt64.npy")
    write_rois(tmp_path / "pred.json", gt[:1])  # records no frame: read on the 64 x 64 one
    m = evaluate_files(tmp_path / "pred.json", tmp_path / "gt64.npy")["caiman"]
    assert (m.tp, m.fp, m.fn) == (1, 0, 1)


# NWB files written by NeuroConv: image masks (N, cols, rows) like its movies; pixel masks (row, col, weight)

def write_neuroconv_rois(path, masks, pixel_mask=False, script="Created using NeuroConv v0.6.1"):
    """An NWB file of ``masks`` (N, rows, cols) as NeuroConv writes a segmentation beside its movie (written here by
    hand with pynwb, not by NeuroConv): ``general/source_script`` = ``script``; a TwoPhotonSeries whose frame is the
    sum of the masks, stored ``get_series().transpose(0, 2, 1)``; the image masks ``get_roi_image_masks().T`` of the
    (rows, cols, N) stack (N, cols, rows), or roiextractors' pixel masks (row, col, weight) as they are."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import ImageSegmentation, OpticalChannel, TwoPhotonSeries

    nwb = NWBFile(session_description="t", identifier="i", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
                  source_script=script, source_script_file_name="convert.py")
    plane = nwb.create_imaging_plane(
        name="ImagingPlane", optical_channel=OpticalChannel(name="ch", description="g", emission_lambda=520.0),
        description="p", device=nwb.create_device(name="scope"), excitation_lambda=920.0, imaging_rate=30.0,
        indicator="GCaMP", location="V1")
    frames = np.repeat(masks.sum(0)[None].astype(np.uint16) * 100, 3, axis=0)   # (3, rows, cols)
    nwb.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", data=frames.transpose(0, 2, 1), imaging_plane=plane,
                                        rate=30.0, unit="n.a.", dimension=list(masks.shape[1:])))
    ophys = nwb.create_processing_module(name="ophys", description="contains optical physiology processed data")
    seg = ImageSegmentation(name="ImageSegmentation")
    ophys.add(seg)
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="rois", imaging_plane=plane)
    stack = np.moveaxis(masks.astype(float), 0, -1)  # roiextractors' (rows, cols, N)
    for k in range(len(masks)):
        if pixel_mask:
            rows, cols = np.nonzero(masks[k])
            ps.add_roi(pixel_mask=[(int(r), int(c), 1.0) for r, c in zip(rows, cols, strict=True)])
        else:
            ps.add_roi(image_mask=stack.T[k])
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


@pytest.mark.parametrize("pixel_mask", [False, True])
def test_nwb_rois_written_by_neuroconv_lie_on_its_movie_in_rows_cols_order(tmp_path, blobs, pixel_mask, caplog):
    """Read as stored, NeuroConv's image masks came back (N, cols, rows) and its pixel masks were placed in the
    (cols, rows) frame of its stored movie (outside it: an error). Now both are (N, rows, cols), on the movie as
    load_movie reads it."""
    from cellfie_caiman.io import load_movie

    masks = blobs[:5]
    path = tmp_path / "neuroconv.nwb"
    write_neuroconv_rois(path, masks, pixel_mask=pixel_mask)
    with caplog.at_level("INFO", logger="cellfie_caiman.rois"):
        read = read_rois(path)
    np.testing.assert_array_equal(read, masks)
    assert "written by NeuroConv v0.6" in caplog.text
    np.testing.assert_array_equal(read_rois(path, shape=SHAPE), masks)
    movie = load_movie(path)
    np.testing.assert_array_equal(movie[0] > 0, read.any(0))  # the masks lie where the movie is bright
    movie.close()
    if not pixel_mask:
        with pytest.raises(RoiError, match=r"frame shape \(40, 32\) \(rows, cols; stored transposed\)"):
            read_rois(path, shape=SHAPE[::-1])


def test_nwb_rois_of_a_file_without_a_neuroconv_mark_are_read_as_stored(tmp_path, blobs):
    """The same masks in a file that names another writer: read as stored, as before (x the row axis)."""
    path = tmp_path / "other.nwb"
    write_neuroconv_rois(path, blobs[:5], script="my_conversion.py")
    np.testing.assert_array_equal(read_rois(path), blobs[:5].transpose(0, 2, 1))
