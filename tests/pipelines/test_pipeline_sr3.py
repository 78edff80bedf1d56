import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from diffusers.callbacks import PipelineCallback
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from sr3_diffusers import (
    SR3DPMSolverScheduler, SR3Pipeline, SR3PredictorModel, SR3Scheduler, SR3UNet2DModel, SR3UNet2DOutput,
)
from sr3_diffusers.image_processing import gaussian_blur, imresize, project_to_downscaled
from tests.testing_utils import random_tiny_predictor, write_hub_cache


def random_image(height, width, seed=0):
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


def run(pipe, image, seed=0, **kwargs):
    return pipe(image, generator=torch.Generator().manual_seed(seed), **kwargs).images


# ---------------------------------------------------------------------------------------------------------------------
# The algorithm


def test_pipeline_equals_algorithm_2_written_out_by_hand(tiny_pipeline):
    low_res = random_image(4, 6)
    output = run(tiny_pipeline, low_res, output_type="pt")

    unet = tiny_pipeline.unet
    generator = torch.Generator().manual_seed(0)
    # SPEC section 3: bicubic x4 of the [0, 1] image, clamped to [0, 1], mapped to [-1, 1].
    condition = F.interpolate(low_res[None], scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1
    sample = torch.randn(1, 3, 16, 24, generator=generator)
    betas = np.linspace(1e-4, 0.1, 4)
    gammas = np.cumprod(1 - betas)
    with torch.no_grad():
        for t in reversed(range(4)):
            eps = unet(sample, float(np.sqrt(gammas[t])), condition).sample
            mean = (sample - betas[t] / np.sqrt(1 - gammas[t]) * eps) / np.sqrt(1 - betas[t])
            noise = torch.randn(sample.shape, generator=generator) if t > 0 else 0
            sample = mean + np.sqrt(betas[t]) * noise
    expected = (sample.clamp(-1, 1) + 1) / 2
    torch.testing.assert_close(output, expected.float(), atol=1e-5, rtol=1e-5)


def test_condition_is_the_clamped_bicubic_upsampling_in_minus_one_to_one(tiny_pipeline):
    low_res = random_image(8, 8)
    seen = {}

    def keep_condition(pipe, step_index, timestep, callback_kwargs):
        seen["condition"] = callback_kwargs["condition"]
        return {}

    run(tiny_pipeline, low_res, callback_on_step_end=keep_condition, callback_on_step_end_tensor_inputs=["condition"])
    expected = F.interpolate(low_res[None], size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1
    torch.testing.assert_close(seen["condition"], expected)


def test_same_generator_same_output_and_other_seed_other_output(tiny_pipeline):
    low_res = random_image(5, 7)
    first = run(tiny_pipeline, low_res, seed=3, output_type="pt")
    assert torch.equal(first, run(tiny_pipeline, low_res, seed=3, output_type="pt"))
    assert not torch.equal(first, run(tiny_pipeline, low_res, seed=4, output_type="pt"))


# ---------------------------------------------------------------------------------------------------------------------
# Inputs and outputs


@pytest.mark.parametrize(
    "make_image",
    [
        lambda: PIL.Image.fromarray((np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)),
        lambda: PIL.Image.fromarray((np.random.default_rng(0).random((5, 7)) * 255).astype(np.uint8), mode="L"),
        lambda: PIL.Image.new("RGBA", (7, 5), (10, 200, 30, 0)),
        lambda: PIL.Image.fromarray((np.random.default_rng(0).random((5, 7)) * 65535).astype(np.uint16)),
        lambda: np.random.default_rng(0).random((5, 7, 3)).astype(np.float32),
        lambda: (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8),
        lambda: (np.random.default_rng(0).random((5, 7)) * 65535).astype(np.uint16),
        lambda: random_image(5, 7),
        lambda: (random_image(5, 7) * 255).to(torch.uint8),
    ],
    ids=["pil-rgb", "pil-grey", "pil-rgba", "pil-16bit", "np-float", "np-uint8", "np-uint16", "pt-float", "pt-uint8"],
)
def test_odd_sized_inputs_of_every_kind_come_back_exactly_four_times_larger(tiny_pipeline, make_image):
    images = run(tiny_pipeline, make_image())
    assert len(images) == 1 and isinstance(images[0], PIL.Image.Image)
    assert images[0].size == (28, 20) and images[0].mode == "RGB"


def test_sixteen_bit_and_eight_bit_versions_of_an_image_give_the_same_result(tiny_pipeline):
    levels = np.random.default_rng(1).integers(0, 256, (6, 6, 3))
    eight_bit = run(tiny_pipeline, levels.astype(np.uint8), output_type="np")
    sixteen_bit = run(tiny_pipeline, (levels * 257).astype(np.uint16), output_type="np")
    np.testing.assert_allclose(eight_bit, sixteen_bit, atol=1e-5)


def test_grey_input_is_treated_as_equal_rgb_channels(tiny_pipeline):
    grey = np.random.default_rng(0).integers(0, 256, (6, 6)).astype(np.uint8)
    from_grey = run(tiny_pipeline, PIL.Image.fromarray(grey, mode="L"), output_type="np")
    from_rgb = run(tiny_pipeline, np.repeat(grey[..., None], 3, axis=-1), output_type="np")
    np.testing.assert_array_equal(from_grey, from_rgb)


def test_batches_and_lists_of_mixed_sizes(tiny_pipeline):
    batch = run(tiny_pipeline, torch.rand(3, 3, 5, 6), output_type="pt")
    assert batch.shape == (3, 3, 20, 24)
    numpy_batch = run(tiny_pipeline, np.random.default_rng(0).random((2, 5, 6, 3)), output_type="np")
    assert numpy_batch.shape == (2, 20, 24, 3)
    mixed = run(tiny_pipeline, [random_image(5, 6), PIL.Image.new("L", (3, 9))], output_type="pt")
    assert [tuple(image.shape) for image in mixed] == [(3, 20, 24), (3, 36, 12)]
    pil = run(tiny_pipeline, [random_image(5, 6), random_image(5, 6, seed=1)])
    assert [image.size for image in pil] == [(24, 20), (24, 20)]


def test_output_types_have_documented_layout_and_range(tiny_pipeline):
    low_res = random_image(4, 4)
    as_pt = run(tiny_pipeline, low_res, output_type="pt")
    as_np = run(tiny_pipeline, low_res, output_type="np")
    as_pil = run(tiny_pipeline, low_res, output_type="pil")
    assert as_pt.shape == (1, 3, 16, 16) and as_np.shape == (1, 16, 16, 3)
    assert 0 <= as_pt.min() and as_pt.max() <= 1
    np.testing.assert_allclose(as_np[0], as_pt[0].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(np.asarray(as_pil[0]), (as_np[0] * 255).round().astype(np.uint8))


def test_return_dict_false_gives_a_tuple(tiny_pipeline):
    output = tiny_pipeline(random_image(4, 4), return_dict=False)
    assert isinstance(output, tuple) and isinstance(output[0][0], PIL.Image.Image)
    assert isinstance(tiny_pipeline(random_image(4, 4)), ImagePipelineOutput)


def test_num_inference_steps_defaults_to_the_scheduler_config_and_can_be_fewer(tiny_pipeline):
    steps = []
    callback = lambda pipe, i, t, kwargs: steps.append(int(t)) or {}  # noqa: E731
    run(tiny_pipeline, random_image(4, 4), callback_on_step_end=callback)
    assert steps == [3, 2, 1, 0]
    steps.clear()
    run(tiny_pipeline, random_image(4, 4), num_inference_steps=2, callback_on_step_end=callback)
    assert steps == [1, 0]


def test_callback_can_replace_the_sample_and_interrupt(tiny_pipeline):
    def zero_sample_then_stop(pipe, step_index, timestep, callback_kwargs):
        pipe._interrupt = step_index == 1
        return {"latents": torch.zeros_like(callback_kwargs["latents"])}

    output = run(tiny_pipeline, random_image(4, 4), output_type="pt", callback_on_step_end=zero_sample_then_stop)
    # The loop stops after step 1, whose sample was replaced by zeros: the output is mid-grey everywhere.
    torch.testing.assert_close(output, torch.full_like(output, 0.5))


def test_pipeline_callback_objects_are_supported(tiny_pipeline):
    class CountSteps(PipelineCallback):
        tensor_inputs = ["latents", "pred_original_sample"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            assert callback_kwargs["pred_original_sample"].shape == callback_kwargs["latents"].shape
            self.calls = getattr(self, "calls", 0) + 1
            return callback_kwargs

    callback = CountSteps()
    run(tiny_pipeline, random_image(4, 4), callback_on_step_end=callback)
    assert callback.calls == 4


def test_progress_bar_is_shown_by_default(tiny_pipeline, capsys):
    tiny_pipeline.set_progress_bar_config(disable=False)
    run(tiny_pipeline, random_image(4, 4))
    assert "4/4" in capsys.readouterr().err


def test_bfloat16_pipeline_runs_and_agrees_with_float32(tiny_pipeline):
    low_res = random_image(8, 8)
    full = run(tiny_pipeline, low_res, output_type="pt")
    tiny_pipeline.to(torch.bfloat16)
    low = run(tiny_pipeline, low_res, output_type="pt")
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - full).abs().mean() < 0.02


# ---------------------------------------------------------------------------------------------------------------------
# Saving and loading


def assert_same_up_to_float_rounding(actual, expected):
    """Weights read from safetensors sit at other memory alignments than freshly made ones, which can change the
    SIMD summation order of a convolution by one rounding; a real difference in weights or schedule is far larger."""
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_save_and_load_round_trip_gives_identical_outputs(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["sr3_diffusers", "SR3Pipeline"] and index["scale"] == 4
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "scheduler" / "scheduler_config.json").is_file()
    loaded = SR3Pipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.scale == 4 and isinstance(loaded.unet, SR3UNet2DModel)
    low_res = random_image(5, 7)
    assert_same_up_to_float_rounding(run(tiny_pipeline, low_res, output_type="pt"), run(loaded, low_res, output_type="pt"))


def test_scale_is_part_of_the_saved_config(tmp_path):
    unet = SR3UNet2DModel(block_out_channels=(8, 16), layers_per_block=1, attention_depths=(), norm_num_groups=4)
    SR3Pipeline(unet=unet, scheduler=SR3Scheduler(num_inference_steps=2), scale=2).save_pretrained(tmp_path)
    loaded = SR3Pipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.scale == 2
    assert loaded(random_image(5, 7)).images[0].size == (14, 10)


@pytest.mark.filterwarnings("ignore:`torch_dtype` is deprecated")
def test_torch_dtype_on_load(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    loaded = SR3Pipeline.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    assert loaded.unet.dtype == torch.bfloat16
    assert SR3Pipeline.from_pretrained(tmp_path, dtype=torch.float16).unet.dtype == torch.float16


def test_a_variant_that_was_not_saved_is_a_clear_error(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="`variant=fp16`, but no such modeling files"):
        SR3Pipeline.from_pretrained(tmp_path, variant="fp16")
    tiny_pipeline.save_pretrained(tmp_path, variant="fp16")
    assert SR3Pipeline.from_pretrained(tmp_path, variant="fp16").unet is not None


def test_loading_is_reported_on_diffusers_pipeline_loading_log(tiny_pipeline, tmp_path, caplog):
    tiny_pipeline.save_pretrained(tmp_path)
    with caplog.at_level("INFO", logger="diffusers.pipelines.pipeline_utils"):
        SR3Pipeline.from_pretrained(tmp_path)
    assert {record.name for record in caplog.records} == {"diffusers.pipelines.pipeline_utils"}
    assert "Loaded unet as SR3UNet2DModel" in caplog.text and "Loaded scheduler as SR3Scheduler" in caplog.text


def test_a_dict_of_dtypes_gives_each_model_its_own(tiny_pipeline, tmp_path):
    SR3Pipeline(unet=tiny_pipeline.unet, scheduler=tiny_pipeline.scheduler, predictor=SR3PredictorModel(
        num_channels=8, num_blocks=1, scale=4)).save_pretrained(tmp_path)
    loaded = SR3Pipeline.from_pretrained(tmp_path, dtype={"unet": torch.bfloat16, "default": torch.float16})
    assert (loaded.unet.dtype, loaded.predictor.dtype) == (torch.bfloat16, torch.float16)
    assert SR3Pipeline.from_pretrained(tmp_path, dtype={"predictor": torch.float16}).unet.dtype == torch.float32


def test_pickled_weights_load_only_when_the_user_opts_in(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.bin").is_file()
    with pytest.raises(EnvironmentError, match="safetensors"):
        SR3Pipeline.from_pretrained(tmp_path)
    assert SR3Pipeline.from_pretrained(tmp_path, use_safetensors=False).unet is not None


LOAD_FROM_HUB = """
import sys, torch
from sr3_diffusers import SR3Pipeline
pipe = SR3Pipeline.from_pretrained("sr3-org/sr3-tiny")
pipe.set_progress_bar_config(disable=True)
image = pipe(torch.rand(3, 5, 7, generator=torch.manual_seed(0)), generator=torch.manual_seed(0), output_type="pt").images
torch.save(image, sys.argv[1])
"""


def load_from_hub_cache_offline(cache_dir, output):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache_dir), HF_HOME=str(cache_dir.parent / "home"))
    return subprocess.run([sys.executable, "-c", LOAD_FROM_HUB, str(output)], env=env, capture_output=True, text=True)


def test_repo_id_loads_offline_from_a_real_hub_cache_layout(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "saved")
    repo_files = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
    write_hub_cache(tmp_path / "saved", tmp_path / "hub", "sr3-org/sr3-tiny", "a" * 40, extra_repo_files=repo_files)
    result = load_from_hub_cache_offline(tmp_path / "hub", tmp_path / "out.pt")
    assert result.returncode == 0, result.stderr
    expected = tiny_pipeline(torch.rand(3, 5, 7, generator=torch.manual_seed(0)), generator=torch.manual_seed(0),
                             output_type="pt").images
    assert_same_up_to_float_rounding(torch.load(tmp_path / "out.pt"), expected)


def test_incomplete_cached_snapshot_fails_with_a_clear_error(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "saved")
    weights = "unet/diffusion_pytorch_model.safetensors"
    write_hub_cache(tmp_path / "saved", tmp_path / "hub", "sr3-org/sr3-tiny", "b" * 40, skip=(weights,))
    result = load_from_hub_cache_offline(tmp_path / "hub", tmp_path / "out.pt")
    assert result.returncode != 0
    assert "incomplete" in result.stderr and weights in result.stderr


# ---------------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "image, error, message",
    [
        ("photo.png", TypeError, "PIL.Image.Image, numpy array, torch.Tensor"),
        ([], ValueError, "empty list"),
        (np.zeros((0, 5, 3), dtype=np.uint8), ValueError, "Empty image"),
        (torch.rand(2, 5, 5), ValueError, "1 \\(grey\\), 3 \\(RGB\\) or 4 \\(RGBA\\) channels"),
        (torch.full((3, 4, 4), float("nan")), ValueError, "NaN"),
        (torch.rand(3, 4, 4) * 2 - 1, ValueError, r"\[-1, 1\] pass `\(image \+ 1\) / 2`"),
        (np.full((4, 4, 3), 255.0), ValueError, r"\[0, 255\] pass `image / 255`"),
        (torch.rand(1, 1, 3, 4, 4), ValueError, "shape"),
        ([[torch.rand(3, 4, 4)]], TypeError, "list of lists"),
    ],
)
def test_bad_images_raise_clear_errors(tiny_pipeline, image, error, message):
    with pytest.raises(error, match=message):
        tiny_pipeline(image)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"output_type": "latents"}, ValueError, "output_type"),
        ({"num_inference_steps": 5}, ValueError, "at most the configured 4"),
        ({"num_inference_steps": 0}, ValueError, "positive"),
        ({"generator": [torch.Generator(), torch.Generator()]}, ValueError, "one per image"),
        ({"callback_on_step_end_tensor_inputs": ["sample"]}, ValueError, "may only name"),
    ],
)
def test_bad_arguments_raise_clear_errors(tiny_pipeline, kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny_pipeline(random_image(4, 4), **kwargs)


@pytest.mark.parametrize("scale", [0, 2.5, True])
def test_bad_scale_is_refused(tiny_pipeline, scale):
    with pytest.raises(ValueError, match="scale"):
        SR3Pipeline(unet=tiny_pipeline.unet, scheduler=tiny_pipeline.scheduler, scale=scale)


# ---------------------------------------------------------------------------------------------------------------------
# Tiled upscaling


def psnr(a, b):
    return 10 * torch.log10(1 / ((a - b) ** 2).mean()).item()


def test_tiled_run_matches_the_untiled_run_and_the_unet_only_sees_tiles(tiny_pipeline):
    # The deterministic sampler (DDIM, eta = 0): any difference comes from the tiles, none from noise draws.
    tiny_pipeline.scheduler = SR3DPMSolverScheduler.from_config(
        tiny_pipeline.scheduler.config, algorithm_type="ddim", num_inference_steps=4
    )
    low_res = random_image(24, 20)
    untiled = run(tiny_pipeline, low_res, output_type="pt")
    seen_sizes = []
    hook = tiny_pipeline.unet.register_forward_hook(lambda m, args, out: seen_sizes.append(tuple(args[0].shape)))
    tiled = run(tiny_pipeline, low_res, output_type="pt", tile_size=32, tile_overlap=16, tile_batch_size=2)
    hook.remove()
    assert tiled.shape == untiled.shape == (1, 3, 96, 80)
    assert max(size[-1] for size in seen_sizes) == 32 and max(size[-2] for size in seen_sizes) == 32
    # Every step: 5 x 4 windows of 32 (stride 16) in 2-tile batches.
    assert len(seen_sizes) == 4 * 10 and {size[0] for size in seen_sizes} == {2}
    assert psnr(tiled, untiled) > 40  # 48 dB with this random tiny UNet and 32-pixel tiles


def test_tiled_batch_gives_each_image_what_it_gets_alone(tiny_pipeline):
    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    generators = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    together = tiny_pipeline(images, generator=generators, output_type="pt", tile_size=32, tile_batch_size=3).images
    alone = tiny_pipeline(images[1:], generator=torch.Generator().manual_seed(1), output_type="pt", tile_size=32).images
    assert together.shape == (2, 3, 48, 48)
    torch.testing.assert_close(together[1:], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tile_size": 31}, "multiple of 2"),
        ({"tile_size": 0}, "multiple of 2"),
        ({"tile_size": 32, "tile_overlap": 32}, "tile_overlap"),
        ({"tile_size": 32, "tile_batch_size": 0}, "tile_batch_size"),
        ({"tile_size": 32, "tile_overlap": -1}, "tile_overlap"),
    ],
)
def test_bad_tiling_arguments_are_refused(tiny_pipeline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(random_image(4, 4), **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Consistency with the input (back-projection)


def test_projection_makes_the_predicted_image_downscale_to_the_input_and_returns_its_noise(tiny_pipeline):
    low_res = random_image(6, 5)
    sample = torch.randn(1, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    noise_pred = torch.randn(1, 3, 24, 20, generator=torch.Generator().manual_seed(2))
    condition = torch.zeros_like(sample)  # unused without residual diffusion
    projected = tiny_pipeline.project_to_low_res(noise_pred, sample, torch.tensor(0.6), condition, [low_res])
    gamma = 0.36
    before = (sample - (1 - gamma) ** 0.5 * noise_pred) / gamma**0.5
    after = (sample - (1 - gamma) ** 0.5 * projected) / gamma**0.5
    target = low_res[None] * 2 - 1
    torch.testing.assert_close(imresize(after, 0.25), target, atol=1e-4, rtol=0)
    # The smallest such change (DDNM's range-space correction): it is orthogonal to every change that keeps the
    # downscaling, e.g. n = z - A^+ A z, which `project_to_downscaled(z, 0)` gives.
    change = after - before
    null_change = project_to_downscaled(torch.randn(1, 3, 24, 20, generator=torch.Generator().manual_seed(3)),
                                        torch.zeros(1, 3, 6, 5), 4)
    torch.testing.assert_close(imresize(null_change, 0.25), torch.zeros(1, 3, 6, 5), atol=1e-4, rtol=0)
    assert abs((change * null_change).sum()) < 1e-3 * change.norm() * null_change.norm()


def test_enforce_consistency_ties_the_output_to_the_input_and_is_saved_in_the_config(tiny_pipeline, tmp_path):
    low_res = 0.3 + 0.4 * random_image(8, 8)  # mid-range, so that the consistent output needs no clamping
    # A denoiser that is perfect for a flat grey image, which is inconsistent with the input: without the projection
    # the sampler returns grey; with it, an image whose downscaling is the input.
    grey = torch.zeros(1, 3, 32, 32)

    def denoise_towards_grey(module, args, output):
        sample, noise_level = args[0], args[1]
        gamma = noise_level.reshape(-1, 1, 1, 1).double() ** 2
        return SR3UNet2DOutput(sample=((sample - gamma.sqrt() * grey) / (1 - gamma).sqrt()).float())

    tiny_pipeline.unet.register_forward_hook(denoise_towards_grey)
    tiny_pipeline.scheduler = SR3DPMSolverScheduler.from_config(tiny_pipeline.scheduler.config, algorithm_type="ddim")

    def consistency(output):
        return (imresize(output, 0.25) - low_res[None]).square().mean().item()

    free = run(tiny_pipeline, low_res, output_type="pt", num_inference_steps=4)
    tied = run(tiny_pipeline, low_res, output_type="pt", num_inference_steps=4, enforce_consistency=True)
    torch.testing.assert_close(free, torch.full_like(free, 0.5), atol=1e-4, rtol=0)
    assert consistency(tied) < 1e-6

    SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, enforce_consistency=True).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["enforce_consistency"] is True
    loaded = SR3Pipeline.from_pretrained(tmp_path)
    assert loaded.config.enforce_consistency is True


def test_strength_starts_from_the_noised_bicubic_image_and_runs_the_last_steps(tiny_pipeline):
    low_res = random_image(8, 8)
    inputs = []
    hook = tiny_pipeline.unet.register_forward_hook(lambda module, args, output: inputs.append((args[0], args[1])))
    full = run(tiny_pipeline, low_res, output_type="pt")
    assert len(inputs) == 4
    inputs.clear()
    run(tiny_pipeline, low_res, output_type="pt", strength=0.5)
    hook.remove()
    assert len(inputs) == 2 == tiny_pipeline.num_timesteps
    gammas = np.cumprod(1 - np.linspace(1e-4, 0.1, 4))
    first_sample, first_noise_level = inputs[0]
    assert first_noise_level[0].item() == pytest.approx(gammas[1] ** 0.5)
    condition = F.interpolate(low_res[None], scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = gammas[1] ** 0.5 * condition + (1 - gammas[1]) ** 0.5 * noise
    torch.testing.assert_close(first_sample, expected.float(), atol=1e-5, rtol=1e-5)
    assert torch.equal(run(tiny_pipeline, low_res, output_type="pt", strength=1.0), full)


@pytest.mark.parametrize("strength", [1.5, -0.1, "0.5"])
def test_bad_strength_is_refused(tiny_pipeline, strength):
    with pytest.raises(ValueError, match="strength"):
        tiny_pipeline(random_image(4, 4), strength=strength)
    with pytest.raises(ValueError, match="strength"):
        SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, strength=strength)


# ---------------------------------------------------------------------------------------------------------------------
# Beyond SR3: a predictor as the condition, residual diffusion, other prediction types


@pytest.fixture
def tiny_predictor():
    return random_tiny_predictor(seed=7)


def run_keeping_condition(pipe, low_res, **kwargs):
    """The pipeline's output and the condition its UNet was given."""
    seen = {}

    def keep_condition(pipe, step_index, timestep, callback_kwargs):
        seen["condition"] = callback_kwargs["condition"]
        return {}

    output = run(pipe, low_res, callback_on_step_end=keep_condition, callback_on_step_end_tensor_inputs=["condition"], **kwargs)
    return output, seen["condition"]


def test_predictor_output_clamped_is_the_condition(tiny_pipeline, tiny_predictor):
    pipe = SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor)
    pipe.set_progress_bar_config(disable=True)
    low_res = random_image(8, 8)
    _, condition = run_keeping_condition(pipe, low_res)
    with torch.no_grad():
        expected = tiny_predictor(low_res[None] * 2 - 1).sample.clamp(-1, 1)
    assert not torch.equal(expected, F.interpolate(low_res[None] * 2 - 1, scale_factor=4, mode="bicubic"))
    torch.testing.assert_close(condition, expected)


def test_residual_diffusion_output_is_the_condition_plus_the_scaled_sample(tiny_pipeline, tiny_predictor):
    """Algorithm 2 on the residual written out: x_0 = (HR - condition) / s, output = condition + s x_0."""
    pipe = SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor, residual_scale=0.1)
    pipe.set_progress_bar_config(disable=True)
    low_res = random_image(4, 6)
    output = run(pipe, low_res, output_type="pt")

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        condition = tiny_predictor(low_res[None] * 2 - 1).sample.clamp(-1, 1)
        sample = torch.randn(1, 3, 16, 24, generator=generator)
        betas = np.linspace(1e-4, 0.1, 4)
        gammas = np.cumprod(1 - betas)
        for t in reversed(range(4)):
            eps = pipe.unet(sample, float(np.sqrt(gammas[t])), condition).sample
            mean = (sample - betas[t] / np.sqrt(1 - gammas[t]) * eps) / np.sqrt(1 - betas[t])
            noise = torch.randn(sample.shape, generator=generator) if t > 0 else 0
            sample = mean + np.sqrt(betas[t]) * noise
    expected = ((condition + 0.1 * sample).clamp(-1, 1) + 1) / 2
    torch.testing.assert_close(output, expected.float(), atol=1e-5, rtol=1e-5)


def test_strength_zero_returns_the_condition_without_calling_the_unet(tiny_pipeline, tiny_predictor):
    pipe = SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor, residual_scale=0.1)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *args: calls.append(1))
    low_res = random_image(5, 5)
    output = run(pipe, low_res, output_type="pt", strength=0)
    hook.remove()
    assert calls == [] and pipe.num_timesteps == 0
    with torch.no_grad():
        expected = (tiny_predictor(low_res[None] * 2 - 1).sample.clamp(-1, 1) + 1) / 2
    torch.testing.assert_close(output, expected)


def test_with_a_faithful_predictor_strength_zero_returns_its_image_and_sampling_keeps_the_predictor(
    tmp_path, tiny_pipeline, tiny_predictor
):
    """A perceptual `predictor` stays the condition of sampling; `strength=0` returns the `faithful_predictor`'s image
    (no UNet call); both are saved, listed in model_index.json and loaded back."""
    faithful = random_tiny_predictor(seed=8)
    pipe = SR3Pipeline(
        tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor, faithful_predictor=faithful,
        residual_scale=0.1,
    )
    pipe.set_progress_bar_config(disable=True)
    low_res = random_image(5, 5)
    with torch.no_grad():
        faithful_image = (faithful(low_res[None] * 2 - 1).sample.clamp(-1, 1) + 1) / 2
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *args: calls.append(1))
    torch.testing.assert_close(run(pipe, low_res, output_type="pt", strength=0), faithful_image)
    hook.remove()
    assert calls == []
    without = SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor, residual_scale=0.1)
    without.set_progress_bar_config(disable=True)
    torch.testing.assert_close(run(pipe, low_res, output_type="pt"), run(without, low_res, output_type="pt"))

    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["faithful_predictor"] == [
        "sr3_diffusers",
        "SR3PredictorModel",
    ]
    loaded = SR3Pipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(run(loaded, low_res, output_type="pt", strength=0), faithful_image)
    with pytest.raises(ValueError, match="faithful_predictor upscales x2"):
        SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, faithful_predictor=SR3PredictorModel(scale=2))


def test_frequency_split_conditions_on_the_faithful_low_and_the_predictors_high_frequencies(
    tmp_path, tiny_pipeline, tiny_predictor
):
    """condition = G_s * F(x) + P(x) - G_s * P(x); `strength=0` still returns F(x); saved and loaded with the model."""
    faithful = random_tiny_predictor(seed=8)
    pipe = SR3Pipeline(
        tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor, faithful_predictor=faithful,
        residual_scale=0.1, frequency_split_sigma=1.5,
    )
    pipe.set_progress_bar_config(disable=True)
    low_res = random_image(6, 5)
    output, condition = run_keeping_condition(pipe, low_res, output_type="pt")
    with torch.no_grad():
        faithful_image = faithful(low_res[None] * 2 - 1).sample.clamp(-1, 1)
        predictor_image = tiny_predictor(low_res[None] * 2 - 1).sample.clamp(-1, 1)
    expected = gaussian_blur(faithful_image, 1.5) + predictor_image - gaussian_blur(predictor_image, 1.5)
    torch.testing.assert_close(condition[..., :24, :20], expected.clamp(-1, 1))
    assert (condition[..., :24, :20] - predictor_image).abs().max() > 1e-3
    torch.testing.assert_close(run(pipe, low_res, output_type="pt", strength=0), (faithful_image + 1) / 2)

    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["frequency_split_sigma"] == 1.5
    loaded = SR3Pipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(run(loaded, low_res, output_type="pt"), output)
    # The split needs both predictors: a clear error, with the way out, where one is taken away.
    with pytest.raises(ValueError, match="lacks one of them; pass both, or `frequency_split_sigma=None`"):
        SR3Pipeline.from_pretrained(tmp_path, faithful_predictor=None)
    assert SR3Pipeline.from_pretrained(tmp_path, faithful_predictor=None, frequency_split_sigma=None).faithful_predictor is None
    with pytest.raises(ValueError, match="`frequency_split_sigma` must be a positive number or None, got 0"):
        SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor, faithful_predictor=faithful,
                    frequency_split_sigma=0)  # fmt: skip


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_projection_in_residual_mode_makes_the_image_consistent_for_any_prediction_type(
    tiny_pipeline, tiny_predictor, prediction_type
):
    scheduler = SR3Scheduler(num_inference_steps=4, prediction_type=prediction_type)
    pipe = SR3Pipeline(tiny_pipeline.unet, scheduler, predictor=tiny_predictor, residual_scale=0.1)
    pipe.set_progress_bar_config(disable=True)
    low_res = 0.25 + 0.5 * random_image(6, 6)  # mid-range: the final clamp to [0, 1] never cuts the projected image
    output = run(pipe, low_res, output_type="pt", enforce_consistency=True)
    assert (imresize(output, 0.25) - low_res[None]).square().mean().item() < 1e-6
    free = run(pipe, low_res, output_type="pt")
    assert (imresize(free, 0.25) - low_res[None]).square().mean().item() > 1e-4


def test_predictor_and_residual_scale_are_saved_and_loaded(tmp_path, tiny_pipeline, tiny_predictor):
    from sr3_diffusers import SR3PredictorModel

    pipe = SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=tiny_predictor, residual_scale=0.25)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["predictor"] == ["sr3_diffusers", "SR3PredictorModel"]
    assert (tmp_path / "predictor" / "sr3_diffusers.py").is_file()  # the code file for loading without the package
    assert index["residual_scale"] == 0.25
    loaded = SR3Pipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.predictor, SR3PredictorModel) and loaded.config.residual_scale == 0.25
    low_res = random_image(4, 4)
    torch.testing.assert_close(run(loaded, low_res, output_type="pt"), run(pipe, low_res, output_type="pt"))

    plain = tmp_path / "plain"
    tiny_pipeline.save_pretrained(plain)  # SR3 itself: no predictor, no residual
    loaded = SR3Pipeline.from_pretrained(plain)
    assert loaded.predictor is None and loaded.config.residual_scale is None


@pytest.mark.parametrize("residual_scale", [0, -1.0, True])
def test_bad_residual_scale_is_refused(tiny_pipeline, residual_scale):
    with pytest.raises(ValueError, match="residual_scale"):
        SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, residual_scale=residual_scale)


def test_predictor_of_another_scale_is_refused(tiny_pipeline):
    from sr3_diffusers import SR3PredictorModel

    with pytest.raises(ValueError, match="predictor upscales x2"):
        SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, predictor=SR3PredictorModel(scale=2, num_blocks=0))
