import numpy as np
import pytest
import scipy.ndimage
import torch
from skimage import data

from sr3_diffusers.image_processing import imresize, upsample_bicubic
from sr3_diffusers.metrics.sharpness.sharpness import Sharpness
from tests.metrics.testing_utils import luma


def photos():
    return [data.astronaut()[100:228, 150:278], data.coffee()[100:164, 200:296]]


def bicubic_x4(image):
    """The SR3 baseline: MATLAB bicubic 1/4 of a uint8 photo, then PyTorch bicubic x4 back, quantised."""
    high_res = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1) / 255.0
    upscaled = upsample_bicubic(imresize(high_res, 0.25)[None].clamp(0, 1), 4)[0]
    return (upscaled * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def test_gradient_matches_scipy_sobel():
    references = photos()
    predictions = [bicubic_x4(image) for image in references]

    def mean_sobel(image):
        y = luma(image)
        magnitude = np.hypot(scipy.ndimage.sobel(y, axis=1), scipy.ndimage.sobel(y, axis=0)) / 8.0
        return magnitude[1:-1, 1:-1].mean()  # valid pixels only

    expected = np.mean([mean_sobel(p) / mean_sobel(r) for p, r in zip(predictions, references)])
    result = Sharpness().compute(predictions=predictions, references=references)
    assert result == {"sharpness": pytest.approx(expected, rel=1e-12), "measure": "gradient", "channel": "y",
                      "cutoff": None}  # fmt: skip


def test_spectral_matches_hand_computation():
    references = photos()
    predictions = [bicubic_x4(image) for image in references]

    def energy(image, cutoff):
        y = luma(image)
        y = (y - y.mean()) * np.hanning(y.shape[0])[:, None] * np.hanning(y.shape[1])[None, :]
        power = np.abs(np.fft.fftshift(np.fft.fft2(y))) ** 2
        fy = np.fft.fftshift(np.fft.fftfreq(y.shape[0]))[:, None]
        fx = np.fft.fftshift(np.fft.fftfreq(y.shape[1]))[None, :]
        return power[np.sqrt(fx**2 + fy**2) > cutoff].sum()

    expected = np.mean([energy(p, 0.2) / energy(r, 0.2) for p, r in zip(predictions, references)])
    result = Sharpness().compute(predictions=predictions, references=references, measure="spectral", cutoff=0.2)
    assert result["sharpness"] == pytest.approx(expected, rel=1e-10)
    assert (result["measure"], result["cutoff"]) == ("spectral", 0.2)


@pytest.mark.parametrize("measure", ["gradient", "spectral"])
def test_orders_blurry_identical_and_sharpened(measure):
    reference = photos()[0]
    blurry = bicubic_x4(reference)
    smooth = scipy.ndimage.gaussian_filter(reference.astype(np.float64), sigma=(1.0, 1.0, 0))
    sharpened = np.clip(reference + 1.5 * (reference - smooth), 0, 255).astype(np.uint8)

    def score(prediction):
        return Sharpness().compute(predictions=[prediction], references=[reference], measure=measure)["sharpness"]

    assert score(reference) == 1.0
    assert score(blurry) < 0.8  # bicubic x4 is visibly blurrier: well below the ground truth
    assert score(sharpened) > 1.2
    if measure == "spectral":
        assert score(blurry) < 0.2  # almost nothing above the LR Nyquist frequency survives bicubic upscaling


def test_result_does_not_depend_on_batching():
    references = photos()
    predictions = [bicubic_x4(image) for image in references]
    metric = Sharpness()
    for prediction, reference in zip(predictions, references):
        metric.add_batch(predictions=[prediction], references=[reference])
    assert metric.compute() == Sharpness().compute(predictions=predictions, references=references)


def test_flat_reference_gives_inf_or_nan():
    flat = np.full((16, 16, 3), 128, dtype=np.uint8)
    textured = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    assert Sharpness().compute(predictions=[textured], references=[flat])["sharpness"] == float("inf")
    assert np.isnan(Sharpness().compute(predictions=[flat], references=[flat])["sharpness"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(measure="laplacian"), r"`measure` must be one of \['gradient', 'spectral'\], got 'laplacian'"),
        (dict(measure="spectral", cutoff=0.5), r"`cutoff` must be a frequency .* in \(0, 0.5\), got 0.5"),
        (dict(cutoff=0.1), r"`cutoff` applies to measure='spectral' only"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    image = photos()[1]
    with pytest.raises(ValueError, match=message):
        Sharpness().compute(predictions=[image], references=[image], **kwargs)


def test_bad_images_raise():
    image = photos()[1]
    with pytest.raises(ValueError, match=r"`predictions\[0\]` has dtype float64"):
        Sharpness().compute(predictions=[image / 255.0], references=[image])
    with pytest.raises(ValueError, match=r"has shape \(64, 96, 3\) but `references\[0\]` has shape \(64, 95, 3\)"):
        Sharpness().compute(predictions=[image], references=[image[:, :95]])
    with pytest.raises(ValueError, match="at least 3 x 3 pixels"):
        Sharpness().compute(predictions=[image[:2]], references=[image[:2]])
