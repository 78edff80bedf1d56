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

import numpy as np
import torch

import evaluate
from sr3_diffusers.image_processing import imresize
from sr3_diffusers.metrics.image_inputs import (
    IMAGE_PAIR_FEATURES,
    SR3_CITATION,
    ImagePairInputsMixin,
    stored_images,
)


_DESCRIPTION = """\
Consistency of super-resolved images with their low-resolution inputs (Saharia et al., 2021): the mean squared error,
on the [0, 1] scale, between each output downsampled with MATLAB's antialiased bicubic imresize and its LR input.
"""

_CITATION = SR3_CITATION

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
class Consistency(ImagePairInputsMixin, evaluate.Metric):
    same_shape = False  # each prediction is s times its LR input

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=IMAGE_PAIR_FEATURES,
            reference_urls=["https://arxiv.org/abs/2104.07636"],
        )

    def _check_inputs(self, predictions, references) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Check the pairs, and that each prediction is an integer multiple s of its LR input on both sides."""
        predictions, references = super()._check_inputs(predictions, references)
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            _scale_of(prediction, reference, index)
        return predictions, references

    def _compute(self, predictions, references):
        predictions = stored_images(predictions, "consistency")
        references = stored_images(references, "consistency")
        scales = {_scale_of(p, r, index) for index, (p, r) in enumerate(zip(predictions, references))}
        if len(scales) > 1:
            raise ValueError(f"All pairs must share one scale factor, got scales {sorted(scales)}.")
        scale = scales.pop()
        scores = [_image_consistency(p, r, scale) for p, r in zip(predictions, references)]
        return {"consistency": float(np.mean(scores)), "scale": scale, "downsampling": "matlab_bicubic_antialiased"}
