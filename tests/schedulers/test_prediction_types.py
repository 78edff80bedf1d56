"""The prediction types shared by both SR3 schedulers: conversions, the v target, and steps that agree across types."""

import pytest
import torch

from sr3_diffusers.schedulers import (
    PREDICTION_TYPES,
    SR3DPMSolverScheduler,
    SR3Scheduler,
    model_output_from_original,
    noise_and_original_from_model_output,
)


def tensors(seed=0, shape=(2, 3, 4, 4)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64), torch.randn(
        shape, generator=generator, dtype=torch.float64
    )


@pytest.mark.parametrize("gamma", [0.01, 0.5, 0.999])
def test_each_prediction_type_recovers_the_noise_and_x0_it_was_made_from(gamma):
    original, noise = tensors()
    sample = gamma**0.5 * original + (1 - gamma) ** 0.5 * noise
    outputs = {
        "epsilon": noise,
        "sample": original,
        "v_prediction": gamma**0.5 * noise - (1 - gamma) ** 0.5 * original,  # Salimans & Ho (2022)
    }
    for prediction_type, model_output in outputs.items():
        eps, x0 = noise_and_original_from_model_output(prediction_type, model_output, sample, gamma)
        torch.testing.assert_close(eps, noise)
        torch.testing.assert_close(x0, original)
        torch.testing.assert_close(model_output_from_original(prediction_type, original, sample, gamma), model_output)


def test_get_velocity_is_the_v_target_per_sample():
    original, noise = tensors(1)
    gamma = torch.tensor([0.2, 0.9])
    velocity = SR3Scheduler().get_velocity(original.float(), noise.float(), gamma)
    for index in range(2):
        g = gamma[index].item()
        expected = g**0.5 * noise[index] - (1 - g) ** 0.5 * original[index]
        torch.testing.assert_close(velocity[index], expected.float())


def test_unknown_prediction_type_is_refused_in_the_config_and_the_helpers():
    for scheduler_class in (SR3Scheduler, SR3DPMSolverScheduler):
        with pytest.raises(ValueError, match="`prediction_type` must be one of"):
            scheduler_class(prediction_type="flow")
    with pytest.raises(ValueError, match="`prediction_type` must be one of"):
        noise_and_original_from_model_output("flow", *tensors(), 0.5)


@pytest.mark.parametrize(
    "scheduler_class, config",
    [
        (SR3Scheduler, {"num_inference_steps": 6}),
        (SR3DPMSolverScheduler, {"num_inference_steps": 6, "algorithm_type": "ddim", "eta": 0.5}),
        (SR3DPMSolverScheduler, {"num_inference_steps": 6}),
    ],
)
def test_a_loop_is_the_same_whichever_type_the_model_predicts(scheduler_class, config):
    """A fixed denoiser expressed as eps, x_0 or v gives the same samples (same generator, float32 rounding) with each
    scheduler."""
    target = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(5)) * 2 - 1

    def denoise(sample, gamma, prediction_type):
        x0 = 0.7 * target + 0.1 * sample  # an imperfect but deterministic model of x_0
        return model_output_from_original(prediction_type, x0, sample, gamma)

    results = {}
    for prediction_type in PREDICTION_TYPES:
        scheduler = scheduler_class(prediction_type=prediction_type, **config)
        scheduler.set_timesteps()
        generator = torch.Generator().manual_seed(0)
        sample = torch.randn(target.shape, generator=generator)
        for timestep in scheduler.timesteps:
            gamma = scheduler.get_noise_level(timestep).double().square().item()
            output = denoise(sample, gamma, prediction_type)
            sample = scheduler.step(output, timestep, sample, generator=generator).prev_sample
        results[prediction_type] = sample
    torch.testing.assert_close(results["sample"], results["epsilon"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(results["v_prediction"], results["epsilon"], atol=1e-4, rtol=1e-4)
