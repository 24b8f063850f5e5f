"""Movie input/output: one lazy ``Movie`` for every format, and CaImAn's memmap layout.

``load_movie`` opens a movie without reading it: frames are read on demand (``m[a:b]`` raw, ``m.read`` /
``m.chunks`` / ``m.to_array`` as float32 with non-finite pixels filled). Supported sources:

* CaImAn memmaps ``{base}_d1_{d1}_d2_{d2}_d3_1_order_{C|F}_frames_{T}.mmap`` (also the older ``..._frames_{T}_.mmap``),
  decoded as CaImAn does (the token after the *last* occurrence of each key). Pixel ``p = i + j*d1`` (Fortran
  flattening of a frame); the float32 value of (p, t) is at element ``p*T + t`` (order C) or ``p + t*d`` (order F).
* multi-page TIFF (memory-mapped when uncompressed and contiguous, otherwise decoded page by page per chunk);
  several channels or z-planes (a (T, C, rows, cols) stack, possibly in several series, an ImageJ hyperstack or
  OME-TIFF whose axes as tifffile reads them are e.g. TCYX, ZCYX or TZYX, a ScanImage volume or multi-channel
  recording) are refused, the error naming the axes and how to read one channel / plane as a movie; so are the
  channels of one image (axes CYX; tifffile labels a 3-D movie's frames C when writing ImageJ or OME-TIFF with its
  defaults, so there a C axis of more than 8 is read as frames unless the file describes its channels: ImageJ's
  composite or colour display, OME channel names or wavelengths). Frames labelled T, Z (ImageJ's plain stack), I or
  none are frames. Several stage positions or tiles (an OME-TIFF of several images, a position/tile axis) are
  refused: pick one with ``tifffile.imread(path, series=k)``; a file cut short (fewer frames than its header
  declares) is refused, saying how many whole frames it holds and how to read them;
* a folder of single-frame TIFFs (sorted naturally: ``img2.tif`` before ``img10.tif``), e.g. neurofinder's
  ``images/``, whose names form one numbered sequence (another channel or a projection beside the frames is
  refused); each file is read alone, even an OME-TIFF whose metadata describe the folder's whole series (files
  that these metadata place in several channels, z-planes or images are refused);
* HDF5 (``.h5``/``.hdf5``): dataset ``var_name``, else ``mov`` (a warning names the file's other 3-D datasets, if
  any), else the only 3-D dataset in the file;
* NWB (``.nwb``): the data of a raw series, a ``TwoPhotonSeries`` or a ``OnePhotonSeries`` (miniscope, widefield;
  NWB 2.6), or the motion-corrected movie of a ``CorrectedImageStack`` (its ``corrected`` ImageSeries;
  ``processing/ophys/MotionCorrection/<name>``). ``var_name`` names a movie by its path in the file or that path's
  last parts: ``'TwoPhotonSeries'``, ``'acquisition/TwoPhotonSeries'``; a corrected stack by its
  CorrectedImageStack's name or path, ``'plane0'``, ``'MotionCorrection/plane0'``, each optionally followed by
  ``'/corrected'`` (a whole path wins over the last parts of another). Without ``var_name``: the corrected movie of
  the file's only corrected stack (a warning names the file's other raw series, if any, beside the raw one it was
  corrected from); several corrected stacks are an error listing them; a file with none gives its only raw series,
  or the only one under ``acquisition/`` with a warning naming the others. The frame rate is the series' ``rate``
  or its ``timestamps``' median step; a corrected series with neither takes its ``original``'s when that holds as
  many frames (or none: external files). Frames in external files are refused. NWB documents the axes as (time, x,
  y); like CaImAn and Suite2p we read them as (time, rows, cols), i.e. NWB's ``x`` is our row axis, except in files
  that NeuroConv (<= 0.10, marked in ``general/source_script`` since 0.4.10) or NWB GUIDE wrote: those store (time,
  width, height) and are read transposed into (time, rows, cols), their image masks alike (``nwb.nwb_axes``;
  logged at INFO). CaImAn reads such a file as stored, transposed: seed CaImAn with masks of the movie CaImAn
  loaded (e.g. ``initialize`` on its memmap), not of the NWB file read here;
* ``.npy`` (memory-mapped) and in-memory arrays (T, rows, cols).

Non-finite pixels (motion correction leaves NaN at the borders) are filled on the float32 paths, never in raw
indexing: each missing value is interpolated linearly in time between the pixel's nearest finite values at most
``FILL_WINDOW`` frames away (the nearest one if only one side has one), otherwise replaced by one constant, the
median of the finite values of the first frame that has any: a pixel that is never finite is then constant, adding
no variance, correlation or peak to the summary images. A movie without a single finite value is a ``MovieError``.
The result depends only on the movie, not on how it is chunked. A ``NonFiniteWarning`` says how many values were
filled (once per Movie).
"""
from __future__ import annotations

from .errors import MovieError, MovieFileNotFoundError, NonFiniteWarning
from .memmap import decode_memmap_name, load_memmap, memmap_name, save_memmap
from .movie import DEFAULT_CHUNK_BYTES, FILL_WINDOW, Movie, load_movie

__all__ = ["Movie", "MovieError", "MovieFileNotFoundError", "NonFiniteWarning", "load_movie", "save_memmap",
           "load_memmap", "decode_memmap_name", "memmap_name", "FILL_WINDOW", "DEFAULT_CHUNK_BYTES"]
