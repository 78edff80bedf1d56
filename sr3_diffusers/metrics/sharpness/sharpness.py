"""Sharpness of super-resolved images relative to their ground truth, as an `evaluate` module.

Bicubic upscaling is blurry, and a model that regresses to the mean is too: PSNR rewards both. This module measures
how much fine detail an output carries compared with the high-resolution image it should match, so that "sharper
than bicubic" is a number. Two measures, chosen with `measure` (echoed in every result):

- `"gradient"` (default): the mean Sobel gradient magnitude of the output divided by that of the reference.
  Per image, on the BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on the [0, 255] scale (float, as
  the PSNR module's `channel="y"`), the Sobel derivatives use the kernels [1, 2, 1]^T [1, 0, -1] / 8 and its
  transpose (normalised so that a ramp rising by a grey levels per pixel has gradient a), on valid pixels only (no
  padding: the one-pixel border is left out); G = mean over pixels of sqrt(gx^2 + gy^2); the score is
  G(prediction) / G(reference).
- `"spectral"`: the high-frequency spectral energy of the output divided by that of the reference. Per image, Y as
  above minus its mean, times a separable Hann window (which keeps the image's edges from leaking energy into high
  frequencies), 2-D FFT; E = the sum of |F|^2 over frequencies whose radius sqrt(fx^2 + fy^2) exceeds `cutoff`
  cycles per pixel; the score is E(prediction) / E(reference). The default cutoff, 0.125 cycles per pixel, is the
  Nyquist frequency of an x4 low-resolution input (0.5 / 4): above it the input holds no information, so this energy
  is what the model synthesised. Pass `cutoff = 0.5 / scale` for other scales.

Both are 1 when the output is as sharp as the ground truth, below 1 when blurrier (bicubic x4 is well below), above 1
when it carries more high-frequency content, which includes noise and artefacts: read them together with PSNR and
consistency, never alone. A reference without any gradient or high-frequency energy (a flat image) gives `inf` (or
`nan` if the prediction is flat too). The result is the mean of the per-image ratios; each image is processed on its
own, so the result does not depend on how images are split into `add_batch` calls.
"""

from typing import Optional

import numpy as np

import evaluate
from sr3_diffusers.metrics.image_inputs import (
    IMAGE_PAIR_FEATURES,
    SR3_CITATION,
    ImagePairInputsMixin,
    rgb_to_y,
    stored_images,
)


_DESCRIPTION = """\
Sharpness of super-resolved images relative to their ground truth: the ratio of mean Sobel gradient magnitudes
(`measure="gradient"`, default) or of spectral energies above a cutoff frequency (`measure="spectral"`), on the BT.601
Y channel; the mean of per-image ratios. 1 = as sharp as the ground truth; bicubic upscaling is well below 1.
"""

_CITATION = SR3_CITATION

_KWARGS_DESCRIPTION = """
Args:
    predictions: the super-resolved images: a list of uint8 RGB images of shape (H, W, 3) (numpy arrays, CPU torch
        tensors or RGB PIL images; integer arrays with values in [0, 255] are accepted too), or one uint8 array of
        shape (N, H, W, 3). Float images are refused: quantise them first. At least 3 x 3 pixels.
    references: the ground-truth images, in the same layout; `references[i]` has the shape of `predictions[i]`.
    measure (`str`, defaults to `"gradient"`): `"gradient"` (mean Sobel gradient magnitude ratio) or `"spectral"`
        (ratio of spectral energies above `cutoff`).
    cutoff (`float`, defaults to `0.125`): for `"spectral"` only, the radial frequency in cycles per pixel, in
        (0, 0.5), above which energy is counted; 0.125 is the Nyquist frequency of an x4 input.

Returns:
    sharpness (`float`): mean per-image ratio prediction / reference.
    measure (`str`): the measure used.
    channel (`str`): `"y"`, the channel measured.
    cutoff (`float` or `None`): the cutoff of `"spectral"`; `None` for `"gradient"`.

Examples:

    >>> import numpy as np
    >>> sharpness = evaluate.load("sr3_diffusers/metrics/sharpness")
    >>> reference = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))[..., None].repeat(3, axis=-1)
    >>> sharpness.compute(predictions=[reference], references=[reference])
    {'sharpness': 1.0, 'measure': 'gradient', 'channel': 'y', 'cutoff': None}
    >>> flatter = (reference // 2).astype(np.uint8)  # the same ramp with half the slope
    >>> sharpness.compute(predictions=[flatter], references=[reference])["sharpness"]
    0.5
    >>> result = sharpness.compute(predictions=[flatter], references=[reference], measure="spectral")
    >>> round(result["sharpness"], 4), result["cutoff"]
    (0.25, 0.125)
"""

MEASURES = ("gradient", "spectral")
DEFAULT_CUTOFF = 0.125  # cycles per pixel: the Nyquist frequency of an x4 low-resolution input, 0.5 / 4


def mean_gradient_magnitude(luma: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of a 2-D float image over its valid pixels (the one-pixel border left out).

    Sobel (1968) kernels normalised by 1/8: gx = ([1, 2, 1]^T [1, 0, -1] / 8) * image, gy its transpose, so a ramp
    rising by `a` per pixel has gradient `a`; the magnitude is sqrt(gx^2 + gy^2).
    """
    # Horizontal and vertical central differences, then the [1, 2, 1] smoothing across them
    dx = luma[:, 2:] - luma[:, :-2]
    dy = luma[2:, :] - luma[:-2, :]
    gx = (dx[:-2] + 2.0 * dx[1:-1] + dx[2:]) / 8.0
    gy = (dy[:, :-2] + 2.0 * dy[:, 1:-1] + dy[:, 2:]) / 8.0
    return float(np.mean(np.sqrt(gx**2 + gy**2)))


def high_frequency_energy(luma: np.ndarray, cutoff: float) -> float:
    """Spectral energy of a 2-D float image above a radial frequency of `cutoff` cycles per pixel.

    The image minus its mean is multiplied by a separable Hann window (so that its borders do not add the
    high-frequency energy of a discontinuity), then E = sum of |FFT|^2 over frequencies with sqrt(fx^2 + fy^2) >
    `cutoff` (numpy's `fftfreq` grid).
    """
    height, width = luma.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    spectrum = np.fft.fft2((luma - luma.mean()) * window)
    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :])
    return float(np.sum(np.abs(spectrum[radius > cutoff]) ** 2))


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, `inf` for x / 0 with x > 0 and `nan` for 0 / 0 (no warning)."""
    if denominator == 0.0:
        return float("nan") if numerator == 0.0 else float("inf")
    return numerator / denominator


def _image_sharpness(prediction: np.ndarray, reference: np.ndarray, measure: str, cutoff: float) -> float:
    """Sharpness of one uint8 pair: the prediction's gradient or high-frequency energy over the reference's."""
    prediction_y, reference_y = rgb_to_y(prediction)[..., 0], rgb_to_y(reference)[..., 0]
    if measure == "gradient":
        return _ratio(mean_gradient_magnitude(prediction_y), mean_gradient_magnitude(reference_y))
    return _ratio(high_frequency_energy(prediction_y, cutoff), high_frequency_energy(reference_y, cutoff))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Sharpness(ImagePairInputsMixin, evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=IMAGE_PAIR_FEATURES,
            reference_urls=["https://arxiv.org/abs/2104.07636"],
        )

    def _compute(self, predictions, references, measure: str = "gradient", cutoff: Optional[float] = None):
        predictions, references = stored_images(predictions, "sharpness"), stored_images(references, "sharpness")
        if measure not in MEASURES:
            raise ValueError(f"`measure` must be one of {list(MEASURES)}, got {measure!r}.")
        if measure == "gradient":
            if cutoff is not None:
                raise ValueError("`cutoff` applies to measure='spectral' only; the gradient measure has none.")
        else:
            cutoff = DEFAULT_CUTOFF if cutoff is None else cutoff
            if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not 0.0 < cutoff < 0.5:
                raise ValueError(f"`cutoff` must be a frequency in cycles per pixel in (0, 0.5), got {cutoff!r}.")
            cutoff = float(cutoff)
        for index, image in enumerate(predictions):
            if min(image.shape[:2]) < 3:
                raise ValueError(
                    f"`predictions[{index}]` has shape {image.shape}: sharpness needs at least 3 x 3 pixels."
                )
        scores = [_image_sharpness(p, r, measure, cutoff) for p, r in zip(predictions, references)]
        return {"sharpness": float(np.mean(scores)), "measure": measure, "channel": "y", "cutoff": cutoff}
