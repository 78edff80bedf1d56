"""SSIM for super-resolution, as an `evaluate` module.

Protocol (one documented convention, echoed in every result):

- Inputs are uint8-quantised RGB images, channels last: `predictions` (the super-resolved outputs) and `references`
  (the ground-truth high-resolution images), paired by position, each pair of equal shape `(H, W, 3)`.
- The real 2-D SSIM of Wang et al. (2004): a normalised Gaussian window of 11 x 11 taps, sigma 1.5, K1 = 0.01,
  K2 = 0.03, data range 255, population (not sample) statistics, computed in float64. Only windows that fit inside
  the image are used (no padding), and the SSIM map is averaged. This equals scikit-image's
  `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`
  (tested to 1e-4).
- `channel="rgb"` (default): SSIM of each RGB channel, averaged over the three channels (scikit-image's
  `channel_axis=-1`). `channel="y"`: SSIM of the BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on the
  [0, 255] scale (float, not rounded), as BasicSR's `calculate_ssim(test_y_channel=True)`.
- `crop_border` pixels are removed from every side first; what is left must be at least 11 x 11.
- The result is the mean of the per-image SSIMs. Each image is processed on its own, so the result does not depend on
  how images are split into `add_batch` calls.

Config `"reference_compatible"` reproduces the SSIM of the reference implementation (novwaul/SR3, `metrics.py`),
returned under the key `reference_ssim`. The reference called `skimage.metrics.structural_similarity(y_pred, y_true,
channel_axis=0, data_range=1.0)` on 2-D Y images, so scikit-image took every image row as a separate "channel": the
result is a 1-D SSIM along each row, with scikit-image's defaults (uniform 7-tap window, sample covariance N/(N-1) =
7/6, K1 = 0.01, K2 = 0.03), averaged over rows; Y on the [0, 1] scale with data range 1, after an 8-pixel crop; then
averaged over images. This is not SSIM: no vertical structure enters it. We compute it in float64 where the reference
used float32, and on uint8 images where the reference measured its unquantised float outputs.
"""

from typing import Optional, Tuple

import numpy as np

import evaluate
from sr3_diffusers.metrics.image_inputs import (
    IMAGE_PAIR_FEATURES,
    REFERENCE_CROP_BORDER,
    ImagePairInputsMixin,
    check_channel_and_crop,
    check_min_size,
    crop,
    rgb_to_y,
    stored_images,
)


_DESCRIPTION = """\
Structural similarity (Wang et al., 2004) between super-resolved images and their ground truth: Gaussian window 11,
sigma 1.5, on RGB (mean over channels, default) or on the BT.601 Y channel, with an optional border crop; the mean of
per-image SSIMs. The `reference_compatible` config reproduces the novwaul/SR3 reference's row-wise 1-D SSIM.
"""

_CITATION = """\
@article{wang2004ssim,
  title={Image Quality Assessment: From Error Visibility to Structural Similarity},
  author={Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.},
  journal={IEEE Transactions on Image Processing},
  volume={13},
  number={4},
  pages={600--612},
  year={2004}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the super-resolved images: a list of uint8 RGB images of shape (H, W, 3) (numpy arrays, CPU torch
        tensors or RGB PIL images; integer arrays with values in [0, 255] are accepted too), or one uint8 array of
        shape (N, H, W, 3). Float images are refused: quantise them first.
    references: the ground-truth images, in the same layout; `references[i]` has the shape of `predictions[i]`.
    channel (`str`, defaults to `"rgb"`): `"rgb"` (mean over channels) or `"y"` (BT.601 luma). Not accepted by
        `reference_compatible`.
    crop_border (`int`, defaults to `0`): pixels removed from each side before comparing. Not accepted by
        `reference_compatible`, which always crops 8.

Returns:
    ssim (`float`): mean per-image SSIM, at most 1; `reference_ssim` instead for the `reference_compatible` config.
    channel (`str`): the channel convention used.
    crop_border (`int`): the border crop used.

Examples:

    >>> import numpy as np
    >>> ssim = evaluate.load("sr3_diffusers/metrics/ssim")
    >>> reference = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))[..., None].repeat(3, axis=-1)
    >>> ssim.compute(predictions=[reference], references=[reference])
    {'ssim': 1.0, 'channel': 'rgb', 'crop_border': 0}
    >>> prediction = reference.copy()
    >>> prediction[::2] = reference[::2, ::-1]  # every other row mirrored
    >>> round(ssim.compute(predictions=[prediction], references=[reference], channel="y", crop_border=8)["ssim"], 4)
    0.1549
    >>> reference_ssim = evaluate.load("sr3_diffusers/metrics/ssim", "reference_compatible")
    >>> round(reference_ssim.compute(predictions=[prediction], references=[reference])["reference_ssim"], 4)
    0.1363
"""

_CONFIG_NAMES = ("default", "reference_compatible")

# Wang et al. (2004): an 11-tap Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03.
_GAUSSIAN_SIZE = 11
_GAUSSIAN_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03

# The reference implementation's window (novwaul/SR3, `metrics.py`: scikit-image's default); its crop is
# `REFERENCE_CROP_BORDER`.
_REFERENCE_WINDOW_SIZE = 7


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian window, exp(-x^2 / (2 sigma^2)) for x in [-(size // 2), size // 2], summing to 1."""
    offsets = np.arange(size, dtype=np.float64) - size // 2
    window = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return window / window.sum()


def _window_mean(image: np.ndarray, window: np.ndarray, axes: Tuple[int, ...]) -> np.ndarray:
    """Weighted mean of `image` at every window position that fits inside it, along each of `axes` in turn."""
    for axis in axes:
        image = np.lib.stride_tricks.sliding_window_view(image, window.size, axis=axis) @ window
    return image


def _mean_ssim(
    prediction: np.ndarray,
    reference: np.ndarray,
    window: np.ndarray,
    axes: Tuple[int, ...],
    data_range: float,
    covariance_scale: float,
) -> float:
    """Mean of the SSIM map of two float64 images (Wang et al. 2004, eq. 13), the window applied along `axes`.

    `covariance_scale` multiplies the windowed (co)variances: 1 for population statistics, N / (N - 1) for
    scikit-image's `use_sample_covariance=True` with an N-tap uniform window.
    """
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mu_x = _window_mean(prediction, window, axes)
    mu_y = _window_mean(reference, window, axes)
    sigma_x2 = covariance_scale * (_window_mean(prediction * prediction, window, axes) - mu_x**2)
    sigma_y2 = covariance_scale * (_window_mean(reference * reference, window, axes) - mu_y**2)
    sigma_xy = covariance_scale * (_window_mean(prediction * reference, window, axes) - mu_x * mu_y)
    luminance_contrast = (2.0 * mu_x * mu_y + c1) * (2.0 * sigma_xy + c2)
    normaliser = (mu_x**2 + mu_y**2 + c1) * (sigma_x2 + sigma_y2 + c2)
    return float(np.mean(luminance_contrast / normaliser))


def _image_ssim(prediction: np.ndarray, reference: np.ndarray, channel: str, crop_border: int) -> float:
    """2-D Gaussian SSIM of one uint8 pair, data range 255, averaged over its channels."""
    if channel == "y":
        prediction, reference = rgb_to_y(prediction), rgb_to_y(reference)
    prediction = crop(prediction, crop_border).astype(np.float64)
    reference = crop(reference, crop_border).astype(np.float64)
    window = _gaussian_window(_GAUSSIAN_SIZE, _GAUSSIAN_SIGMA)
    return _mean_ssim(prediction, reference, window, axes=(0, 1), data_range=255.0, covariance_scale=1.0)


def _reference_image_ssim(prediction: np.ndarray, reference: np.ndarray) -> float:
    """The reference's SSIM of one uint8 pair: row-wise 1-D SSIM of Y on [0, 1], uniform 7-tap window, 8-pixel crop."""
    prediction_y = crop(rgb_to_y(prediction) / 255.0, REFERENCE_CROP_BORDER)
    reference_y = crop(rgb_to_y(reference) / 255.0, REFERENCE_CROP_BORDER)
    window = np.full(_REFERENCE_WINDOW_SIZE, 1.0 / _REFERENCE_WINDOW_SIZE)
    covariance_scale = _REFERENCE_WINDOW_SIZE / (_REFERENCE_WINDOW_SIZE - 1)
    return _mean_ssim(prediction_y, reference_y, window, axes=(1,), data_range=1.0, covariance_scale=covariance_scale)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SSIM(ImagePairInputsMixin, evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIG_NAMES:
            raise ValueError(f"Unknown SSIM config {self.config_name!r}; choose one of {_CONFIG_NAMES}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=IMAGE_PAIR_FEATURES,
            reference_urls=[
                "https://doi.org/10.1109/TIP.2003.819861",
                "https://scikit-image.org/docs/stable/api/skimage.metrics.html#skimage.metrics.structural_similarity",
                "https://github.com/XPixelGroup/BasicSR/blob/master/basicsr/metrics/psnr_ssim.py",
                "https://github.com/novwaul/SR3/blob/main/metrics.py",
            ],
        )

    def _compute(self, predictions, references, channel: Optional[str] = None, crop_border: Optional[int] = None):
        predictions, references = stored_images(predictions, "SSIM"), stored_images(references, "SSIM")
        channel, crop_border = check_channel_and_crop("SSIM", self.config_name, channel, crop_border)
        if self.config_name == "reference_compatible":
            check_min_size(predictions, 2 * crop_border + _REFERENCE_WINDOW_SIZE, crop_border)
            scores = [_reference_image_ssim(p, r) for p, r in zip(predictions, references)]
            return {"reference_ssim": float(np.mean(scores)), "channel": channel, "crop_border": crop_border}
        check_min_size(predictions, 2 * crop_border + _GAUSSIAN_SIZE, crop_border)
        scores = [_image_ssim(p, r, channel, crop_border) for p, r in zip(predictions, references)]
        return {"ssim": float(np.mean(scores)), "channel": channel, "crop_border": crop_border}
