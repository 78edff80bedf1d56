"""Tests for `SR3Scheduler` (SPEC section 2): every number is checked against numpy written here."""

import numpy as np
import pytest
import torch

from sr3_diffusers.schedulers import SR3_SCHEDULER_PRESETS, SR3Scheduler, SR3SchedulerOutput
from sr3_diffusers.schedulers.scheduling_sr3_utils import (
    betas_from_gammas,
    continuous_gamma,
    gammas_from_betas,
    linear_betas,
    respace_gammas,
)


def numpy_gammas(beta_start, beta_end, num_steps):
    """gamma_t = prod_{s<=t} (1 - beta_s) for linear betas, in float64 numpy."""
    return np.cumprod(1.0 - np.linspace(beta_start, beta_end, num_steps))


def ready_scheduler(num_inference_steps=None, **config):
    scheduler = SR3Scheduler(**config)
    scheduler.set_timesteps(num_inference_steps)
    return scheduler


def public_config(scheduler):
    """The config without diffusers' bookkeeping keys (`_use_default_values`, `_class_name`, ...)."""
    return {key: value for key, value in scheduler.config.items() if not key.startswith("_")}


def random_pair(seed=0, shape=(2, 3, 4, 4)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


# Schedules


@pytest.mark.parametrize(
    "num_train_timesteps, smallest_gamma",
    [(2000, 0.0060449826), (1000, 0.0777494081)],  # SPEC says "~0.078" for T = 1000
)
def test_train_schedule_matches_numpy(num_train_timesteps, smallest_gamma):
    scheduler = SR3Scheduler(num_train_timesteps=num_train_timesteps)
    expected = numpy_gammas(1e-4, 0.005, num_train_timesteps)
    np.testing.assert_allclose(scheduler.alphas_cumprod.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(scheduler.alphas_cumprod[-1].item(), smallest_gamma, rtol=1e-8)
    assert scheduler.betas[0].item() == pytest.approx(1e-4) and scheduler.betas[-1].item() == pytest.approx(0.005)


@pytest.mark.parametrize(
    "preset, last_gamma, train_gamma_min",
    [("sr3-64-256", 0.0056187610, 0.0060449826), ("sr3-32-128", 0.0786291357, 0.0777494081)],
)
def test_sampling_schedule_matches_numpy(preset, last_gamma, train_gamma_min):
    scheduler = SR3Scheduler.from_preset(preset)
    scheduler.set_timesteps()
    config = SR3_SCHEDULER_PRESETS[preset]
    expected = numpy_gammas(config["inference_beta_start"], config["inference_beta_end"], 100)
    np.testing.assert_allclose(scheduler.inference_alphas_cumprod.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(scheduler.inference_alphas_cumprod[-1].item(), last_gamma, rtol=1e-8)
    # The reference's own choice: 64 -> 256 starts sampling slightly below the smallest T = 2000 training gamma,
    # 32 -> 128 just above the smallest T = 1000 one.
    assert scheduler.alphas_cumprod[-1].item() == pytest.approx(train_gamma_min, rel=1e-8)


def test_timesteps_and_noise_levels():
    scheduler = ready_scheduler()
    assert scheduler.timesteps.dtype == torch.int64
    assert scheduler.timesteps.tolist() == list(range(99, -1, -1))
    gammas = numpy_gammas(1e-4, 0.1, 100)
    for t in (99, 50, 0):
        noise_level = scheduler.get_noise_level(scheduler.timesteps[99 - t])
        assert noise_level.shape == () and noise_level.dtype == torch.float32
        assert noise_level.item() == pytest.approx(np.sqrt(gammas[t]), rel=1e-6)
    assert scheduler.get_noise_level(99).item() == pytest.approx(0.0749584, rel=1e-5)


def test_diffusers_conventions():
    scheduler = SR3Scheduler()
    sample = torch.randn(1, 3, 4, 4)
    assert scheduler.order == 1 and scheduler.init_noise_sigma == 1.0 and len(scheduler) == 2000
    assert scheduler.scale_model_input(sample, 5) is sample


# Training side (Algorithm 1)


def test_continuous_gamma_lies_in_its_interval():
    scheduler = SR3Scheduler(num_train_timesteps=50)
    gammas_with_one = np.concatenate([[1.0], numpy_gammas(1e-4, 0.005, 50)])
    generator = torch.Generator().manual_seed(0)
    timesteps = torch.randint(1, 51, (500,), generator=generator)
    uniform = torch.rand(500, generator=generator, dtype=torch.float64)
    gamma = continuous_gamma(scheduler.alphas_cumprod, timesteps, uniform).numpy()
    t = timesteps.numpy()
    expected = gammas_with_one[t] + (gammas_with_one[t - 1] - gammas_with_one[t]) * uniform.numpy()
    np.testing.assert_allclose(gamma, expected, rtol=1e-12)
    assert np.all(gamma >= gammas_with_one[t]) and np.all(gamma <= gammas_with_one[t - 1])
    # The interval ends: t = 1 reaches gamma_0 = 1, t = T reaches gamma_T.
    uniform_ends = torch.tensor([1.0, 0.0], dtype=torch.float64)
    ends = continuous_gamma(scheduler.alphas_cumprod, torch.tensor([1, 50]), uniform_ends)
    np.testing.assert_allclose(ends.numpy(), [1.0, gammas_with_one[50]], rtol=1e-12)


def test_sample_gamma_bounds_distribution_and_determinism():
    scheduler = SR3Scheduler()
    gamma = scheduler.sample_gamma(20000, generator=torch.Generator().manual_seed(0))
    assert gamma.shape == (20000,) and gamma.dtype == torch.float32
    assert gamma.min().item() >= scheduler.alphas_cumprod[-1].item() * (1 - 1e-6) and gamma.max().item() <= 1.0
    # t uniform on 1..T and gamma uniform within its interval: the mean is the mean of the interval midpoints.
    gammas_with_one = np.concatenate([[1.0], numpy_gammas(1e-4, 0.005, 2000)])
    expected_mean = np.mean((gammas_with_one[1:] + gammas_with_one[:-1]) / 2)
    assert gamma.double().mean().item() == pytest.approx(expected_mean, abs=0.01)
    again = scheduler.sample_gamma(20000, generator=torch.Generator().manual_seed(0), device="cpu")
    assert torch.equal(gamma, again)
    assert not torch.equal(gamma, scheduler.sample_gamma(20000, generator=torch.Generator().manual_seed(1)))
    # It is `continuous_gamma` on t then u drawn from the generator, in that order.
    generator = torch.Generator().manual_seed(3)
    timesteps = torch.randint(1, 2001, (8,), generator=generator)
    uniform = torch.rand(8, generator=generator)
    expected = continuous_gamma(scheduler.alphas_cumprod, timesteps, uniform.double()).float()
    assert torch.equal(scheduler.sample_gamma(8, generator=torch.Generator().manual_seed(3)), expected)


def test_add_noise_formula():
    scheduler = SR3Scheduler()
    original, noise = random_pair()
    gamma = torch.tensor([0.3, 0.9])
    noisy = scheduler.add_noise(original, noise, gamma)
    g = gamma.numpy().astype(np.float64)[:, None, None, None]
    expected = np.sqrt(g) * original.numpy() + np.sqrt(1 - g) * noise.numpy()
    np.testing.assert_allclose(noisy.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert noisy.dtype == original.dtype
    # A single value, as a Python float or a 0-dim tensor, applies to the whole batch.
    expected = np.sqrt(0.5) * original.numpy() + np.sqrt(0.5) * noise.numpy()
    np.testing.assert_allclose(scheduler.add_noise(original, noise, 0.5).numpy(), expected, rtol=1e-5, atol=1e-6)
    zero_dim = scheduler.add_noise(original, noise, torch.tensor(0.5))
    np.testing.assert_allclose(zero_dim.numpy(), expected, rtol=1e-5, atol=1e-6)


# Inference side (Algorithm 2)


def algorithm_2_step(x_t, eps, z, beta, gamma, gamma_prev, variance_type="beta"):
    """One step of SR3's Algorithm 2 in float64 numpy (gamma_prev is used only for the posterior variance)."""
    alpha = 1.0 - beta
    mean = (x_t - beta / np.sqrt(1.0 - gamma) * eps) / np.sqrt(alpha)
    variance = beta if variance_type == "beta" else beta * (1.0 - gamma_prev) / (1.0 - gamma)
    return mean + np.sqrt(variance) * z


@pytest.mark.parametrize("variance_type", ["beta", "posterior"])
def test_step_matches_algorithm_2(variance_type):
    scheduler = ready_scheduler(variance_type=variance_type)
    sample, model_output = random_pair(seed=1)
    t = 40
    output = scheduler.step(model_output, t, sample, generator=torch.Generator().manual_seed(7))
    assert isinstance(output, SR3SchedulerOutput)

    betas = np.linspace(1e-4, 0.1, 100)
    gammas = np.cumprod(1.0 - betas)
    z = torch.randn(sample.shape, generator=torch.Generator().manual_seed(7)).numpy()
    x_t, eps = sample.numpy().astype(np.float64), model_output.numpy().astype(np.float64)
    expected = algorithm_2_step(x_t, eps, z, betas[t], gammas[t], gammas[t - 1], variance_type)
    np.testing.assert_allclose(output.prev_sample.numpy(), expected, rtol=1e-5, atol=1e-5)
    expected_x0 = (x_t - np.sqrt(1.0 - gammas[t]) * eps) / np.sqrt(gammas[t])
    np.testing.assert_allclose(output.pred_original_sample.numpy(), expected_x0, rtol=1e-5, atol=1e-5)


def test_posterior_variance_is_beta_tilde():
    gammas = numpy_gammas(1e-4, 0.1, 100)
    betas = np.linspace(1e-4, 0.1, 100)
    sample, model_output = random_pair(seed=2)
    deviations = {}
    for variance_type in ("beta", "posterior"):
        scheduler = ready_scheduler(variance_type=variance_type)
        output = scheduler.step(model_output, 10, sample, generator=torch.Generator().manual_seed(0))
        mean = (sample - betas[10] / np.sqrt(1 - gammas[10]) * model_output) / np.sqrt(1 - betas[10])
        deviations[variance_type] = (output.prev_sample - mean).double()
    # Same z, so the noise parts differ by the ratio of standard deviations: sqrt((1 - gamma_{t-1}) / (1 - gamma_t)).
    ratio = deviations["posterior"] / deviations["beta"]
    np.testing.assert_allclose(ratio.numpy(), np.sqrt((1 - gammas[9]) / (1 - gammas[10])), rtol=1e-3)


def test_last_step_adds_no_noise():
    scheduler = ready_scheduler()
    sample, model_output = random_pair(seed=3)
    first = scheduler.step(model_output, 0, sample, generator=torch.Generator().manual_seed(0)).prev_sample
    second = scheduler.step(model_output, 0, sample, generator=torch.Generator().manual_seed(1)).prev_sample
    assert torch.equal(first, second)


def test_clip_sample():
    sample, model_output = random_pair(seed=4)
    t = 30
    # Inside the range nothing is clipped, and the DDPM eq. (7) mean equals Algorithm 2's.
    generator_seed = 5
    plain = ready_scheduler().step(model_output, t, sample, generator=torch.Generator().manual_seed(generator_seed))
    clipped = ready_scheduler(clip_sample=True, clip_sample_range=100.0).step(
        model_output, t, sample, generator=torch.Generator().manual_seed(generator_seed)
    )
    torch.testing.assert_close(clipped.prev_sample, plain.prev_sample, rtol=1e-5, atol=1e-5)

    # Outside the range x_0 is clipped and the mean comes from the clipped x_0.
    scheduler = ready_scheduler(clip_sample=True, clip_sample_range=0.5)
    output = scheduler.step(model_output, t, sample, generator=torch.Generator().manual_seed(generator_seed))
    betas = np.linspace(1e-4, 0.1, 100)
    gammas = np.cumprod(1.0 - betas)
    x_t, eps = sample.numpy().astype(np.float64), model_output.numpy().astype(np.float64)
    x0 = np.clip((x_t - np.sqrt(1 - gammas[t]) * eps) / np.sqrt(gammas[t]), -0.5, 0.5)
    mean = (
        np.sqrt(gammas[t - 1]) * betas[t] / (1 - gammas[t]) * x0
        + np.sqrt(1 - betas[t]) * (1 - gammas[t - 1]) / (1 - gammas[t]) * x_t
    )
    z = torch.randn(sample.shape, generator=torch.Generator().manual_seed(generator_seed)).numpy()
    np.testing.assert_allclose(output.pred_original_sample.numpy(), x0, atol=1e-5)
    assert output.pred_original_sample.abs().max().item() == 0.5
    np.testing.assert_allclose(output.prev_sample.numpy(), mean + np.sqrt(betas[t]) * z, rtol=1e-5, atol=1e-5)


def test_step_is_deterministic_given_a_generator():
    scheduler = ready_scheduler()
    sample, model_output = random_pair(seed=6)
    first = scheduler.step(model_output, 50, sample, generator=torch.Generator().manual_seed(0)).prev_sample
    second = scheduler.step(model_output, 50, sample, generator=torch.Generator().manual_seed(0)).prev_sample
    other = scheduler.step(model_output, 50, sample, generator=torch.Generator().manual_seed(1)).prev_sample
    assert torch.equal(first, second) and not torch.equal(first, other)


def test_return_dict_false_gives_a_tuple():
    scheduler = ready_scheduler()
    sample, model_output = random_pair(seed=7)
    output = scheduler.step(model_output, 20, sample, generator=torch.Generator().manual_seed(0))
    prev_sample, pred_original_sample = scheduler.step(
        model_output, 20, sample, generator=torch.Generator().manual_seed(0), return_dict=False
    )
    assert torch.equal(prev_sample, output.prev_sample)
    assert torch.equal(pred_original_sample, output.pred_original_sample)


def test_add_noise_then_step_recovers_x0_near_gamma_one():
    scheduler = ready_scheduler()
    original, noise = random_pair(seed=8)
    original = original.clamp(-1, 1)
    gamma_0 = scheduler.inference_alphas_cumprod[0]  # 0.9999, the least noisy sampling step
    noisy = scheduler.add_noise(original, noise, gamma_0.float().expand(2))
    output = scheduler.step(noise, 0, noisy)
    torch.testing.assert_close(output.prev_sample, original, rtol=0, atol=1e-5)
    torch.testing.assert_close(output.pred_original_sample, original, rtol=0, atol=1e-5)


def test_sampling_loop_with_the_true_noise_lands_on_x0():
    scheduler = ready_scheduler(num_inference_steps=10)
    target = random_pair(seed=9)[0].clamp(-1, 1).double()
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(target.shape, generator=generator, dtype=torch.float64)
    for t in scheduler.timesteps:
        gamma = scheduler.get_noise_level(t).double() ** 2
        true_noise = (sample - gamma.sqrt() * target) / (1 - gamma).sqrt()
        sample = scheduler.step(true_noise, t, sample, generator=generator).prev_sample
    torch.testing.assert_close(sample, target, rtol=0, atol=1e-4)


# Respacing


def test_respacing_to_the_configured_steps_is_the_linear_schedule():
    scheduler = ready_scheduler(num_inference_steps=100)
    assert torch.equal(scheduler.inference_betas, linear_betas(1e-4, 0.1, 100))
    assert torch.equal(scheduler.inference_alphas_cumprod, gammas_from_betas(linear_betas(1e-4, 0.1, 100)))
    assert torch.equal(respace_gammas(scheduler.inference_alphas_cumprod, 100), scheduler.inference_alphas_cumprod)


def test_respacing_to_fewer_steps_keeps_the_end_points():
    scheduler = ready_scheduler(num_inference_steps=10)
    full = numpy_gammas(1e-4, 0.1, 100)
    kept = [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]  # 99 * k / 9, rounded
    np.testing.assert_allclose(scheduler.inference_alphas_cumprod.numpy(), full[kept], rtol=1e-12)
    assert scheduler.inference_alphas_cumprod[-1].item() == pytest.approx(0.0056187610, rel=1e-8)
    np.testing.assert_allclose(
        scheduler.inference_betas.numpy(), 1 - full[kept] / np.concatenate([[1.0], full[kept][:-1]]), rtol=1e-10
    )
    np.testing.assert_allclose(np.cumprod(1 - scheduler.inference_betas.numpy()), full[kept], rtol=1e-12)
    assert scheduler.timesteps.tolist() == list(range(9, -1, -1))
    # A plain 10-step linear schedule would have ended at another noise level.
    assert numpy_gammas(1e-4, 0.1, 10)[-1] == pytest.approx(0.5951, abs=1e-4)


def test_respacing_helpers():
    gammas = gammas_from_betas(linear_betas(1e-4, 0.1, 100))
    assert torch.equal(respace_gammas(gammas, 1), gammas[-1:])
    assert torch.equal(respace_gammas(gammas, 2), gammas[[0, -1]])
    betas = betas_from_gammas(gammas)
    np.testing.assert_allclose(betas.numpy(), np.linspace(1e-4, 0.1, 100), rtol=1e-9)


# Config, presets, save/load


def test_presets():
    assert public_config(SR3Scheduler()) == public_config(SR3Scheduler.from_preset("sr3-64-256"))
    small = SR3Scheduler.from_preset("sr3-32-128")
    assert small.config.num_train_timesteps == 1000 and len(small) == 1000
    assert (small.config.inference_beta_start, small.config.inference_beta_end) == (1e-6, 0.05)
    overridden = SR3Scheduler.from_preset("sr3-32-128", variance_type="posterior")
    assert overridden.config.variance_type == "posterior" and overridden.config.num_train_timesteps == 1000


def test_config_round_trip(tmp_path):
    scheduler = SR3Scheduler.from_preset(
        "sr3-32-128", variance_type="posterior", clip_sample=True, clip_sample_range=0.8
    )
    scheduler.save_pretrained(tmp_path)
    loaded = SR3Scheduler.from_pretrained(tmp_path)
    assert public_config(loaded) == public_config(scheduler)
    sample, model_output = random_pair(seed=10)
    outputs = []
    for each in (scheduler, loaded):
        each.set_timesteps(25)
        outputs.append(each.step(model_output, 12, sample, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(outputs[0].prev_sample, outputs[1].prev_sample)
    assert torch.equal(outputs[0].pred_original_sample, outputs[1].pred_original_sample)


# Bad input


@pytest.mark.parametrize(
    "config, error, match",
    [
        ({"variance_type": "fixed_small"}, ValueError, r"variance_type.*\['beta', 'posterior'\].*fixed_small"),
        ({"beta_start": 0.0}, ValueError, r"beta_start.*\(0, 1\)"),
        ({"beta_end": 1.0}, ValueError, r"beta_end.*\(0, 1\)"),
        ({"beta_start": 0.01, "beta_end": 0.005}, ValueError, r"beta_start.*must not exceed.*beta_end"),
        ({"inference_beta_start": -1e-4}, ValueError, r"inference_beta_start.*\(0, 1\)"),
        ({"inference_beta_start": 0.2}, ValueError, r"inference_beta_start.*must not exceed.*inference_beta_end"),
        ({"num_train_timesteps": 0}, ValueError, r"num_train_timesteps.*positive.*0"),
        ({"num_train_timesteps": 10.5}, TypeError, r"num_train_timesteps.*positive integer"),
        ({"num_inference_steps": -3}, ValueError, r"num_inference_steps.*positive.*-3"),
        ({"clip_sample_range": 0.0}, ValueError, r"clip_sample_range.*positive"),
    ],
)
def test_bad_config_raises(config, error, match):
    with pytest.raises(error, match=match):
        SR3Scheduler(**config)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"sr3-16-128.*\['sr3-32-128', 'sr3-64-256'\]"):
        SR3Scheduler.from_preset("sr3-16-128")


def test_step_before_set_timesteps_says_to_call_it():
    scheduler = SR3Scheduler()
    sample, model_output = random_pair()
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(model_output, 0, sample)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.get_noise_level(0)


@pytest.mark.parametrize(
    "timestep, error, match",
    [
        (100, ValueError, r"timestep.*100.*0\.\.99"),
        (-1, ValueError, r"timestep.*-1.*0\.\.99"),
        (torch.tensor([1, 2]), ValueError, r"timestep.*single value"),
        (2.5, TypeError, r"timestep.*integer.*2\.5"),
    ],
)
def test_timestep_outside_the_schedule_raises(timestep, error, match):
    scheduler = ready_scheduler()
    sample, model_output = random_pair()
    with pytest.raises(error, match=match):
        scheduler.step(model_output, timestep, sample)
    with pytest.raises(error, match=match):
        scheduler.get_noise_level(timestep)


def test_step_after_respacing_refuses_old_timesteps():
    scheduler = ready_scheduler(num_inference_steps=10)
    sample, model_output = random_pair()
    with pytest.raises(ValueError, match=r"timestep.*50.*0\.\.9"):
        scheduler.step(model_output, 50, sample)


def test_shape_mismatch_raises():
    scheduler = ready_scheduler()
    sample, _ = random_pair()
    with pytest.raises(ValueError, match=r"model_output.*\(2, 3, 4, 4\).*\(2, 6, 4, 4\)"):
        scheduler.step(torch.zeros(2, 6, 4, 4), 5, sample)


@pytest.mark.parametrize(
    "num_inference_steps, error, match",
    [
        (0, ValueError, r"num_inference_steps.*positive.*0"),
        (-5, ValueError, r"num_inference_steps.*positive.*-5"),
        (101, ValueError, r"num_inference_steps.*at most the configured 100.*101.*Raise `num_inference_steps`"),
        (10.0, TypeError, r"num_inference_steps.*integer"),
    ],
)
def test_bad_num_inference_steps_raises(num_inference_steps, error, match):
    with pytest.raises(error, match=match):
        SR3Scheduler().set_timesteps(num_inference_steps)


def test_bad_training_inputs_raise():
    scheduler = SR3Scheduler()
    original, noise = random_pair()
    with pytest.raises(ValueError, match=r"noise.*\(2, 3, 4, 4\).*\(2, 3, 4, 5\)"):
        scheduler.add_noise(original, torch.zeros(2, 3, 4, 5), 0.5)
    with pytest.raises(ValueError, match=r"gamma.*\(2,\).*\(3,\)"):
        scheduler.add_noise(original, noise, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match=r"gamma.*\[0, 1\]"):
        scheduler.add_noise(original, noise, torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"gamma.*\[0, 1\]"):
        scheduler.add_noise(original, noise, -0.1)
    with pytest.raises(ValueError, match=r"batch_size.*positive.*0"):
        scheduler.sample_gamma(0)


def test_config_of_the_few_step_scheduler_loads_back_without_changing_the_sampling_schedule(caplog):
    from sr3_diffusers import SR3DPMSolverScheduler

    fast = SR3DPMSolverScheduler.from_preset("sr3-32-128", num_inference_steps=5)
    with caplog.at_level("WARNING"):
        scheduler = SR3Scheduler.from_config(fast.config)
    preset = SR3Scheduler.from_preset("sr3-32-128")
    assert all(scheduler.config[key] == value for key, value in preset.config.items() if not key.startswith("_"))
    scheduler.set_timesteps()
    preset.set_timesteps()
    assert torch.equal(scheduler.inference_alphas_cumprod, preset.inference_alphas_cumprod)
    assert "ignored" not in caplog.text


def test_a_config_keeps_its_schedules_through_the_other_sr3_scheduler():
    # The few-step scheduler's own steps are its default here, so its config lists `num_inference_steps` among the
    # defaults diffusers drops on loading; the sampling schedule's length (10, given) must survive both translations.
    from sr3_diffusers import SR3DPMSolverScheduler

    scheduler = SR3Scheduler(num_train_timesteps=1000, num_inference_steps=10)
    few_step = SR3DPMSolverScheduler.from_config(scheduler.config)
    assert (few_step.config.reference_steps, few_step.config.num_inference_steps) == (10, 20)
    back = SR3Scheduler.from_config(few_step.config)
    assert {key: back.config[key] for key in scheduler.config} == dict(scheduler.config)
    # and the few-step scheduler's own step count, which SR3Scheduler has no field for, comes back through it
    few_step = SR3DPMSolverScheduler(num_train_timesteps=1000, num_inference_steps=7, reference_steps=50)
    back = SR3DPMSolverScheduler.from_config(SR3Scheduler.from_config(few_step.config).config)
    assert {key: back.config[key] for key in few_step.config} == dict(few_step.config)


def test_trained_betas_replace_the_linear_training_schedule():
    betas = np.linspace(1e-3, 0.02, 50)
    scheduler = SR3Scheduler(trained_betas=betas)
    np.testing.assert_allclose(scheduler.alphas_cumprod.numpy(), np.cumprod(1 - betas))
    assert len(scheduler) == 50 and float(scheduler.sample_gamma(64, torch.Generator().manual_seed(0)).min()) >= float(
        scheduler.alphas_cumprod[-1]
    )
    reloaded = SR3Scheduler.from_config(scheduler.config)
    assert torch.equal(reloaded.betas, scheduler.betas)
    with pytest.raises(ValueError, match="`trained_betas` must be values in \\(0, 1\\)"):
        SR3Scheduler(trained_betas=[0.1, 1.5])
