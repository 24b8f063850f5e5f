"""Read and write regions of interest (ROIs) as boolean masks (N, rows, cols).

Readers (``read_rois``, chosen by file name):

* neurofinder JSON (``*.json``): a list of ``{"coordinates": [[row, col], ...]}`` or the submission dict
  ``{"dataset": ..., "regions": [...]}``. The file has no image size: pass ``shape``.
* ImageJ ROIs (``*.zip`` RoiSet or a single ``*.roi``, read with roifile). ImageJ's own geometry is followed:
  vertices are on pixel corners and a pixel belongs to the ROI when its centre lies inside the outline, so a
  polygon with vertices x = 3..8, y = 2..6 covers columns 3..7 and rows 2..5. (CaImAn's ``nf_read_roi_zip``
  subtracts 1 from every vertex and also keeps the pixels on the outline, giving rows 1..5 and columns 2..7: its
  masks are shifted by -1 px and one pixel larger.) Polygon, freehand, traced, rectangle, oval and composite
  (shape) ROIs are areas; polylines are closed into polygons with a warning; lines and points are errors.
  "Fit Spline" selections (control points and the SPLINE_FIT flag) are the spline ImageJ fits when it reads them
  (the same masks as ImageJ 1.x on the shapes compared). Polygons are filled by ImageJ's rule
  (:func:`polygon_mask`: the same masks as ImageJ 1.x on 52 integer, half-pixel and sub-pixel polygons, where
  pixel centres lying exactly on an edge are counted as ImageJ counts them). Known differences: rounded-rectangle
  corners are square, and sub-pixel rectangles and ovals keep their exact geometry (ImageJ rounds them to whole
  pixels). The files have no image size: pass ``shape``; parts outside the image are clipped (as in ImageJ), a ROI
  wholly outside it is an error.
* ``.npy`` / ``.npz`` masks (N, rows, cols) (npz: key ``masks`` or the only array), or ``Ain`` (rows*cols, N) in
  CaImAn's Fortran pixel order when ``shape`` is given. Non-boolean arrays are binarised at > 0.
* CaImAn HDF5 results (``.hdf5``/``.h5`` with ``/estimates/A``, a CSC group ``data, indices, indptr, shape``;
  pixel p = i + j*rows; dims from ``/dims``), binarised as CaImAn's benchmark protocol does (pixels above 0.2 of
  the footprint's peak, the connected part that holds it, holes filled:
  :func:`cellfie_caiman.masks.footprints_to_masks`, as cellfie-caiman's own ``rois.json``), or with ``a_threshold``
  mask = A[:, k] > ``a_threshold`` * max(A[:, k]) (0: the footprint's support). Only the accepted components
  (``/estimates/idx_components``) are kept when the file lists them, unless ``accepted_only=False``.
* Suite2p ``stat.npy`` (``ypix``, ``xpix`` of every ROI, overlapping pixels included) and, when ``iscell.npy``
  is beside it, only the ROIs with ``iscell[:, 0] == 1``. The shape comes from ``ops.npy`` (``Ly``, ``Lx``) beside
  it, else ``shape``. (``stat.npy`` is a pickle: only read files you trust.)
* NWB ``PlaneSegmentation`` (``.nwb``): ``image_mask`` (N, x, y) or ``pixel_mask`` (x, y, weight), read as (rows,
  cols) like the movie (NWB's x is our row axis). Files that NeuroConv (<= 0.10) or NWB GUIDE wrote, marked so in
  ``general/source_script``, store image masks (N, cols, rows) like their movies: both are read transposed; their
  ``pixel_mask`` x is the row already (roiextractors' order), in the frame shape of the movie as it is read
  (:func:`cellfie_caiman.io.nwb.nwb_axes`; the order used is logged at INFO). Weighted masks (footprints)
  binarised as CaImAn HDF5 results are, binary ones taken as they are. The background components that
  CaImAn's layout stores as rows of the same table (those of the ``Background_Fluorescence_Response`` series) are
  not ROIs and are left out; with a ``keep`` column (CaImAn) or an ``iscell`` column (Suite2p: classification,
  probability) only the kept rows or the cells are read, unless ``accepted_only=False``. Files written by
  CaImAn's ``Estimates.save_NWB`` (processing module described as "contains caiman estimates ...") hold each
  footprint's column of ``A``, in CaImAn's column-major pixel order, reshaped row-major into the image: those
  images are put back in place (a square field would otherwise come back transposed, any other one scrambled).

Writers (``write_rois``): neurofinder JSON (``.json``) and ImageJ RoiSet (``.zip``), written atomically. The
ImageJ outline of a mask is traced along pixel edges (as ImageJ's wand does), so reading it back gives the same
mask exactly, unless the mask has holes (filled) or several separate pieces (only the largest is written); a
warning says when that happens.
"""
from .checks import RoiError
from .read import file_extent, read_rois
from .shapes import masks_from_coordinates, outline, polygon_mask
from .write import write_rois

__all__ = ["RoiError", "read_rois", "write_rois", "masks_from_coordinates", "outline", "polygon_mask", "file_extent"]
