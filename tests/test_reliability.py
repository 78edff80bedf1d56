"""Reliability: each fault a probe of bad inputs, damaged files and interrupted runs found, re-run so it stays fixed.

Sections follow the issue's list: damaged or interrupted checkpoints, resumes with a changed schedule, the pipeline's
input gaps, loading checks, and the consistency projection at large sizes. Training runs use the tiny configs of
`tests/test_train_sr3.py`, in-process where no kill is needed (faster).
"""

import numpy as np
import pytest
import torch

from sr3_diffusers import SR3Pipeline


def random_image(height, width, seed=0):
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------------------------
# Pipeline input gaps


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"enforce_consistency": "no"}, TypeError, "`enforce_consistency` must be True or False, got 'no'"),
        ({"enforce_consistency": 1}, TypeError, "`enforce_consistency` must be True or False"),
        ({"generator": 0}, TypeError, "`generator` must be a torch.Generator .* got int"),
        ({"generator": [0]}, TypeError, "`generator` must be a torch.Generator"),
        ({"tile_overlap": 8}, ValueError, "`tile_overlap=8` only applies to tiles: pass `tile_size`"),
    ],
)
def test_bad_call_arguments_name_the_argument(tiny_pipeline, kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny_pipeline(random_image(4, 4), **kwargs)


def test_a_truthy_string_is_not_taken_as_enforce_consistency_in_the_config(tiny_pipeline):
    with pytest.raises(TypeError, match="`enforce_consistency` must be True or False"):
        SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, enforce_consistency="no")


def test_numpy_scalars_are_accepted_where_python_numbers_are(tiny_pipeline):
    low_res = random_image(4, 4)
    generator = torch.Generator().manual_seed(0)
    expected = tiny_pipeline(low_res, strength=0.5, generator=generator, output_type="pt").images
    generator = torch.Generator().manual_seed(0)
    got = tiny_pipeline(
        low_res, strength=np.float32(0.5), enforce_consistency=np.bool_(False), generator=generator, output_type="pt"
    ).images
    assert torch.equal(got, expected)
    assert SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, strength=np.float64(0.25)).config.strength == 0.25


def test_generator_accepts_what_diffusers_accepts(tiny_pipeline):
    """None, one generator for the batch, or a list of one per image (diffusers' pipelines refuse other lengths)."""
    low_res = torch.stack([random_image(4, 4, seed=1), random_image(4, 4, seed=2)])
    run = lambda generator: tiny_pipeline(low_res, generator=generator, output_type="pt").images  # noqa: E731
    per_image = run([torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)])
    alone = tiny_pipeline(low_res[1:], generator=torch.Generator().manual_seed(4), output_type="pt").images
    torch.testing.assert_close(per_image[1:], alone, atol=1e-5, rtol=0)
    assert run(torch.Generator().manual_seed(3)).shape == run(None).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="one per image"):
        run([torch.Generator().manual_seed(3)])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64])
def test_integer_images_are_scaled_by_their_own_dtype_range(tiny_pipeline, dtype):
    from sr3_diffusers.image_processing import to_rgb_tensors

    peak = np.iinfo(dtype).max
    levels = np.array([[0, peak // 4], [peak // 2, peak]], dtype=dtype)
    (tensor,) = to_rgb_tensors(levels)
    expected = torch.tensor([[0, peak // 4], [peak // 2, peak]], dtype=torch.float64) / peak
    torch.testing.assert_close(tensor[0], expected.float(), rtol=0, atol=1e-7)
    assert tiny_pipeline(levels, num_inference_steps=1, output_type="pt").images.shape == (1, 3, 8, 8)


def test_negative_integer_levels_are_refused_as_integers(tiny_pipeline):
    levels = np.array([[-3, 0], [5, 100]], dtype=np.int8)
    with pytest.raises(ValueError, match=r"Integer images are levels in \[0, 127\] for their dtype torch.int8") as error:
        tiny_pipeline(levels)
    assert "Float images" not in str(error.value)


def test_an_empty_numpy_batch_is_refused_clearly(tiny_pipeline):
    with pytest.raises(ValueError, match="`image` is an empty batch"):
        tiny_pipeline(np.zeros((0, 4, 4, 3), dtype=np.uint8))
