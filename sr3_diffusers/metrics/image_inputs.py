"""What the image metrics share: the input check and the conventions applied to the inputs.

Every `evaluate` module under `sr3_diffusers/metrics/` takes uint8-quantised RGB images, channels last, and imports
its input check (`check_images`, `check_image_pairs`, `ImagePairInputsMixin`), its features and the conventions it
applies to the images (`rgb_to_y`, `crop`) from here, with an absolute import. `evaluate.load("<path>/psnr")` copies
only the module's own file, so the modules need the `sr3_diffusers` package installed (`pip install -e ".[eval]"`).

The conventions, echoed in every metric's result:

- An image is anything `np.asarray` turns into an `(H, W, 3)` array of integers in [0, 255]: a uint8 numpy array, a
  CPU torch tensor, an RGB PIL image. Float images are refused: quantise them first.
- `channel="y"` is the BT.601 luma of MATLAB's `rgb2ycbcr` on the [0, 255] scale, in float (not rounded), as
  BasicSR's `test_y_channel=True`.
- `crop_border` pixels are removed from every side before comparing.
"""

from typing import List, Optional, Tuple

import datasets
import numpy as np

# `evaluate` stores the inputs as images: pairs for the metrics with references, single images for the Inception Score.
IMAGE_PAIR_FEATURES = datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()})
IMAGE_FEATURES = datasets.Features({"predictions": datasets.Image()})

# The reference implementation's border crop for its PSNR and SSIM (novwaul/SR3, `metrics.py`, x4).
REFERENCE_CROP_BORDER = 8

# The SR3 paper, cited by the metrics it defines or reports (PSNR, consistency, sharpness).
SR3_CITATION = """\
@article{saharia2021sr3,
  title={Image Super-Resolution via Iterative Refinement},
  author={Saharia, Chitwan and Ho, Jonathan and Chan, William and Salimans, Tim and Fleet, David J.
          and Norouzi, Mohammad},
  journal={arXiv preprint arXiv:2104.07636},
  year={2021}
}
"""


def check_images(images, name: str) -> List[np.ndarray]:
    """Check a batch of images and return it as a list of uint8 `(H, W, 3)` arrays.

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


def check_image_pairs(
    predictions, references, same_shape: bool = True
) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Check both batches (`check_images`), that they hold as many images, and with `same_shape` that each prediction
    has the shape of its reference."""
    predictions = check_images(predictions, "predictions")
    references = check_images(references, "references")
    if len(predictions) != len(references):
        raise ValueError(
            f"Got {len(predictions)} predictions and {len(references)} references; `evaluate` stores them side by "
            "side, so each batch needs as many of each."
        )
    if same_shape:
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            if prediction.shape != reference.shape:
                raise ValueError(
                    f"`predictions[{index}]` has shape {prediction.shape} but `references[{index}]` has shape "
                    f"{reference.shape}; each prediction must have the shape of its reference."
                )
    return predictions, references


class ImagePairInputsMixin:
    """`add_batch` and `add` for an `evaluate.Metric` of image pairs: they check the images first.

    List it before `evaluate.Metric` among the bases. The check is `check_image_pairs`; set `same_shape = False` where a
    prediction's shape may differ from its reference's, and override `_check_inputs` to check more.
    """

    same_shape = True

    def _check_inputs(self, predictions, references) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        return check_image_pairs(predictions, references, same_shape=self.same_shape)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Check that the images are uint8 RGB pairs (`_check_inputs`), then add them to the module's stack."""
        predictions, references = self._check_inputs(predictions, references)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Check that the images are a uint8 RGB pair (`_check_inputs`), then add it to the module's stack."""
        predictions, references = self._check_inputs([prediction], [reference])
        super().add(prediction=predictions[0], reference=references[0], **kwargs)


def stored_images(images, metric: str) -> List[np.ndarray]:
    """The images `evaluate` hands to `_compute` (decoded PIL images) as uint8 arrays; refuses an empty stack."""
    if len(images) == 0:
        raise ValueError(f"No images were added to {metric}: pass them to `compute`, `add_batch` or `add`.")
    return [np.asarray(image) for image in images]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image as a float64 `(H, W, 1)` array on the [0, 255] scale (in [16, 235]).

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, MATLAB's `rgb2ycbcr` without its final rounding.
    """
    luma = 16.0 + image.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0
    return luma[..., None]


def crop(image: np.ndarray, crop_border: int) -> np.ndarray:
    """Remove `crop_border` pixels from each side of an `(H, W, C)` image."""
    height, width = image.shape[:2]
    return image[crop_border : height - crop_border, crop_border : width - crop_border]


def check_channel_and_crop(
    metric: str, config_name: str, channel: Optional[str], crop_border: Optional[int]
) -> Tuple[str, int]:
    """The `channel` and `crop_border` a PSNR or SSIM config computes with, checked.

    The default config takes `channel` ("rgb" or "y"; `None`: "rgb") and `crop_border` (a non-negative integer; `None`:
    0). `"reference_compatible"` has the reference's fixed protocol, "y" and `REFERENCE_CROP_BORDER`, and refuses both.
    """
    if config_name == "reference_compatible":
        if channel is not None or crop_border is not None:
            raise ValueError(
                f"The `reference_compatible` {metric} has a fixed protocol (channel='y', "
                f"crop_border={REFERENCE_CROP_BORDER}); load the default config to choose `channel` or `crop_border`."
            )
        return "y", REFERENCE_CROP_BORDER
    channel = "rgb" if channel is None else channel
    crop_border = 0 if crop_border is None else crop_border
    if channel not in ("rgb", "y"):
        raise ValueError(f"`channel` must be 'rgb' or 'y', got {channel!r}.")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"`crop_border` must be a non-negative integer, got {crop_border!r}.")
    return channel, int(crop_border)


def check_min_size(images: List[np.ndarray], min_size: int, crop_border: int) -> None:
    """Refuse images smaller than `min_size` on a side: the border crop must leave pixels to compare."""
    for index, image in enumerate(images):
        if min(image.shape[:2]) < min_size:
            raise ValueError(
                f"`predictions[{index}]` has shape {image.shape}: too small for crop_border={crop_border}, which "
                f"needs a height and width of at least {min_size}."
            )
