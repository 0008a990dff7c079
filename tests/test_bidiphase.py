"""Bidirectional scan-phase offset: estimation accuracy, correction and conventions."""
import numpy as np
import pytest
from scipy import ndimage

from planeflow import PlaneflowError
from planeflow.core.bidiphase import apply_bidiphase, estimate_bidiphase, plant_bidiphase

LY, LX = 96, 128


def two_photon_image(seed: int, Ly: int = LY, Lx: int = LX, ncells: int = 40) -> np.ndarray:
    """A mean-image-like scene: smooth random background texture plus soma-like blobs."""
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.standard_normal((Ly, Lx)), 4)
    img = (tex - tex.min()) / np.ptp(tex) * 200 + 100
    yy, xx = np.mgrid[:Ly, :Lx]
    for _ in range(ncells):
        cy, cx, r = rng.uniform(0, Ly), rng.uniform(0, Lx), rng.uniform(2, 5)
        img += rng.uniform(100, 400) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return img


def noisy_movie(img: np.ndarray, seed: int, nframes: int = 30, photons: float = 0.2,
                dtype=np.float64) -> np.ndarray:
    """Shot-noise frames of ``img`` (about 20-100 photons per pixel per frame)."""
    rng = np.random.default_rng(seed + 1000)
    counts = rng.poisson(np.broadcast_to(img * photons, (nframes, *img.shape)))
    return (counts / photons).astype(dtype)


def interior(a: np.ndarray, margin: int = 8) -> np.ndarray:
    return a[..., margin:-margin]


# ------------------------------------------------------------------------- estimation
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("offset", [-3, -2, 0, 1])
def test_integer_offsets_are_recovered(offset, seed):
    mov = plant_bidiphase(noisy_movie(two_photon_image(seed), seed), offset)
    est = estimate_bidiphase(mov)
    assert isinstance(est, float)
    assert abs(est - offset) <= 0.25  # integer mode: exactly the planted offset
    assert abs(estimate_bidiphase(mov, subpixel=True) - offset) <= 0.25


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("offset", [2.5, -1.3, 0.6])
def test_fractional_offsets_are_recovered_in_subpixel_mode(offset, seed):
    mov = plant_bidiphase(noisy_movie(two_photon_image(seed), seed), offset)
    assert abs(estimate_bidiphase(mov, subpixel=True) - offset) <= 0.25
    # integer mode gives one of the two neighbouring integers
    assert estimate_bidiphase(mov) in (np.floor(offset), np.ceil(offset))


def test_fourier_shifted_lines_are_recovered():
    """A band-limited (pure) subpixel shift, not produced by our own interpolation."""
    wide = two_photon_image(5, Lx=LX + 64)
    mov = noisy_movie(wide, 5)
    k = np.fft.fftfreq(wide.shape[1])
    for d in (0.4, -2.25):
        shifted = mov.copy()
        shifted[:, 1::2] = np.fft.ifft(np.fft.fft(mov[:, 1::2], axis=2)
                                       * np.exp(-2j * np.pi * k * d), axis=2).real
        assert abs(estimate_bidiphase(shifted[:, :, 32:-32], subpixel=True) - d) <= 0.15


def test_zero_offset_gives_zero():
    mov = noisy_movie(two_photon_image(3), 3)
    assert estimate_bidiphase(mov) == 0.0
    assert abs(estimate_bidiphase(mov, subpixel=True)) <= 0.1
    out = apply_bidiphase(mov, 0)
    assert np.array_equal(out, mov) and out is not mov


def test_sign_convention_on_a_stripe():
    """offset d: odd lines show the scene d pixels further right; apply shifts them back."""
    img = np.zeros((32, 64))
    img[:, 20:23] = 100.0
    planted = plant_bidiphase(img, 3)
    assert np.all(planted[0::2, 20:23] == 100) and np.all(planted[1::2, 23:26] == 100)
    assert estimate_bidiphase(planted) == 3.0
    assert np.array_equal(apply_bidiphase(planted, 3), img)
    # negative offsets move odd lines left
    assert np.all(plant_bidiphase(img, -2)[1::2, 18:21] == 100)


def test_single_image_int16_and_small_images():
    img = two_photon_image(4)
    planted = plant_bidiphase(img.astype(np.int16), -2)
    assert estimate_bidiphase(planted) == -2.0  # a 2-D image is accepted
    # max_offset is limited to what the line length allows
    assert estimate_bidiphase(np.ones((3, 4, 6), np.int16)) == 0.0
    assert estimate_bidiphase(np.zeros((2, 8, 8))) == 0.0  # no structure: no offset


def test_max_offset_limits_the_search():
    mov = plant_bidiphase(noisy_movie(two_photon_image(6), 6), 6)
    assert estimate_bidiphase(mov) == 6.0
    assert abs(estimate_bidiphase(mov, max_offset=3)) <= 3


# ------------------------------------------------------------------------- correction
@pytest.mark.parametrize("offset", [-3, -2, 1, 4])
def test_integer_round_trip_is_exact_away_from_line_ends(offset):
    img = two_photon_image(7)
    back = apply_bidiphase(plant_bidiphase(img, offset), offset)
    m = abs(offset)
    assert np.array_equal(back[:, m:LX - m], img[:, m:LX - m])
    assert np.array_equal(back[0::2], img[0::2])  # even lines never change


@pytest.mark.parametrize("offset", [-3, -2, 0, 1, 2.5])
def test_estimate_then_apply_restores_the_image(offset):
    img = two_photon_image(8)
    mov = noisy_movie(img, 8)
    planted = plant_bidiphase(mov, offset)
    est = estimate_bidiphase(planted, subpixel=offset != int(offset))
    corrected = apply_bidiphase(planted, est)
    # error of the corrected mean image vs the offset-free one, relative to its contrast
    ref = mov.mean(0)

    def rel_err(a):
        return np.sqrt(np.mean(interior(a.mean(0) - ref) ** 2)) / img.std()

    rel = rel_err(corrected)
    if offset == int(offset):
        assert np.array_equal(interior(corrected), interior(mov))
    else:  # linear interpolation twice (plant, then correct) blurs the odd lines a little
        assert rel < 0.05
    # an uncorrected offset is much worse
    if offset:
        assert rel_err(planted) > max(0.1, 4 * rel)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("offset", [2, -1.5])
def test_dtype_and_shape_are_preserved(dtype, offset):
    mov = noisy_movie(two_photon_image(9), 9, nframes=4, dtype=dtype)
    before = mov.copy()
    for f in (plant_bidiphase, apply_bidiphase):
        out = f(mov, offset)
        assert out.dtype == mov.dtype and out.shape == mov.shape
        assert np.array_equal(out[:, 0::2], mov[:, 0::2])
    assert np.array_equal(mov, before)  # the input is not modified


def test_int16_workflow_and_saturation():
    img = two_photon_image(10)
    mov = noisy_movie(img, 10, dtype=np.int16)
    planted = plant_bidiphase(mov, 2)
    est = estimate_bidiphase(planted)
    assert est == 2.0
    out = apply_bidiphase(planted, est)
    assert out.dtype == np.int16
    assert np.array_equal(interior(out), interior(mov))
    # fractional shifts of integer data round and stay within the dtype's range
    sat = np.full((1, 4, 10), 32767, np.int16)
    sat[..., ::2] = -32768
    for d in (0.5, -0.3, 2.7):
        s = apply_bidiphase(sat, d)
        assert s.dtype == np.int16 and s.min() >= -32768 and s.max() <= 32767
    assert np.array_equal(apply_bidiphase(np.array([[0, 0], [10, 20]], np.int16), 0.5)[1],
                          [15, 20])  # (10 + 20) / 2 between pixels, edge replicated


def test_fractional_shift_is_linear_interpolation_with_edge_replication():
    row = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    img = np.stack([row, row])
    assert np.allclose(plant_bidiphase(img, 0.25)[1], [0.0, 7.5, 17.5, 27.5, 37.5])
    assert np.allclose(apply_bidiphase(img, 0.25)[1], [2.5, 12.5, 22.5, 32.5, 40.0])
    assert np.allclose(apply_bidiphase(img, 7)[1], 40.0)  # beyond the line: edge value
    assert np.allclose(plant_bidiphase(img, 2)[1], [0, 0, 0, 10, 20])


def test_odd_number_of_lines_and_leading_axes():
    img = two_photon_image(11, Ly=95)
    planted = plant_bidiphase(img, -3)
    assert planted.shape == img.shape
    assert estimate_bidiphase(planted) == -3.0
    stack = np.stack([img, img])[None]  # (1, 2, Ly, Lx): any leading axes for apply
    assert apply_bidiphase(stack, 1).shape == stack.shape


def test_bad_input_is_reported():
    with pytest.raises(PlaneflowError, match="shape"):
        estimate_bidiphase(np.zeros((2, 2, 8, 8)))
    with pytest.raises(PlaneflowError, match="no frames"):
        estimate_bidiphase(np.zeros((0, 8, 8)))
    with pytest.raises(PlaneflowError, match="line"):
        estimate_bidiphase(np.zeros((3, 1, 8)))
    with pytest.raises(PlaneflowError, match="finite"):
        apply_bidiphase(np.zeros((4, 8)), float("nan"))
    with pytest.raises(PlaneflowError, match="max_offset"):
        estimate_bidiphase(np.zeros((4, 8)), max_offset=-1)
