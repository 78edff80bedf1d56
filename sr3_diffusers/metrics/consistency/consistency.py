"""Consistency (SR3 paper): how well a super-resolved image downsamples back to its input, as an `evaluate` module.

Protocol (echoed in every result):

- Inputs are uint8-quantised RGB images, channels last: `predictions` (the super-resolved outputs, `(s H, s W, 3)`)
  and `references` (the low-resolution inputs they were made from, `(H, W, 3)`), paired by position. The integer
  scale s is read from the shapes and must be the same for every pair.
- Both are mapped to [0, 1] (x / 255). Each prediction is downsampled by 1/s with MATLAB's antialiased bicubic
  `imresize`, the degradation that makes the LR inputs (`sr3_diffusers.image_processing.imresize`); the result is
  kept in float (neither rounded nor clipped).
- Per image, consistency = the mean squared difference to the LR input over all pixels and channels, on the [0, 1]
  scale (the SR3 paper's 16 -> 128 face model scores 2.68e-5). The result is the mean over images; each image is
  processed on its own, so the batching does not change it.
"""

from typing import List, Tuple

import datasets
import numpy as np
import torch

import evaluate
from sr3_diffusers.image_processing import imresize


_DESCRIPTION = """\
Consistency of super-resolved images with their low-resolution inputs (Saharia et al., 2021): the mean squared error,
on the [0, 1] scale, between each output downsampled with MATLAB's antialiased bicubic imresize and its LR input.
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
    predictions: the super-resolved images: a list of uint8 RGB images of shape (s H, s W, 3) (numpy arrays, CPU torch
        tensors or RGB PIL images; integer arrays with values in [0, 255] are accepted too), or one uint8 array of
        shape (N, s H, s W, 3). Float images are refused: quantise them first.
    references: the low-resolution inputs, (H, W, 3) each, in the same layout; one integer scale s for all pairs.

Returns:
    consistency (`float`): mean per-image MSE on the [0, 1] scale between the downsampled prediction and the LR input.
    scale (`int`): the scale factor s read from the shapes.
    downsampling (`str`): `"matlab_bicubic_antialiased"`.

Examples:

    >>> import numpy as np
    >>> consistency = evaluate.load("sr3_diffusers/metrics/consistency")
    >>> low_res = np.full((8, 8, 3), 200, dtype=np.uint8)
    >>> high_res = np.full((32, 32, 3), 200, dtype=np.uint8)
    >>> result = consistency.compute(predictions=[high_res], references=[low_res])
    >>> round(result["consistency"], 12), result["scale"], result["downsampling"]
    (0.0, 4, 'matlab_bicubic_antialiased')
"""


# Copied from sr3_diffusers.metrics.psnr.psnr._check_images
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


def _check_scaled_pairs(predictions, references) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Check both batches and that each prediction is an integer multiple (the same on both sides) of its input."""
    predictions = _check_images(predictions, "predictions")
    references = _check_images(references, "references")
    if len(predictions) != len(references):
        raise ValueError(
            f"Got {len(predictions)} predictions and {len(references)} references; they are paired by position, so "
            "their numbers must match."
        )
    for index, (prediction, reference) in enumerate(zip(predictions, references)):
        _scale_of(prediction, reference, index)
    return predictions, references


def _scale_of(prediction: np.ndarray, reference: np.ndarray, index: int) -> int:
    """The integer scale s with prediction size = s x reference size on both sides; `ValueError` if there is none."""
    (height, width), (low_height, low_width) = prediction.shape[:2], reference.shape[:2]
    scale = height // low_height
    if scale < 1 or height != scale * low_height or width != scale * low_width:
        raise ValueError(
            f"`predictions[{index}]` has shape {prediction.shape} and `references[{index}]` (its LR input) has shape "
            f"{reference.shape}: the prediction must be an integer multiple s of the input on both sides."
        )
    return scale


def _image_consistency(prediction: np.ndarray, reference: np.ndarray, scale: int) -> float:
    """MSE on [0, 1] between the MATLAB-bicubic 1/`scale` downsampling of a uint8 prediction and its uint8 LR input."""
    high_res = torch.tensor(prediction, dtype=torch.float64).permute(2, 0, 1) / 255.0
    downsampled = imresize(high_res, 1.0 / scale, antialias=True).permute(1, 2, 0).numpy()
    return float(np.mean((downsampled - reference.astype(np.float64) / 255.0) ** 2))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Consistency(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://arxiv.org/abs/2104.07636"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Check that the images are uint8 RGB pairs, each prediction s times its LR input, then add them."""
        predictions, references = _check_scaled_pairs(predictions, references)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Check that the images are a uint8 RGB pair, the prediction s times its LR input, then add it."""
        predictions, references = _check_scaled_pairs([prediction], [reference])
        super().add(prediction=predictions[0], reference=references[0], **kwargs)

    def _compute(self, predictions, references):
        predictions = [np.asarray(image) for image in predictions]
        references = [np.asarray(image) for image in references]
        if not predictions:
            raise ValueError("No images were added; consistency needs at least one pair.")
        scales = {_scale_of(p, r, index) for index, (p, r) in enumerate(zip(predictions, references))}
        if len(scales) > 1:
            raise ValueError(f"All pairs must share one scale factor, got scales {sorted(scales)}.")
        scale = scales.pop()
        scores = [_image_consistency(p, r, scale) for p, r in zip(predictions, references)]
        return {"consistency": float(np.mean(scores)), "scale": scale, "downsampling": "matlab_bicubic_antialiased"}
