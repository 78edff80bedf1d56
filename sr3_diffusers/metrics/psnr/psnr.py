"""PSNR for super-resolution, as an `evaluate` module.

Protocol (one documented convention, echoed in every result):

- Inputs are uint8-quantised RGB images, channels last: `predictions` (the super-resolved outputs) and `references`
  (the ground-truth high-resolution images), paired by position, each pair of equal shape `(H, W, 3)`.
- `channel="rgb"` (default, the SR3 paper's protocol): the error is taken over the three RGB channels, values in
  [0, 255]. `channel="y"`: over the BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on the [0, 255]
  scale (MATLAB's `rgb2ycbcr`, kept in float, not rounded), as BasicSR's `calculate_psnr(test_y_channel=True)`.
- `crop_border` pixels are removed from every side first (the reference protocol crops 8 for x4).
- Per image, PSNR = 10 log10(255^2 / MSE) in float64; identical images give `inf` (no epsilon, no cap; BasicSR does
  the same). The result is the mean of the per-image values, so one identical pair makes the mean `inf`.
- Every image is processed on its own, so the result does not depend on how images are split into `add_batch` calls.

Config `"reference_compatible"` reproduces the PSNR of the reference implementation (novwaul/SR3, `metrics.py`),
returned under the key `reference_psnr`: Y channel as above but on the [0, 1] scale, an 8-pixel crop,
PSNR = -10 log10(MSE + 1e-10) per image (so identical images give 100 dB), averaged over images. Differences left:
we compute in float64 where the reference used float32 torch, and we take uint8 images where the reference measured
its unquantised float outputs.
"""

from typing import Optional

import numpy as np

import evaluate
from sr3_diffusers.metrics.image_inputs import (
    IMAGE_PAIR_FEATURES,
    REFERENCE_CROP_BORDER,
    SR3_CITATION,
    ImagePairInputsMixin,
    check_channel_and_crop,
    check_min_size,
    crop,
    rgb_to_y,
    stored_images,
)


_DESCRIPTION = """\
Peak signal-to-noise ratio between super-resolved images and their ground truth, on RGB (default) or on the BT.601 Y
channel, with an optional border crop; the mean of per-image PSNRs. The `reference_compatible` config reproduces the
novwaul/SR3 reference's PSNR (Y channel, 8-pixel crop, 1e-10 epsilon).
"""

_CITATION = SR3_CITATION

_KWARGS_DESCRIPTION = """
Args:
    predictions: the super-resolved images: a list of uint8 RGB images of shape (H, W, 3) (numpy arrays, CPU torch
        tensors or RGB PIL images; integer arrays with values in [0, 255] are accepted too), or one uint8 array of
        shape (N, H, W, 3). Float images are refused: quantise them first.
    references: the ground-truth images, in the same layout; `references[i]` has the shape of `predictions[i]`.
    channel (`str`, defaults to `"rgb"`): `"rgb"` or `"y"` (BT.601 luma). Not accepted by `reference_compatible`.
    crop_border (`int`, defaults to `0`): pixels removed from each side before comparing. Not accepted by
        `reference_compatible`, which always crops 8.

Returns:
    psnr (`float`): mean per-image PSNR in dB (`inf` if any pair is identical); `reference_psnr` instead for the
        `reference_compatible` config.
    channel (`str`): the channel convention used.
    crop_border (`int`): the border crop used.

Examples:

    >>> import numpy as np
    >>> psnr = evaluate.load("sr3_diffusers/metrics/psnr")
    >>> reference = np.full((32, 32, 3), 100, dtype=np.uint8)
    >>> prediction = reference.copy()
    >>> prediction[0, 0, 0] = 110
    >>> psnr.compute(predictions=[prediction], references=[reference])
    {'psnr': 63.00501572227384, 'channel': 'rgb', 'crop_border': 0}
    >>> psnr.compute(predictions=[prediction], references=[reference], channel="y", crop_border=8)
    {'psnr': inf, 'channel': 'y', 'crop_border': 8}
    >>> reference_psnr = evaluate.load("sr3_diffusers/metrics/psnr", "reference_compatible")
    >>> reference_psnr.compute(predictions=[prediction], references=[reference])
    {'reference_psnr': 100.0, 'channel': 'y', 'crop_border': 8}
"""

_CONFIG_NAMES = ("default", "reference_compatible")

# The reference implementation's epsilon (novwaul/SR3, `metrics.py`); its crop is `REFERENCE_CROP_BORDER`.
_REFERENCE_EPSILON = 1e-10


def _image_psnr(prediction: np.ndarray, reference: np.ndarray, channel: str, crop_border: int) -> float:
    """PSNR of one uint8 pair in dB, data range 255; `inf` for identical images."""
    if channel == "y":
        prediction, reference = rgb_to_y(prediction), rgb_to_y(reference)
    prediction = crop(prediction, crop_border).astype(np.float64)
    reference = crop(reference, crop_border).astype(np.float64)
    mse = np.mean((prediction - reference) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _reference_image_psnr(prediction: np.ndarray, reference: np.ndarray) -> float:
    """The reference's PSNR of one uint8 pair: Y on [0, 1], 8-pixel crop, -10 log10(MSE + 1e-10)."""
    prediction_y = crop(rgb_to_y(prediction) / 255.0, REFERENCE_CROP_BORDER)
    reference_y = crop(rgb_to_y(reference) / 255.0, REFERENCE_CROP_BORDER)
    mse = np.mean((prediction_y - reference_y) ** 2)
    return float(-10.0 * np.log10(mse + _REFERENCE_EPSILON))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PSNR(ImagePairInputsMixin, evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIG_NAMES:
            raise ValueError(f"Unknown PSNR config {self.config_name!r}; choose one of {_CONFIG_NAMES}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=IMAGE_PAIR_FEATURES,
            reference_urls=[
                "https://arxiv.org/abs/2104.07636",
                "https://github.com/XPixelGroup/BasicSR/blob/master/basicsr/metrics/psnr_ssim.py",
                "https://github.com/novwaul/SR3/blob/main/metrics.py",
            ],
        )

    def _compute(self, predictions, references, channel: Optional[str] = None, crop_border: Optional[int] = None):
        predictions, references = stored_images(predictions, "PSNR"), stored_images(references, "PSNR")
        channel, crop_border = check_channel_and_crop("PSNR", self.config_name, channel, crop_border)
        check_min_size(predictions, 2 * crop_border + 1, crop_border)
        if self.config_name == "reference_compatible":
            scores = [_reference_image_psnr(p, r) for p, r in zip(predictions, references)]
            return {"reference_psnr": float(np.mean(scores)), "channel": channel, "crop_border": crop_border}
        scores = [_image_psnr(p, r, channel, crop_border) for p, r in zip(predictions, references)]
        return {"psnr": float(np.mean(scores)), "channel": channel, "crop_border": crop_border}

