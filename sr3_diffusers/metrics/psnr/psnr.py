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

from typing import List, Optional, Tuple

import datasets
import numpy as np

import evaluate


_DESCRIPTION = """\
Peak signal-to-noise ratio between super-resolved images and their ground truth, on RGB (default) or on the BT.601 Y
channel, with an optional border crop; the mean of per-image PSNRs. The `reference_compatible` config reproduces the
novwaul/SR3 reference's PSNR (Y channel, 8-pixel crop, 1e-10 epsilon).
"""

_CITATION = """\
@article{saharia2021sr3,
  title={Image Super-Resolution via Iterative Refinement},
  author={Saharia, Chitwan and Ho, Jonathan and Chan, William and Salimans, Tim and Fleet, David J.
          and Norouzi, Mohammad},
  journal={arXiv preprint arXiv:2104.07636},
  year={2021}
}
"""

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

# The reference implementation's fixed protocol (novwaul/SR3, `metrics.py`).
_REFERENCE_CROP_BORDER = 8
_REFERENCE_EPSILON = 1e-10


def _check_images(images, name: str) -> List[np.ndarray]:
    """Check a batch of images and return it as a list of uint8 `(H, W, 3)` arrays.

    Every metric module of sr3_diffusers carries a copy of this function (a module must stand alone once `evaluate`
    copies it out of the package); tests/metrics/test_inputs.py checks that the copies agree.

    Args:
        images: a sequence of images, or one array of shape `(N, H, W, 3)`. An image is anything `np.asarray` turns
            into an `(H, W, 3)` RGB array (channels last) of integers in [0, 255]: a uint8 numpy array, a CPU torch
            tensor, an RGB PIL image.
        name (`str`): the argument's name, used in error messages.
    """
    if images is None:
        raise ValueError(f"`{name}` is missing: pass a list of (H, W, 3) uint8 images.")
    if getattr(images, "ndim", 4) != 4:
        raise ValueError(
            f"`{name}` must be a batch (a list of (H, W, 3) images or an (N, H, W, 3) array), got an array of shape "
            f"{tuple(images.shape)}."
        )
    checked = []
    for index, image in enumerate(images):
        array = np.asarray(image)
        where = f"`{name}[{index}]`"
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(
                f"{where} must be an RGB image of shape (H, W, 3), channels last; got shape {array.shape}. "
                "Grey images need 3 channels; (3, H, W) tensors need `.permute(1, 2, 0)`."
            )
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"{where} is empty: shape {array.shape}.")
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.integer):
                raise ValueError(
                    f"{where} has dtype {array.dtype}; the metrics take uint8-quantised images with values in "
                    "[0, 255]. Quantise [0, 1] floats first: `np.clip(np.round(image * 255), 0, 255).astype(np.uint8)`."
                )
            low, high = array.min(), array.max()
            if low < 0 or high > 255:
                raise ValueError(f"{where} has values in [{low}, {high}], outside the uint8 range [0, 255].")
            array = array.astype(np.uint8)
        checked.append(array)
    return checked


def _check_image_pairs(predictions, references) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Check both batches and that each prediction has the shape of its reference."""
    predictions = _check_images(predictions, "predictions")
    references = _check_images(references, "references")
    if len(predictions) != len(references):
        raise ValueError(
            f"Got {len(predictions)} predictions and {len(references)} references; they are paired by position, so "
            "their numbers must match."
        )
    for index, (prediction, reference) in enumerate(zip(predictions, references)):
        if prediction.shape != reference.shape:
            raise ValueError(
                f"`predictions[{index}]` has shape {prediction.shape} but `references[{index}]` has shape "
                f"{reference.shape}; each prediction must have the shape of its reference."
            )
    return predictions, references


def _rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image as a float64 `(H, W, 1)` array on the [0, 255] scale (in [16, 235]).

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, MATLAB's `rgb2ycbcr` without its final rounding.
    """
    luma = 16.0 + image.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0
    return luma[..., None]


def _crop(image: np.ndarray, crop_border: int) -> np.ndarray:
    """Remove `crop_border` pixels from each side of an `(H, W, C)` image."""
    height, width = image.shape[:2]
    return image[crop_border : height - crop_border, crop_border : width - crop_border]


def _check_min_size(images: List[np.ndarray], min_size: int, crop_border: int) -> None:
    """Refuse images smaller than `min_size` on a side: the border crop must leave pixels to compare."""
    for index, image in enumerate(images):
        if min(image.shape[:2]) < min_size:
            raise ValueError(
                f"`predictions[{index}]` has shape {image.shape}: too small for crop_border={crop_border}, which "
                f"needs a height and width of at least {min_size}."
            )


def _image_psnr(prediction: np.ndarray, reference: np.ndarray, channel: str, crop_border: int) -> float:
    """PSNR of one uint8 pair in dB, data range 255; `inf` for identical images."""
    if channel == "y":
        prediction, reference = _rgb_to_y(prediction), _rgb_to_y(reference)
    prediction = _crop(prediction, crop_border).astype(np.float64)
    reference = _crop(reference, crop_border).astype(np.float64)
    mse = np.mean((prediction - reference) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _reference_image_psnr(prediction: np.ndarray, reference: np.ndarray) -> float:
    """The reference's PSNR of one uint8 pair: Y on [0, 1], 8-pixel crop, -10 log10(MSE + 1e-10)."""
    prediction_y = _crop(_rgb_to_y(prediction) / 255.0, _REFERENCE_CROP_BORDER)
    reference_y = _crop(_rgb_to_y(reference) / 255.0, _REFERENCE_CROP_BORDER)
    mse = np.mean((prediction_y - reference_y) ** 2)
    return float(-10.0 * np.log10(mse + _REFERENCE_EPSILON))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PSNR(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIG_NAMES:
            raise ValueError(f"Unknown PSNR config {self.config_name!r}; choose one of {_CONFIG_NAMES}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=[
                "https://arxiv.org/abs/2104.07636",
                "https://github.com/XPixelGroup/BasicSR/blob/master/basicsr/metrics/psnr_ssim.py",
                "https://github.com/novwaul/SR3/blob/main/metrics.py",
            ],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Check that the images are uint8 RGB pairs of equal shapes, then add them to the module's stack."""
        predictions, references = _check_image_pairs(predictions, references)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Check that the images are a uint8 RGB pair of equal shapes, then add it to the module's stack."""
        predictions, references = _check_image_pairs([prediction], [reference])
        super().add(prediction=predictions[0], reference=references[0], **kwargs)

    def _compute(self, predictions, references, channel: Optional[str] = None, crop_border: Optional[int] = None):
        predictions = [np.asarray(image) for image in predictions]
        references = [np.asarray(image) for image in references]
        if not predictions:
            raise ValueError("No images were added; PSNR needs at least one pair.")
        if self.config_name == "reference_compatible":
            if channel is not None or crop_border is not None:
                raise ValueError(
                    "The `reference_compatible` PSNR has a fixed protocol (channel='y', crop_border=8); "
                    "load the default config to choose `channel` or `crop_border`."
                )
            _check_min_size(predictions, 2 * _REFERENCE_CROP_BORDER + 1, _REFERENCE_CROP_BORDER)
            scores = [_reference_image_psnr(p, r) for p, r in zip(predictions, references)]
            return {"reference_psnr": float(np.mean(scores)), "channel": "y", "crop_border": _REFERENCE_CROP_BORDER}

        channel = "rgb" if channel is None else channel
        crop_border = 0 if crop_border is None else crop_border
        if channel not in ("rgb", "y"):
            raise ValueError(f"`channel` must be 'rgb' or 'y', got {channel!r}.")
        if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
            raise ValueError(f"`crop_border` must be a non-negative integer, got {crop_border!r}.")
        _check_min_size(predictions, 2 * crop_border + 1, crop_border)
        scores = [_image_psnr(p, r, channel, int(crop_border)) for p, r in zip(predictions, references)]
        return {"psnr": float(np.mean(scores)), "channel": channel, "crop_border": int(crop_border)}

