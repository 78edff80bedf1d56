"""diffusers' own schedulers drive the SR3 UNet through the pipeline."""

import diffusers
import pytest
import torch

from sr3_diffusers import SR3Scheduler
from sr3_diffusers.pipelines.pipeline_sr3 import DIFFUSERS_SCHEDULERS


def low_res_image():
    return torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", DIFFUSERS_SCHEDULERS)
def test_from_config_of_an_sr3_config_is_the_sr3_training_schedule(name):
    sr3 = SR3Scheduler(num_train_timesteps=1000, beta_start=2e-4, beta_end=0.01)
    scheduler = getattr(diffusers, name).from_config(sr3.config)
    assert scheduler.config.num_train_timesteps == 1000
    torch.testing.assert_close(scheduler.alphas_cumprod.double(), sr3.alphas_cumprod, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", DIFFUSERS_SCHEDULERS)
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_each_diffusers_scheduler_drives_the_unet(tiny_pipeline, name, strength):
    tiny_pipeline.scheduler = getattr(diffusers, name).from_config(tiny_pipeline.scheduler.config)
    seen = []

    def record(pipe, step_index, timestep, callback_kwargs):
        seen.append((float(timestep), float(pipe.get_noise_level(timestep))))
        return callback_kwargs

    images = tiny_pipeline(low_res_image(), num_inference_steps=4, strength=strength, generator=torch.manual_seed(0),
                           output_type="pt", callback_on_step_end=record).images
    assert images.shape == (1, 3, 20, 28) and torch.isfinite(images).all()
    assert len(seen) == tiny_pipeline.num_timesteps == (4 if strength == 1.0 else 2)
    alphas_cumprod = tiny_pipeline.scheduler.alphas_cumprod
    for timestep, noise_level in seen:
        if timestep == int(timestep):  # Euler's fractional timesteps interpolate (see the next test)
            assert noise_level == pytest.approx(alphas_cumprod[int(timestep)].sqrt().item(), rel=1e-5)
    again = tiny_pipeline(low_res_image(), num_inference_steps=4, strength=strength, generator=torch.manual_seed(0),
                          output_type="pt").images
    assert torch.equal(images, again)


def test_a_fractional_timestep_interpolates_sigma_as_euler_does(tiny_pipeline):
    tiny_pipeline.scheduler = diffusers.EulerDiscreteScheduler.from_config(tiny_pipeline.scheduler.config)
    tiny_pipeline.scheduler.set_timesteps(7)
    for timestep, sigma in zip(tiny_pipeline.scheduler.timesteps, tiny_pipeline.scheduler.sigmas):
        # the UNet sees the sample scaled by 1 / sqrt(sigma^2 + 1): a variance-preserving x_t with gamma = 1/(1+sigma^2)
        expected = (1.0 / (1.0 + sigma.double() ** 2)).sqrt().item()
        assert tiny_pipeline.get_noise_level(timestep).item() == pytest.approx(expected, rel=1e-4)


def test_a_scheduler_without_a_training_schedule_is_a_clear_error(tiny_pipeline):
    tiny_pipeline.scheduler = diffusers.FlowMatchEulerDiscreteScheduler()
    with pytest.raises(ValueError, match="FlowMatchEulerDiscreteScheduler cannot drive the SR3 UNet.*DDIMScheduler"):
        tiny_pipeline(low_res_image())


def test_latent_output_is_the_final_sample(tiny_pipeline):
    latent = tiny_pipeline(low_res_image(), generator=torch.manual_seed(0), output_type="latent").images
    images = tiny_pipeline(low_res_image(), generator=torch.manual_seed(0), output_type="pt").images
    assert latent.shape == (1, 3, 20, 28)  # the canvas padded to the UNet's downsampling (here a multiple of 2)
    torch.testing.assert_close(((latent + 1) / 2).clamp(0, 1), images)
