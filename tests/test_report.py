"""Pictures: valid PNG/GIF files, outlines where the masks are, atomic writes."""
import numpy as np
import pytest
from PIL import Image

from cellfie_caiman import report


def _disks(shape, centers, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.array([(yy - r) ** 2 + (xx - c) ** 2 <= radius**2 for r, c in centers])


@pytest.fixture
def scene():
    rng = np.random.default_rng(1)
    shape = (48, 64)
    masks = _disks(shape, [(10, 10), (30, 40), (12, 50)], 4)
    image = rng.random(shape).astype(np.float32) + masks.sum(0)
    return image, masks


def test_mask_contours_trace_the_mask_edge():
    masks = _disks((20, 30), [(8, 12)], 3)
    (polys,) = report.mask_contours(masks)
    assert len(polys) == 1
    x, y = polys[0][:, 0], polys[0][:, 1]
    rows, cols = np.nonzero(masks[0])
    # the outline runs half a pixel outside the outermost pixel centres
    assert np.isclose(x.min(), cols.min() - 0.5) and np.isclose(x.max(), cols.max() + 0.5)
    assert np.isclose(y.min(), rows.min() - 0.5) and np.isclose(y.max(), rows.max() + 0.5)
    assert report.mask_contours(np.zeros((1, 5, 5), bool)) == [[]]


def test_pictures_are_valid_png(tmp_path, scene):
    image, masks = scene
    paths = [
        report.plot_contours(image, masks, tmp_path / "c.png", scores=[0.9, 0.6, 0.7], accepted=[True, False, True],
                             gt_masks=masks[:2], title="t"),
        report.plot_probability(image / image.max(), tmp_path / "p.png", masks=masks),
        report.plot_traces(np.random.default_rng(0).random((3, 50)), tmp_path / "t.png", fr=10.0, snr=[1, 3, 2]),
    ]
    for path in paths:
        with Image.open(path) as im:
            im.verify()
            assert im.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "p.png", "t.png"]  # no temp files left


def test_contours_drawn_in_score_colours(tmp_path):
    """Pixels on a mask's outline take the colour the colour map gives its score."""
    masks = _disks((60, 60), [(30, 30)], 12)
    path = report.plot_contours(np.zeros((60, 60)), masks, tmp_path / "c.png", scores=[1.0])
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    yellow = np.array(report._viridis()(1.0)[:3]) * 255
    assert (np.abs(rgb - yellow).max(axis=1) < 30).sum() > 50


def test_bad_lengths_are_refused(tmp_path, scene):
    image, masks = scene
    with pytest.raises(ValueError, match="scores"):
        report.plot_contours(image, masks, tmp_path / "c.png", scores=[1.0])
    with pytest.raises(ValueError, match="accepted"):
        report.plot_contours(image, masks, tmp_path / "c.png", accepted=[True])
    assert not list(tmp_path.iterdir())


def test_gif_frames_show_movie_and_outlines(tmp_path, scene):
    _, masks = scene
    rng = np.random.default_rng(2)
    t = 40
    movie = rng.random((t, 48, 64)).astype(np.float32)
    movie[:, 30, 40] += np.linspace(0, 5, t, dtype=np.float32)  # a pixel brightening over time
    original = movie.copy()
    path = report.save_gif(movie, masks, tmp_path / "m.gif", n_frames=30, smooth=1, spatial_sigma=0, min_size=128)
    np.testing.assert_array_equal(movie, original)  # the caller's movie is not touched
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == 30
        assert im.size == (64 * 2, 48 * 2)  # scaled up by an integer factor to reach min_size
        first = np.asarray(im.convert("RGB")).astype(int)
        im.seek(29)
        last = np.asarray(im.convert("RGB")).astype(int)
    # an outline pixel (edge of the first disk, top row of it) is yellow in every frame
    yy, xx = 6 * 2, 10 * 2
    assert tuple(first[yy, xx]) == (255, 212, 0) and tuple(last[yy, xx]) == (255, 212, 0)
    # the brightening pixel is grey and brighter at the end than at the start
    px = first[30 * 2, 40 * 2]
    assert px[0] == px[1] == px[2] and last[30 * 2, 40 * 2][0] > px[0]


@pytest.mark.parametrize("shape, start, n_out, window, sigma, down", [
    ((300, 130, 1100), 0, 200, 3, 0.7, 3),   # 117 frames per block: two blocks and a part
    ((90, 60, 50), 5, 80, 5, 0.0, 1),        # one block
    ((40, 700, 600), 2, 30, 1, 1.5, 2),      # 39 frames per block, no running mean
])
def test_gif_frames_read_in_blocks_equal_the_whole_stretch_filtered_at_once(shape, start, n_out, window, sigma, down):
    from scipy import ndimage

    rng = np.random.default_rng(3)
    movie = rng.normal(100, 10, shape).astype(np.float32)
    frames = movie[start:start + n_out + window - 1]
    expected = sum(frames[k:k + n_out] for k in range(window)) / np.float32(window)
    if sigma:
        expected = ndimage.gaussian_filter(expected, (0, sigma, sigma))
    r, c = shape[1] // down * down, shape[2] // down * down
    expected = expected[:, :r, :c].reshape(n_out, r // down, down, c // down, down).mean(axis=(2, 4))
    got = report._gif_frames(movie, start, n_out, window, sigma, down)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_interrupted_picture_leaves_previous_file(tmp_path, scene, monkeypatch):
    image, masks = scene
    path = tmp_path / "c.png"
    path.write_bytes(b"previous")
    from matplotlib.figure import Figure

    def boom(self, *args, **kwargs):
        with open(args[0], "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(KeyboardInterrupt):
        report.plot_contours(image, masks, path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]


def test_traces_picture_says_each_trace_has_its_own_scale(tmp_path, monkeypatch):
    """Traces of very different amplitudes are drawn equally tall, so the picture must say so (it has no y scale),
    with or without a caller's title."""
    figures = []
    real_save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or real_save(fig, path))
    traces = np.random.default_rng(0).random((3, 50)) * np.array([[1.0], [10.0], [1000.0]])
    report.plot_traces(traces, tmp_path / "t.png", fr=10.0, snr=[1, 3, 2])
    report.plot_traces(traces, tmp_path / "u.png", fr=10.0, title="no component passed quality control")
    for fig in figures:
        (ax,) = fig.axes
        assert not ax.get_yticks().size  # no amplitude axis...
        assert "own range" in ax.get_title()  # ...so the title says how each trace was scaled


def test_bad_playback_rate_and_label_count_are_clear_errors(tmp_path, scene):
    """A GIF at 0 fps was a ZeroDivisionError, and fewer labels than traces an IndexError mid-drawing."""
    image, masks = scene
    movie = np.repeat(image[None], 10, axis=0)
    for fps in (0, -5, float("nan")):
        with pytest.raises(ValueError, match="fps must be a positive"):
            report.save_gif(movie, masks, tmp_path / "m.gif", fps=fps)
    with pytest.raises(ValueError, match="2 labels for 3 traces"):
        report.plot_traces(np.random.default_rng(0).random((3, 50)), tmp_path / "t.png", fr=10.0, labels=["a", "b"])
    assert not list(tmp_path.iterdir())


def _shown(path):
    """Every frame of a GIF as a viewer shows it (RGB, int), and the frames' durations (ms)."""
    frames, durations = [], []
    with Image.open(path) as im:
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")).astype(int))
            durations.append(im.info["duration"])
    return np.array(frames), durations


@pytest.mark.parametrize("tolerance", [0.1, 0.0])
def test_gif_shows_the_movie_within_its_tolerance_and_the_outlines_in_every_frame(tmp_path, tolerance):
    """Half the field at 0 and half at 10 fix the display range to 0..10: every pixel of every frame, as shown, is
    within ``tolerance`` of the range (plus half a grey level and the palette's rounding) of the movie, a neuron
    lighting up is shown doing so, and its outline is yellow throughout."""
    rows, cols, t = 40, 60, 24
    movie = np.zeros((t, rows, cols), np.float32)
    movie[:, :, cols // 2:] = 10.0
    movie[:, 5:16, 5:16] = np.linspace(0, 10, t, dtype=np.float32)[:, None, None]
    movie[:, 22:32, 5:25] = 5 + np.random.default_rng(4).uniform(-0.4, 0.4, (t, 10, 20))
    masks = _disks((rows, cols), [(10, 10)], 4)
    path = report.save_gif(movie, masks, tmp_path / "m.gif", n_frames=t, smooth=1, spatial_sigma=0, min_size=1,
                           fps=10.0, tolerance=tolerance)
    stored, durations = _shown(path)
    # a frame with nothing to redraw is stored with the one before, their durations added: at 100 ms a frame, the
    # GIF as seen frame by frame is the movie's t frames
    shown = np.repeat(stored, np.array(durations) // 100, axis=0)
    assert shown.shape == (t, rows, cols, 3) and sum(durations) == t * 100
    outline = report.mask_outlines(masks)
    assert (shown[:, outline] == (255, 212, 0)).all()
    grey = shown[..., 0][:, ~outline]
    assert (shown[..., 0] == shown[..., 2])[:, ~outline].all()  # grey where no outline
    expected = 255 * movie[:, ~outline] / 10
    assert np.abs(grey - expected).max() <= 255 * (tolerance + 0.5 / 31) + 1
    neuron = shown[:, 10, 8, 0]  # inside the disk, off its outline
    assert neuron[0] <= 255 * tolerance + 5 and neuron[-1] >= 255 * (1 - tolerance) - 5


def test_a_still_noisy_scene_costs_about_one_gif_frame(tmp_path):
    """Flicker smaller than the tolerance is not redrawn: 60 frames of a still, noisy field take less than three
    times the bytes of one (each frame was stored whole: 9.8 MB for 200 frames of a 512 x 256 field)."""
    rng = np.random.default_rng(5)
    field = np.tile(np.linspace(0, 10, 64, dtype=np.float32), (48, 1))
    movie = field + rng.uniform(-0.25, 0.25, (60, 48, 64)).astype(np.float32)
    masks = _disks((48, 64), [(20, 20)], 5)
    one = report.save_gif(movie[:1], masks, tmp_path / "one.gif", n_frames=1, fps=10.0).stat().st_size
    many = report.save_gif(movie, masks, tmp_path / "many.gif", n_frames=60, fps=10.0).stat().st_size
    assert many < 3 * one
    _, durations = _shown(tmp_path / "many.gif")
    assert sum(durations) == 58 * 100  # 58 frames of the 3-frame running mean, at 10 frames per second


@pytest.mark.parametrize("tolerance", [-0.1, 1.0, float("nan")])
def test_a_gif_tolerance_outside_0_to_1_is_refused(tmp_path, scene, tolerance):
    image, masks = scene
    with pytest.raises(ValueError, match="tolerance must be"):
        report.save_gif(np.repeat(image[None], 5, axis=0), masks, tmp_path / "m.gif", tolerance=tolerance)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fps", [15.0, 7.5, 30.0, 12.0])
def test_gif_frame_durations_add_up_to_the_movie_time(tmp_path, fps):
    """GIF durations are whole centiseconds: rounding each frame's 66.7 ms down to 60 ms played a 15 fps movie at
    16.7 fps. The first n frames must last n / fps (to within 10 ms) for every n, frame by frame, and where frames
    with nothing redrawn are merged into the frame before."""
    rows, cols, t = 24, 32, 40
    movie = np.zeros((t, rows, cols), np.float32)
    movie[:, :, cols // 2:] = 10.0  # display range 0..10
    movie[:, 4:12, 4:12] = (np.arange(t) % 4 * 3 + 0.5)[:, None, None]  # a change in every frame: nothing merged
    masks = _disks((rows, cols), [(18, 8)], 3)
    _, durations = _shown(report.save_gif(movie, masks, tmp_path / "all.gif", n_frames=t, smooth=1,
                                          spatial_sigma=0, min_size=1, fps=fps, tolerance=0.0))
    assert len(durations) == t
    assert np.abs(np.cumsum(durations) - np.arange(1, t + 1) * 1000 / fps).max() <= 10

    changes = [0, 3, 4, 9, 10, 11, 17, 25, 26, 38]  # the square flips between 2 and 8 only at these frames
    level = np.where(np.cumsum(np.isin(np.arange(t), changes)) % 2, 2.0, 8.0).astype(np.float32)
    movie[:, 4:12, 4:12] = level[:, None, None]
    stored, durations = _shown(report.save_gif(movie, masks, tmp_path / "merged.gif", n_frames=t, smooth=1,
                                               spatial_sigma=0, min_size=1, fps=fps, tolerance=0.1))
    assert len(durations) < t - 10  # still frames merged
    ends = np.cumsum(durations)  # ms; each must be within 10 ms of the end of one of the movie's frames ...
    assert np.abs(ends - np.rint(ends * fps / 1000) * 1000 / fps).max() <= 10
    assert abs(ends[-1] - t * 1000 / fps) <= 10
    at_mid_frame = np.searchsorted(ends, (np.arange(t) + 0.5) * 1000 / fps, side="right")
    np.testing.assert_allclose(stored[at_mid_frame, 8, 8, 0], 255 * level / 10, atol=6)  # ... and show it then


def test_a_gif_faster_than_browsers_play_is_warned_about(tmp_path, scene):
    """Frames shorter than 20 ms are played for 100 ms by browsers: at 60 fps the GIF would crawl."""
    image, masks = scene
    with pytest.warns(UserWarning, match="browsers play for 100 ms"):
        report.save_gif(np.repeat(image[None], 5, axis=0), masks, tmp_path / "m.gif", fps=60.0)


def test_traces_with_infinite_or_missing_values_are_drawn_within_their_rows(tmp_path, monkeypatch):
    """A non-finite value (CaImAn's traces or residuals) neither stretches nor breaks the scale of its trace; an
    all-NaN trace is drawn empty, without a warning."""
    import warnings

    figures = []
    real_save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or real_save(fig, path))
    rng = np.random.default_rng(3)
    traces = 1000.0 + 100.0 * rng.random((3, 60))
    raw = traces + rng.normal(0, 5.0, traces.shape)
    raw[0, 10], traces[1, 20], raw[1, 30] = np.inf, np.nan, -np.inf
    traces[2], raw[2] = np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report.plot_traces(traces, tmp_path / "t.png", fr=10.0, raw=raw, snr=[np.inf, 3.0, np.nan])
    (ax,) = figures[0].axes
    lines = ax.get_lines()
    assert len(lines) == 6  # raw and denoised of each trace, the highest SNR (inf) first, NaN last
    for row, offset in enumerate([2, 1]):
        for line in lines[2 * row: 2 * row + 2]:
            y = np.asarray(line.get_ydata(), dtype=float)
            y = y[np.isfinite(y)]
            assert y.size > 50 and y.min() >= offset - 0.3 and y.max() <= offset + 1.1, (row, y.min(), y.max())
    assert not np.isfinite(np.asarray(lines[4].get_ydata(), dtype=float)).any()


@pytest.mark.parametrize(("score", "end"), [(np.inf, 1.0), (-np.inf, 0.0)])
def test_infinite_scores_take_the_end_colours_of_the_scale_not_the_missing_score_white(tmp_path, monkeypatch,
                                                                                       score, end):
    """An SNR of inf (CaImAn's, for a transient over ~116 noise sigmas) is off the top of the scale, not missing."""
    figures = []
    real_save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or real_save(fig, path))
    masks = _disks((60, 60), [(15, 15), (40, 40)], 8)
    report.plot_contours(np.zeros((60, 60)), masks, tmp_path / "c.png", scores=[score, np.nan], score_range=(0, 1))
    (outlines,) = figures[0].axes[0].collections
    np.testing.assert_allclose(outlines.get_colors(), [report._viridis()(end), (1, 1, 1, 1)])


@pytest.mark.parametrize(("scores", "limits"), [([25.0, np.nan], (0.0, 25.0)), ([-3.0, -3.0], (-3.0, 0.0)),
                                                ([0.2, 0.9], (0.0, 1.0)), ([4.0, np.inf, 12.0], (4.0, 12.0))])
def test_colour_bar_spans_the_scores_and_has_a_width_when_they_are_one_value(tmp_path, monkeypatch, scores, limits):
    """One SNR outside 0..1 (a single accepted component) drew a colour bar 1e-9 wide, its ticks unreadable."""
    figures = []
    real_save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or real_save(fig, path))
    masks = _disks((60, 60), [(15, 15), (40, 40), (15, 45)][:len(scores)], 8)
    report.plot_contours(np.zeros((60, 60)), masks, tmp_path / "c.png", scores=scores)
    colour_bar = figures[0].axes[1]
    np.testing.assert_allclose(colour_bar.get_ylim(), limits)
