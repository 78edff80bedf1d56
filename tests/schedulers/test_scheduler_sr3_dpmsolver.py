"""Tests for `SR3DPMSolverScheduler`: noise levels against numpy, single steps against the papers' formulas written out
here, whole loops against k-diffusion's DPM-Solver++(2M) transcribed here, and exactness/convergence on problems whose
answer is known (a perfect denoiser, Gaussian data)."""

import math

import numpy as np
import pytest
import torch
from diffusers import configuration_utils

from sr3_diffusers.schedulers import SR3DPMSolverScheduler, SR3Scheduler, SR3SchedulerOutput
from sr3_diffusers.schedulers.scheduling_sr3_dpmsolver import log_snr, log_snr_spaced_gammas


def ready_scheduler(num_inference_steps=None, **config):
    scheduler = SR3DPMSolverScheduler(**config)
    scheduler.set_timesteps(num_inference_steps)
    return scheduler


def public_config(scheduler):
    """The config without diffusers' bookkeeping keys (`_use_default_values`, `_class_name`, ...)."""
    return {key: value for key, value in scheduler.config.items() if not key.startswith("_")}


def training_gammas(num_train_timesteps, beta_start=1e-4, beta_end=0.005):
    return np.cumprod(1.0 - np.linspace(beta_start, beta_end, num_train_timesteps))


def fake_noise_model(sample, gamma):
    """A deterministic, nonlinear stand-in for eps_theta(x_t, sqrt(gamma))."""
    return torch.tanh(sample * (1.0 + gamma)) + 0.1 * gamma


def run_loop(scheduler, sample, noise_model=fake_noise_model, generator=None):
    """The pipeline's loop with a fake model; returns the final sample and every intermediate one."""
    samples = [sample]
    for t in scheduler.timesteps:
        gamma = scheduler.get_noise_level(t).double().item() ** 2
        model_output = noise_model(sample, scheduler.inference_alphas_cumprod[t].item())
        sample = scheduler.step(model_output, t, sample, generator=generator).prev_sample
        samples.append(sample)
        assert gamma == pytest.approx(scheduler.inference_alphas_cumprod[t].item(), rel=1e-6)
    return sample, samples


def random_tensors(count, shape=(2, 3, 4, 4), seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=dtype) for _ in range(count)]


DETERMINISTIC = [
    dict(algorithm_type="ddim"),
    dict(algorithm_type="dpmsolver++", solver_order=1),
    dict(algorithm_type="dpmsolver++", solver_order=2),
]
STOCHASTIC = [
    dict(algorithm_type="ddim", eta=1.0),
    dict(algorithm_type="ddim", eta=0.5),
    dict(algorithm_type="dpmsolver++", solver_order=2, eta=1.0),
    dict(algorithm_type="dpmsolver++", solver_order=1, eta=0.3),
]


# ---------------------------------------------------------------------------------------------------------------------
# Noise levels


def test_defaults_and_diffusers_conventions():
    scheduler = SR3DPMSolverScheduler()
    config = public_config(scheduler)
    assert config["num_inference_steps"] == 20
    assert config["algorithm_type"] == "dpmsolver++" and config["solver_order"] == 2 and config["eta"] == 0.0
    assert config["noise_level_spacing"] == "log_snr" and config["reference_steps"] == 100
    assert scheduler.init_noise_sigma == 1.0 and scheduler.order == 1 and len(scheduler) == 2000
    sample = torch.randn(1, 3, 4, 4)
    assert scheduler.scale_model_input(sample, 0) is sample
    assert SR3Scheduler in scheduler.compatibles


@pytest.mark.parametrize("num_train_timesteps", [2000, 1000])
@pytest.mark.parametrize("num_inference_steps", [1, 2, 10, 20, 137])
def test_log_snr_levels_are_evenly_spaced_within_the_training_range(num_train_timesteps, num_inference_steps):
    scheduler = ready_scheduler(num_inference_steps, num_train_timesteps=num_train_timesteps)
    gammas = scheduler.inference_alphas_cumprod.numpy()
    train = training_gammas(num_train_timesteps)
    logit = lambda g: np.log(g / (1 - g))  # noqa: E731
    expected_log_snr = np.linspace(logit(train[-1]), logit(train[0]), num_inference_steps)[::-1]
    np.testing.assert_allclose(logit(gammas), expected_log_snr, rtol=1e-10, atol=1e-10)
    # The noisiest level is the smallest training gamma; with more than one step the least noisy is gamma_1 = 0.9999.
    np.testing.assert_allclose(scheduler.alphas_cumprod.numpy(), train, rtol=1e-12)
    gamma_min, gamma_max = scheduler.alphas_cumprod[-1].item(), scheduler.alphas_cumprod[0].item()
    assert gammas[-1] == gamma_min
    if num_inference_steps > 1:
        assert gammas[0] == gamma_max == pytest.approx(0.9999)
        np.testing.assert_allclose(np.diff(logit(gammas)), np.diff(expected_log_snr), rtol=1e-8)
    assert ((gammas >= gamma_min) & (gammas <= gamma_max)).all()
    assert scheduler.timesteps.tolist() == list(range(num_inference_steps - 1, -1, -1))
    assert scheduler.timesteps.dtype == torch.int64


def test_noisiest_level_numbers():
    # SPEC section 2: gamma_T ~ 0.00604 for T = 2000, ~ 0.0777 for T = 1000.
    assert ready_scheduler(num_train_timesteps=2000).get_noise_level(19).item() ** 2 == pytest.approx(0.0060449826)
    assert ready_scheduler(num_train_timesteps=1000).get_noise_level(19).item() ** 2 == pytest.approx(0.0777494081)


def test_get_noise_level_is_sqrt_gamma():
    scheduler = ready_scheduler(10)
    for t in scheduler.timesteps:
        noise_level = scheduler.get_noise_level(t)
        assert noise_level.shape == () and noise_level.dtype == torch.float32
        assert noise_level.item() == pytest.approx(math.sqrt(scheduler.inference_alphas_cumprod[t].item()), rel=1e-6)


def test_log_snr_helpers():
    gammas = torch.tensor([0.5, 0.9999, 0.0060449826], dtype=torch.float64)
    np.testing.assert_allclose(log_snr(gammas).numpy(), np.log(gammas.numpy() / (1 - gammas.numpy())), rtol=1e-12)
    assert log_snr_spaced_gammas(0.1, 0.9, 1).tolist() == [0.1]
    assert log_snr_spaced_gammas(0.1, 0.9, 3).tolist() == pytest.approx([0.9, 0.5, 0.1])


@pytest.mark.parametrize("num_inference_steps", [100, 20, 7, 1])
@pytest.mark.parametrize("preset", ["sr3-64-256", "sr3-32-128"])
def test_reference_levels_are_sr3s_sampling_schedule_respaced(preset, num_inference_steps):
    scheduler = SR3DPMSolverScheduler.from_preset(preset, noise_level_spacing="reference")
    scheduler.set_timesteps(num_inference_steps)
    sr3 = SR3Scheduler.from_preset(preset)
    sr3.set_timesteps(num_inference_steps)
    assert torch.equal(scheduler.inference_alphas_cumprod, sr3.inference_alphas_cumprod)
    if num_inference_steps == 100:
        config = sr3.config
        betas = np.linspace(config.inference_beta_start, config.inference_beta_end, 100)
        np.testing.assert_allclose(scheduler.inference_alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# Single steps against the formulas


@pytest.mark.parametrize("eta", [0.0, 1.0, 0.4])
def test_ddim_step_matches_formulas_12_and_16(eta):
    scheduler = ready_scheduler(10, algorithm_type="ddim", eta=eta)
    sample, model_output = random_tensors(2)
    t = 6
    output = scheduler.step(model_output, t, sample, generator=torch.Generator().manual_seed(7))

    gammas = scheduler.inference_alphas_cumprod.numpy()
    a_t, a_prev = gammas[t], gammas[t - 1]
    x0 = (sample.numpy() - np.sqrt(1 - a_t) * model_output.numpy()) / np.sqrt(a_t)
    sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t)) * np.sqrt(1 - a_t / a_prev)  # formula (16)
    z = torch.randn(sample.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).numpy()
    expected = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev - sigma**2) * model_output.numpy()  # formula (12)
    if eta > 0:
        expected = expected + sigma * z
    np.testing.assert_allclose(output.pred_original_sample.numpy(), x0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(output.prev_sample.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_ddim_eta_one_variance_is_ddpm_posterior_variance():
    scheduler = ready_scheduler(10, algorithm_type="ddim", eta=1.0)
    sample, model_output = random_tensors(2, shape=(200_000,))
    t = 4
    noisy = [
        scheduler.step(model_output, t, sample, generator=torch.Generator().manual_seed(seed)).prev_sample
        for seed in (1, 2)
    ]
    a_t, a_prev = scheduler.inference_alphas_cumprod[t].item(), scheduler.inference_alphas_cumprod[t - 1].item()
    beta_tilde = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)  # DDPM eq. (7), respaced beta_t = 1 - a_t / a_prev
    # The difference of two draws has variance 2 sigma^2.
    assert (noisy[0] - noisy[1]).var().item() / 2 == pytest.approx(beta_tilde, rel=0.02)


def test_dpm_solver_first_order_step_matches_dpm_solver_pp_1():
    scheduler = ready_scheduler(10, solver_order=2)
    sample, model_output = random_tensors(2)
    t = 9  # the first step is first order whatever the solver order
    output = scheduler.step(model_output, t, sample)

    gammas = scheduler.inference_alphas_cumprod.numpy()
    alpha_s, sigma_s = np.sqrt(gammas[t]), np.sqrt(1 - gammas[t])
    alpha_t, sigma_t = np.sqrt(gammas[t - 1]), np.sqrt(1 - gammas[t - 1])
    h = np.log(alpha_t / sigma_t) - np.log(alpha_s / sigma_s)
    x0 = (sample.numpy() - sigma_s * model_output.numpy()) / alpha_s
    expected = sigma_t / sigma_s * sample.numpy() - alpha_t * (np.exp(-h) - 1) * x0  # DPM-Solver++1
    np.testing.assert_allclose(output.prev_sample.numpy(), expected, rtol=1e-11, atol=1e-12)


def test_dpm_solver_second_order_step_matches_algorithm_2():
    scheduler = ready_scheduler(10, solver_order=2)
    sample, first_output, second_output = random_tensors(3)
    first = scheduler.step(first_output, 9, sample)
    second = scheduler.step(second_output, 8, first.prev_sample)

    lam = lambda g: 0.5 * np.log(g / (1 - g))  # noqa: E731
    gammas = scheduler.inference_alphas_cumprod.numpy()
    x_s = first.prev_sample.numpy()
    alpha_s, sigma_s = np.sqrt(gammas[8]), np.sqrt(1 - gammas[8])
    alpha_t, sigma_t = np.sqrt(gammas[7]), np.sqrt(1 - gammas[7])
    h, h_last = lam(gammas[7]) - lam(gammas[8]), lam(gammas[8]) - lam(gammas[9])
    r = h_last / h
    x0_last = first.pred_original_sample.numpy()
    x0 = (x_s - sigma_s * second_output.numpy()) / alpha_s
    D = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_last
    expected = sigma_t / sigma_s * x_s - alpha_t * (np.exp(-h) - 1) * D
    np.testing.assert_allclose(second.prev_sample.numpy(), expected, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("solver_order", [1, 2])
def test_sde_dpm_solver_steps_match_diffusers_sde_dpmsolver_pp(solver_order):
    """eta = 1 is diffusers' `"sde-dpmsolver++"` (midpoint), written out here in SR3's parametrisation."""
    scheduler = ready_scheduler(10, solver_order=solver_order, eta=1.0)
    sample, first_output, second_output = random_tensors(3)
    first = scheduler.step(first_output, 9, sample, generator=torch.Generator().manual_seed(3))
    second = scheduler.step(second_output, 8, first.prev_sample, generator=torch.Generator().manual_seed(4))

    lam = lambda g: 0.5 * np.log(g / (1 - g))  # noqa: E731
    gammas = scheduler.inference_alphas_cumprod.numpy()
    alpha_s, sigma_s = np.sqrt(gammas[9]), np.sqrt(1 - gammas[9])
    alpha_t, sigma_t = np.sqrt(gammas[8]), np.sqrt(1 - gammas[8])
    h = lam(gammas[8]) - lam(gammas[9])
    z = torch.randn(sample.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    x0 = (sample.numpy() - sigma_s * first_output.numpy()) / alpha_s
    expected = sigma_t / sigma_s * np.exp(-h) * sample.numpy() + alpha_t * (1 - np.exp(-2 * h)) * x0
    expected = expected + sigma_t * np.sqrt(1 - np.exp(-2 * h)) * z
    np.testing.assert_allclose(first.prev_sample.numpy(), expected, rtol=1e-11, atol=1e-12)

    x_s = first.prev_sample.numpy()
    alpha_s, sigma_s = alpha_t, sigma_t
    alpha_t, sigma_t = np.sqrt(gammas[7]), np.sqrt(1 - gammas[7])
    h, h_last = lam(gammas[7]) - lam(gammas[8]), h
    z = torch.randn(sample.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64).numpy()
    m0, m1 = (x_s - sigma_s * second_output.numpy()) / alpha_s, x0
    D0, D1 = m0, (m0 - m1) / (h_last / h)
    expected = sigma_t / sigma_s * np.exp(-h) * x_s + alpha_t * (1 - np.exp(-2 * h)) * D0
    if solver_order == 2:
        expected = expected + 0.5 * alpha_t * (1 - np.exp(-2 * h)) * D1
    expected = expected + sigma_t * np.sqrt(1 - np.exp(-2 * h)) * z
    np.testing.assert_allclose(second.prev_sample.numpy(), expected, rtol=1e-11, atol=1e-12)


def k_diffusion_sample_dpmpp_2m(model, x, sigmas):
    """k-diffusion's `sample_dpmpp_2m` (crowsonkb/k-diffusion, k_diffusion/sampling.py), transcribed: the VE form,
    x = x_0 + sigma eps, sigmas ending with 0."""
    sigma_fn = lambda t: t.neg().exp()  # noqa: E731
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@pytest.mark.parametrize("noise_level_spacing", ["log_snr", "reference"])
@pytest.mark.parametrize("num_inference_steps", [1, 2, 10])
def test_dpm_solver_2m_loop_matches_k_diffusion(noise_level_spacing, num_inference_steps):
    scheduler = ready_scheduler(num_inference_steps, noise_level_spacing=noise_level_spacing)
    (x_T,) = random_tensors(1)
    ours, _ = run_loop(scheduler, x_T)

    # The same model in k-diffusion's VE coordinates: x_ve = x / sqrt(gamma), sigma_ve = sqrt((1 - gamma) / gamma).
    gammas = scheduler.inference_alphas_cumprod.flip(0)
    sigmas = torch.cat([((1 - gammas) / gammas).sqrt(), gammas.new_zeros(1)])

    def denoiser(x_ve, sigma):
        gamma = (1 / (1 + sigma**2)).item()
        x = x_ve * gamma**0.5
        return (x - (1 - gamma) ** 0.5 * fake_noise_model(x, gamma)) / gamma**0.5

    theirs = k_diffusion_sample_dpmpp_2m(denoiser, x_T / gammas[0].sqrt(), sigmas)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_ddim_with_eta_zero_equals_first_order_dpm_solver():
    (x_T,) = random_tensors(1)
    ddim, _ = run_loop(ready_scheduler(10, algorithm_type="ddim"), x_T)
    dpm_1, _ = run_loop(ready_scheduler(10, solver_order=1), x_T)
    torch.testing.assert_close(ddim, dpm_1, rtol=1e-10, atol=1e-10)


def test_eta_one_first_order_samplers_are_ddpm_with_posterior_variance():
    """DDIM with eta = 1, first-order SDE-DPM-Solver++ and SR3Scheduler's `variance_type="posterior"` on the same
    levels take the same steps and draw the same noise."""
    (x_T,) = random_tensors(1)
    sr3 = SR3Scheduler(variance_type="posterior")
    sr3.set_timesteps(100)
    ddim = ready_scheduler(100, algorithm_type="ddim", eta=1.0, noise_level_spacing="reference")
    sde = ready_scheduler(100, solver_order=1, eta=1.0, noise_level_spacing="reference")
    expected, _ = run_loop(sr3, x_T, generator=torch.Generator().manual_seed(0))
    for scheduler in (ddim, sde):
        result, _ = run_loop(scheduler, x_T, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(result, expected, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------------------------------------------------------
# Exactness and convergence


@pytest.mark.parametrize("config", DETERMINISTIC)
@pytest.mark.parametrize("noise_level_spacing", ["log_snr", "reference"])
@pytest.mark.parametrize("num_inference_steps", [1, 2, 5, 20])
def test_perfect_denoiser_stays_on_the_noising_path_and_returns_x0(config, noise_level_spacing, num_inference_steps):
    """With the true noise of a known x_0 as the model output, every deterministic step lands exactly on
    x_t = sqrt(gamma_t) x_0 + sqrt(1 - gamma_t) eps, and the last on x_0."""
    scheduler = ready_scheduler(num_inference_steps, noise_level_spacing=noise_level_spacing, **config)
    x0, eps = random_tensors(2, dtype=torch.float32)
    gammas = scheduler.inference_alphas_cumprod.tolist() + [1.0]  # index -1 (after the last step) is gamma = 1
    on_path = lambda t: gammas[t] ** 0.5 * x0 + (1 - gammas[t]) ** 0.5 * eps  # noqa: E731
    true_noise = lambda x, gamma: (x - gamma**0.5 * x0) / (1 - gamma) ** 0.5  # noqa: E731

    final, samples = run_loop(scheduler, on_path(num_inference_steps - 1), noise_model=true_noise)
    for sample, t in zip(samples[1:], range(num_inference_steps - 2, -2, -1)):
        torch.testing.assert_close(sample, on_path(t), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(final, x0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", STOCHASTIC)
def test_perfect_denoiser_returns_x0_with_noise_too(config):
    scheduler = ready_scheduler(10, **config)
    x0, x_T = random_tensors(2, dtype=torch.float32)
    true_noise = lambda x, gamma: (x - gamma**0.5 * x0) / (1 - gamma) ** 0.5  # noqa: E731
    final, _ = run_loop(scheduler, x_T, noise_model=true_noise, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(final, x0, rtol=1e-5, atol=1e-5)


GAUSSIAN_MEAN, GAUSSIAN_STD = 0.3, 0.5


def gaussian_data_noise(sample, gamma):
    """The exact eps-prediction for data x_0 ~ N(GAUSSIAN_MEAN, GAUSSIAN_STD^2): eps from E[x_0 | x_t]."""
    mean, variance = GAUSSIAN_MEAN, GAUSSIAN_STD**2
    x0 = mean + gamma**0.5 * variance / (gamma * variance + 1 - gamma) * (sample - gamma**0.5 * mean)
    return (sample - gamma**0.5 * x0) / (1 - gamma) ** 0.5


def gaussian_ode_error(num_inference_steps, **config):
    """Max error of the sampler against the exact probability-flow ODE map for Gaussian data, which keeps the
    standardised value (x_t - sqrt(gamma) mean) / std_t: x_0 = mean + std z for x_T = sqrt(gamma_T) mean + std_T z."""
    scheduler = ready_scheduler(num_inference_steps, **config)
    gamma_T = scheduler.inference_alphas_cumprod[-1].item()
    z = torch.linspace(-3, 3, 61, dtype=torch.float64)
    x_T = gamma_T**0.5 * GAUSSIAN_MEAN + (gamma_T * GAUSSIAN_STD**2 + 1 - gamma_T) ** 0.5 * z
    final, _ = run_loop(scheduler, x_T, noise_model=gaussian_data_noise)
    return (final - (GAUSSIAN_MEAN + GAUSSIAN_STD * z)).abs().max().item()


def test_convergence_orders_on_gaussian_data():
    ddim = [gaussian_ode_error(n, algorithm_type="ddim") for n in (20, 40, 80)]
    dpm_2m = [gaussian_ode_error(n) for n in (20, 40, 80)]
    # First order: the error halves when the steps double; DPM-Solver++(2M): at least four times smaller.
    assert 1.8 < ddim[0] / ddim[1] < 2.2 and 1.8 < ddim[1] / ddim[2] < 2.2
    assert dpm_2m[0] / dpm_2m[1] > 3.5 and dpm_2m[1] / dpm_2m[2] > 3.5
    # And second order is the better few-step sampler: 10 steps of 2M beat 20 of DDIM.
    assert gaussian_ode_error(10) < 0.5 * ddim[0]


def test_sde_dpm_solver_samples_gaussian_data_with_the_right_moments():
    scheduler = ready_scheduler(50, eta=1.0)
    generator = torch.Generator().manual_seed(0)
    gamma_T = scheduler.inference_alphas_cumprod[-1].item()
    noise = torch.randn(100_000, generator=generator, dtype=torch.float64)
    x_T = gamma_T**0.5 * GAUSSIAN_MEAN + (gamma_T * GAUSSIAN_STD**2 + 1 - gamma_T) ** 0.5 * noise
    final, _ = run_loop(scheduler, x_T, noise_model=gaussian_data_noise, generator=generator)
    assert final.mean().item() == pytest.approx(GAUSSIAN_MEAN, abs=0.01)
    assert final.std().item() == pytest.approx(GAUSSIAN_STD, abs=0.01)
    # It is stochastic: the output is not the ODE's deterministic map of x_T.
    assert not torch.allclose(final, GAUSSIAN_MEAN + GAUSSIAN_STD * noise, atol=1e-2)


# ---------------------------------------------------------------------------------------------------------------------
# Determinism, multistep state, outputs


@pytest.mark.parametrize("config", STOCHASTIC)
def test_stochastic_samplers_are_deterministic_given_a_generator(config):
    (x_T,) = random_tensors(1, dtype=torch.float32)
    runs = [
        run_loop(ready_scheduler(5, **config), x_T, generator=torch.Generator().manual_seed(seed))[0]
        for seed in (0, 0, 1)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_eta_zero_draws_no_noise():
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    run_loop(ready_scheduler(5), random_tensors(1)[0], generator=generator)
    assert torch.equal(generator.get_state(), state)


def test_last_step_returns_the_predicted_x0():
    for config in DETERMINISTIC + STOCHASTIC:
        scheduler = ready_scheduler(3, **config)
        sample, model_output = random_tensors(2)
        output = scheduler.step(model_output, 0, sample, generator=torch.Generator().manual_seed(0))
        assert torch.equal(output.prev_sample, output.pred_original_sample)


def test_set_timesteps_resets_the_multistep_history():
    (x_T,) = random_tensors(1)
    scheduler = ready_scheduler(6)
    first, _ = run_loop(scheduler, x_T)
    scheduler.set_timesteps(6)
    second, _ = run_loop(scheduler, x_T)
    fresh, _ = run_loop(ready_scheduler(6), x_T)
    assert torch.equal(first, fresh) and torch.equal(second, fresh)


def test_out_of_order_step_falls_back_to_first_order():
    scheduler = ready_scheduler(10)
    sample, first_output, second_output = random_tensors(3)
    scheduler.step(first_output, 9, sample)
    skipped = scheduler.step(second_output, 7, sample).prev_sample  # the step after 9 is 8, not 7
    first_order = ready_scheduler(10, solver_order=1)
    torch.testing.assert_close(skipped, first_order.step(second_output, 7, sample).prev_sample, rtol=0, atol=0)


def test_clip_sample_clips_x0_and_ddim_uses_the_clipped_noise():
    scheduler = ready_scheduler(10, algorithm_type="ddim", clip_sample=True, clip_sample_range=0.5)
    sample, model_output = random_tensors(2)
    output = scheduler.step(model_output * 5, 5, sample)
    assert output.pred_original_sample.abs().max().item() <= 0.5
    gammas = scheduler.inference_alphas_cumprod
    a_t, a_prev = gammas[5].item(), gammas[4].item()
    eps = (sample - a_t**0.5 * output.pred_original_sample) / (1 - a_t) ** 0.5
    expected = a_prev**0.5 * output.pred_original_sample + (1 - a_prev) ** 0.5 * eps
    torch.testing.assert_close(output.prev_sample, expected, rtol=1e-12, atol=1e-12)


def test_output_types_and_tensor_timesteps():
    scheduler = ready_scheduler(4)
    sample, model_output = random_tensors(2, dtype=torch.float32)
    output = scheduler.step(model_output, scheduler.timesteps[0], sample)
    assert isinstance(output, SR3SchedulerOutput) and output.prev_sample.dtype == torch.float32
    scheduler.set_timesteps(4)
    as_tuple = scheduler.step(model_output, 3, sample, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], output.prev_sample)


# ---------------------------------------------------------------------------------------------------------------------
# Configs


def test_config_round_trip(tmp_path):
    scheduler = SR3DPMSolverScheduler(
        num_train_timesteps=1000,
        num_inference_steps=7,
        algorithm_type="ddim",
        eta=0.5,
        noise_level_spacing="reference",
        reference_steps=50,
        inference_beta_start=1e-6,
        inference_beta_end=0.05,
        clip_sample=True,
        clip_sample_range=0.9,
    )
    scheduler.save_pretrained(tmp_path)
    loaded = SR3DPMSolverScheduler.from_pretrained(tmp_path)
    assert public_config(loaded) == public_config(scheduler)
    (x_T,) = random_tensors(1)
    results = []
    for s in (scheduler, loaded):
        s.set_timesteps()
        results.append(run_loop(s, x_T, generator=torch.Generator().manual_seed(0))[0])
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("preset", ["sr3-64-256", "sr3-32-128"])
def test_from_an_sr3_scheduler_config(preset, tmp_path):
    sr3 = SR3Scheduler.from_preset(preset)
    scheduler = SR3DPMSolverScheduler.from_config(sr3.config)
    config = public_config(scheduler)
    for key in ("num_train_timesteps", "beta_start", "beta_end", "inference_beta_start", "inference_beta_end",
                "clip_sample", "clip_sample_range"):
        assert config[key] == sr3.config[key]
    # SR3's `num_inference_steps` is the length of its sampling schedule: it becomes `reference_steps`.
    assert config["reference_steps"] == 100 and config["num_inference_steps"] == 20
    assert config["algorithm_type"] == "dpmsolver++" and config["noise_level_spacing"] == "log_snr"
    assert torch.equal(scheduler.alphas_cumprod, sr3.alphas_cumprod)
    scheduler.set_timesteps()
    assert scheduler.inference_alphas_cumprod[-1].item() == sr3.alphas_cumprod[-1].item()

    # Overrides, the "reference" levels, and a saved SR3Scheduler folder work the same way.
    sr3.save_pretrained(tmp_path)
    reference = SR3DPMSolverScheduler.from_pretrained(
        tmp_path, noise_level_spacing="reference", num_inference_steps=10
    )
    reference.set_timesteps()
    sr3.set_timesteps(10)
    assert torch.equal(reference.inference_alphas_cumprod, sr3.inference_alphas_cumprod)
    assert public_config(SR3DPMSolverScheduler.from_preset(preset)) == config


def test_sr3_only_keys_are_kept_aside_silently_and_survive_the_way_back(monkeypatch):
    warnings = []
    monkeypatch.setattr(configuration_utils.logger, "warning", lambda message, *args, **kw: warnings.append(message))
    sr3 = SR3Scheduler(num_train_timesteps=1000, variance_type="posterior")
    scheduler = SR3DPMSolverScheduler.from_config(sr3.config)
    assert warnings == []
    assert scheduler.config.variance_type == "posterior"  # kept in the config (and saved), unused here
    # The way back: with the default step count, SR3Scheduler gets its own config back (`reference_steps` is unknown
    # to it and ignored with a warning).
    back = SR3Scheduler.from_config(scheduler.config)
    assert {key: back.config[key] for key in public_config(sr3)} == public_config(sr3)


def test_from_the_tiny_pipeline_config_keeps_its_short_reference_schedule():
    scheduler = SR3DPMSolverScheduler.from_config(SR3Scheduler(num_inference_steps=4).config)
    assert scheduler.config.reference_steps == 4 and scheduler.config.num_inference_steps == 20
    with pytest.raises(ValueError, match="at most `reference_steps` \\(4\\)"):
        SR3DPMSolverScheduler.from_config(SR3Scheduler(num_inference_steps=4).config, noise_level_spacing="reference")


@pytest.mark.parametrize(
    "config, error, match",
    [
        (
            {"algorithm_type": "dpmsolver"},
            ValueError,
            r"`algorithm_type` must be one of \['dpmsolver\+\+', 'ddim'\], got 'dpmsolver'",
        ),
        ({"solver_order": 3}, ValueError, r"`solver_order` must be one of \[1, 2\], got 3"),
        ({"solver_order": True}, ValueError, "`solver_order` must be one of"),
        ({"eta": 1.5}, ValueError, r"`eta` must be a number in \[0, 1\], got 1.5"),
        ({"eta": -0.1}, ValueError, "`eta` must be a number in"),
        ({"eta": float("nan")}, ValueError, "`eta` must be a number in"),
        ({"eta": "0.5"}, ValueError, "`eta` must be a number in"),
        ({"noise_level_spacing": "karras"}, ValueError, r"`noise_level_spacing` must be one of \['log_snr', 'refer"),
        ({"num_inference_steps": 0}, ValueError, "`num_inference_steps` must be a positive integer, got 0"),
        ({"num_inference_steps": 2.5}, TypeError, "`num_inference_steps` must be a positive integer"),
        ({"reference_steps": 0}, ValueError, "`reference_steps` must be a positive integer"),
        ({"num_train_timesteps": -1}, ValueError, "`num_train_timesteps` must be a positive integer"),
        ({"beta_start": 0.0}, ValueError, r"`beta_start` must lie in the open interval \(0, 1\)"),
        ({"beta_start": 0.01, "beta_end": 0.001}, ValueError, "`beta_start` .* must not exceed `beta_end`"),
        ({"inference_beta_end": 1.0}, ValueError, "`inference_beta_end` must lie in the open interval"),
        ({"clip_sample_range": 0.0}, ValueError, "`clip_sample_range` must be positive"),
        ({"noise_level_spacing": "reference", "num_inference_steps": 101}, ValueError, r"at most `reference_steps`"),
    ],
)
def test_bad_config_raises(config, error, match):
    with pytest.raises(error, match=match):
        SR3DPMSolverScheduler(**config)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"choose one of \['sr3-32-128', 'sr3-64-256'\]"):
        SR3DPMSolverScheduler.from_preset("sr3-16-128")


# ---------------------------------------------------------------------------------------------------------------------
# Bad calls


def test_step_before_set_timesteps_says_to_call_it():
    scheduler = SR3DPMSolverScheduler()
    sample, model_output = random_tensors(2)
    with pytest.raises(ValueError, match="call `scheduler.set_timesteps"):
        scheduler.step(model_output, 0, sample)
    with pytest.raises(ValueError, match="call `scheduler.set_timesteps"):
        scheduler.get_noise_level(0)


@pytest.mark.parametrize(
    "timestep, error, match",
    [
        (5, ValueError, r"`timestep` 5 is not in the sampling schedule: it must be one of 0..4"),
        (-1, ValueError, "not in the sampling schedule"),
        (torch.tensor([1, 2]), ValueError, "single value"),
        (2.0, TypeError, "integer step"),
        (True, TypeError, "integer step"),
    ],
)
def test_timestep_outside_the_schedule_raises(timestep, error, match):
    scheduler = ready_scheduler(5)
    sample, model_output = random_tensors(2)
    with pytest.raises(error, match=match):
        scheduler.step(model_output, timestep, sample)


def test_bad_set_timesteps_and_shapes_raise():
    scheduler = SR3DPMSolverScheduler(noise_level_spacing="reference")
    with pytest.raises(ValueError, match=r"at most `reference_steps` \(100\) with `noise_level_spacing='reference'`"):
        scheduler.set_timesteps(101)
    with pytest.raises(ValueError, match="positive integer, got 0"):
        scheduler.set_timesteps(0)
    with pytest.raises(ValueError, match="not distinct"):
        SR3DPMSolverScheduler(num_train_timesteps=1).set_timesteps(2)
    scheduler.set_timesteps(5)
    sample, model_output = random_tensors(2)
    with pytest.raises(ValueError, match="`model_output` must have the shape of `sample`"):
        scheduler.step(model_output[:1], 4, sample)


# ---------------------------------------------------------------------------------------------------------------------
# In the pipeline


def test_drop_in_for_the_pipeline(tiny_pipeline):
    low_res = torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(0))
    tiny_pipeline.scheduler = SR3DPMSolverScheduler.from_config(tiny_pipeline.scheduler.config)
    steps = []
    callback = lambda pipe, i, t, kwargs: steps.append(int(t)) or {}  # noqa: E731
    outputs = [
        tiny_pipeline(low_res, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt",
                      callback_on_step_end=callback).images
        for _ in range(2)
    ]
    assert steps == [2, 1, 0, 2, 1, 0]
    assert outputs[0].shape == (1, 3, 16, 24) and torch.isfinite(outputs[0]).all()
    assert torch.equal(outputs[0], outputs[1])
    # The default step count is the scheduler's (20).
    steps.clear()
    tiny_pipeline(low_res, callback_on_step_end=callback)
    assert steps == list(range(19, -1, -1))


def test_pipeline_with_ddim_eta_one_on_the_reference_levels_equals_sr3_posterior_sampling(tiny_pipeline):
    low_res = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(0))

    def upscale(scheduler):
        tiny_pipeline.scheduler = scheduler
        return tiny_pipeline(low_res, generator=torch.Generator().manual_seed(0), output_type="pt").images

    expected = upscale(SR3Scheduler(num_inference_steps=4, variance_type="posterior"))
    fast = SR3DPMSolverScheduler.from_config(
        tiny_pipeline.scheduler.config, algorithm_type="ddim", eta=1.0, noise_level_spacing="reference",
        num_inference_steps=4,
    )
    torch.testing.assert_close(upscale(fast), expected, rtol=1e-5, atol=1e-5)


def test_the_scheduler_modules_import_the_shared_module_and_not_each_other_in_a_circle():
    import ast
    import inspect

    from sr3_diffusers.schedulers import scheduling_sr3, scheduling_sr3_dpmsolver

    def imported(module):
        return {node.module for node in ast.walk(ast.parse(inspect.getsource(module))) if isinstance(node, ast.ImportFrom)}

    assert "scheduling_sr3_dpmsolver" not in imported(scheduling_sr3)
    assert {"scheduling_sr3_utils"} <= imported(scheduling_sr3) & imported(scheduling_sr3_dpmsolver)
    assert set(SR3DPMSolverScheduler().compatibles) == {SR3Scheduler, SR3DPMSolverScheduler}
