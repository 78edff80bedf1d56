import numpy as np
import pytest
import torch
from skimage import data

from sr3_diffusers.image_processing import imresize
from sr3_diffusers.metrics.consistency.consistency import Consistency


def make_pairs(scale=4):
    """High-resolution photo crops and their uint8 LR versions made with MATLAB bicubic, plus noisy 'outputs'."""
    rng = np.random.default_rng(0)
    high_res = [data.astronaut()[64:128, 96:192], data.coffee()[100:164, 200:264]]
    low_res = [to_uint8(downsample(image, scale)) for image in high_res]
    outputs = [
        np.clip(image.astype(np.int64) + rng.integers(-30, 31, size=image.shape), 0, 255).astype(np.uint8)
        for image in high_res
    ]
    return outputs, low_res


def downsample(image, scale):
    """A uint8 (H, W, 3) image downsampled by 1/scale with `imresize`, as float (H / scale, W / scale, 3) in [0, 1]."""
    tensor = torch.tensor(image, dtype=torch.float64).permute(2, 0, 1) / 255.0
    return imresize(tensor, 1.0 / scale).permute(1, 2, 0).numpy()


def to_uint8(image):
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def test_matches_hand_computation():
    outputs, low_res = make_pairs()
    expected = np.mean([np.mean((downsample(o, 4) - lr / 255.0) ** 2) for o, lr in zip(outputs, low_res)])
    result = Consistency().compute(predictions=outputs, references=low_res)
    assert result == {
        "consistency": pytest.approx(expected, rel=1e-12),
        "scale": 4,
        "downsampling": "matlab_bicubic_antialiased",
    }


def test_ground_truth_is_consistent_up_to_quantisation():
    high_res = [data.astronaut()[64:128, 96:192]]
    low_res = [to_uint8(downsample(high_res[0], 2))]
    result = Consistency().compute(predictions=high_res, references=low_res)
    assert result["scale"] == 2
    # Only the LR rounding separates them: at most half a grey level, squared.
    assert 0 < result["consistency"] <= (0.5 / 255.0) ** 2


def test_batch_size_invariance():
    outputs, low_res = make_pairs()
    whole = Consistency().compute(predictions=outputs, references=low_res)
    consistency = Consistency()
    for output, low in zip(outputs, low_res):
        consistency.add(prediction=output, reference=low)
    assert consistency.compute() == whole


@pytest.mark.parametrize("low_shape", [(17, 24, 3), (16, 23, 3), (16, 12, 3), (70, 100, 3)])
def test_shapes_that_are_not_an_integer_multiple_raise(low_shape):
    output = np.zeros((64, 96, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="integer multiple s of the input on both sides"):
        Consistency().compute(predictions=[output], references=[np.zeros(low_shape, dtype=np.uint8)])


def test_mixed_scales_raise():
    outputs = [np.zeros((64, 64, 3), dtype=np.uint8)] * 2
    low_res = [np.zeros((16, 16, 3), dtype=np.uint8), np.zeros((32, 32, 3), dtype=np.uint8)]
    with pytest.raises(ValueError, match=r"one scale factor, got scales \[2, 4\]"):
        Consistency().compute(predictions=outputs, references=low_res)
