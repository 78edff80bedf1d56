"""Few-step samplers for SR3 (Saharia et al., 2021, https://huggingface.co/papers/2104.07636): DDIM and DPM-Solver++.

SR3's UNet is conditioned on the continuous noise level sqrt(gamma), not on an integer step, so it can be sampled at
any noise levels inside the range it was trained on. `SR3DPMSolverScheduler` walks N such levels with one of two
solvers of the probability-flow ODE (or, with `eta > 0`, of the reverse SDE) written in SR3's parametrisation

    x_t = sqrt(gamma_t) x_0 + sqrt(1 - gamma_t) eps,    eps_theta(x_t, sqrt(gamma_t)) ~ eps,

that is alpha_t = sqrt(gamma_t), sigma_t = sqrt(1 - gamma_t) and lambda_t = log(alpha_t / sigma_t) in the notation of
Lu et al. (half the log-SNR log(gamma_t / (1 - gamma_t))):

- `"ddim"`: DDIM (Song et al., 2021, https://huggingface.co/papers/2010.02502, eqs. (12) and (16)), first order;
- `"dpmsolver++"`: multistep DPM-Solver++(2M) with data prediction (Lu et al., 2022,
  https://huggingface.co/papers/2211.01095, Algorithm 2), and its stochastic variant SDE-DPM-Solver++(2M).

DDIM with eta = 0 and first-order DPM-Solver++ are the same update; with eta = 1 both take the first-order step of
DDPM's posterior (Ho et al., 2020, eq. (7)). In between, eta means different things (see the class docstring).

Like `SR3Scheduler`, the sampling schedule is indexed by steps t = N-1 (noisiest) .. 0, `get_noise_level(t)` is the
model input sqrt(gamma_t), and the last step (t = 0) goes to gamma = 1: it returns the predicted x_0.
"""

import math
from typing import List, Optional, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .scheduling_sr3 import SR3_SCHEDULER_PRESETS, SR3SchedulerOutput
from .scheduling_sr3_utils import (
    FEW_STEP_NUM_INFERENCE_STEPS,
    SR3NoiseLevelMixin,
    _check_beta_range,
    _check_positive_int,
    _check_prediction_type,
    _rename_config_key,
    gammas_from_betas,
    linear_betas,
    noise_and_original_from_model_output,
    respace_gammas,
)


ALGORITHM_TYPES = ("dpmsolver++", "ddim")
SOLVER_ORDERS = (1, 2)
NOISE_LEVEL_SPACINGS = ("log_snr", "reference")


def log_snr(gammas: torch.Tensor) -> torch.Tensor:
    """The log signal-to-noise ratio log(gamma / (1 - gamma)) of x = sqrt(gamma) x_0 + sqrt(1 - gamma) eps (Kingma
    et al., 2021, "Variational Diffusion Models"); twice DPM-Solver's lambda."""
    return torch.log(gammas) - torch.log1p(-gammas)


def half_log_snr(gamma: float) -> float:
    """DPM-Solver's lambda = log(alpha / sigma) = log(gamma / (1 - gamma)) / 2 of one noise level (Lu et al., 2022)."""
    return 0.5 * (math.log(gamma) - math.log1p(-gamma))


def log_snr_spaced_gammas(gamma_min: float, gamma_max: float, num_steps: int) -> torch.Tensor:
    """`num_steps` gammas evenly spaced in log-SNR from `gamma_max` down to `gamma_min`, the last the noisiest
    (DPM-Solver's uniform-lambda steps, https://huggingface.co/papers/2206.00927); 1 step gives [gamma_min]; float64.
    """
    bounds = log_snr(torch.tensor([gamma_min, gamma_max], dtype=torch.float64))
    gammas = torch.sigmoid(torch.linspace(bounds[0], bounds[1], num_steps, dtype=torch.float64)).flip(0)
    # Pin the ends exactly, so that the walk starts and ends at the given levels despite float rounding
    gammas[-1] = gamma_min
    if num_steps > 1:
        gammas[0] = gamma_max
    return gammas


class SR3DPMSolverScheduler(SR3NoiseLevelMixin, SchedulerMixin, ConfigMixin):
    """
    `SR3DPMSolverScheduler` samples an SR3 model in few steps: DDIM or DPM-Solver++(2M) (optionally stochastic) on
    noise levels spaced evenly in log-SNR over the training range, or on SR3's own sampling schedule respaced. It is a
    drop-in for [`SR3Scheduler`] in [`SR3Pipeline`] (same `set_timesteps`, `timesteps`, `get_noise_level`,
    `scale_model_input`, `step` and output) and loads from its config:
    `SR3DPMSolverScheduler.from_config(pipe.scheduler.config)` keeps the training schedule and the reference sampling
    schedule, and uses this class's defaults for the rest. The defaults (20 steps of deterministic DPM-Solver++(2M),
    log-SNR spacing) are ours; the SR3 paper samples with 100 (64 -> 256) ancestral steps ([`SR3Scheduler`]).

    Noise levels. With `noise_level_spacing="log_snr"` the N levels the model sees are evenly spaced in
    log(gamma / (1 - gamma)) between the least and the most noisy gamma of the *training* schedule, gamma_1 =
    1 - `beta_start` (0.9999) and gamma_T (~ 0.00604 for T = 2000, ~ 0.0777 for T = 1000): the model is never asked
    for a noise level it was not trained on. As in SR3, sampling starts from x_T ~ N(0, I) at the smallest training
    gamma rather than at gamma = 0 (its x_T should be N(sqrt(gamma_T) x_0, (1 - gamma_T) I); the mismatch is the
    reference's too). With `noise_level_spacing="reference"` the levels are those of SR3's sampling schedule (linear
    betas `inference_beta_start` .. `inference_beta_end` over `reference_steps`), respaced to N like
    [`SR3Scheduler.set_timesteps`] does, for like-for-like comparisons.

    Last step. Every sampler's last step goes from the least noisy level to gamma = 1 and returns the predicted x_0
    of that model call (clipped when `clip_sample=True`) with no noise: the first-order update to gamma = 1 is exactly
    x_0, and a second-order one is undefined there (lambda = infinity), as in k-diffusion and diffusers' DPM-Solver.

    This model inherits from [`SchedulerMixin`] and [`ConfigMixin`]. Check the superclass documentation for the generic
    methods the library implements for all schedulers such as loading and saving.

    Args:
        num_train_timesteps (`int`, defaults to `2000`):
            T, the number of steps of the training schedule, as in [`SR3Scheduler`] (2000 for `sr3-64-256`, 1000 for
            `sr3-32-128`). With `"log_snr"` spacing its smallest gamma is the noisiest level sampled.
        beta_start (`float`, defaults to `1e-4`):
            First beta of the linear training schedule, in (0, 1).
        beta_end (`float`, defaults to `0.005`):
            Last beta of the linear training schedule, in (0, 1) and at least `beta_start`.
        num_inference_steps (`int`, defaults to `20`):
            N, the default number of sampling steps (model calls) of `set_timesteps()`; positive, and at most
            `reference_steps` with `"reference"` spacing.
        algorithm_type (`"dpmsolver++"` or `"ddim"`, defaults to `"dpmsolver++"`):
            `"dpmsolver++"` is multistep DPM-Solver++ with data prediction (Lu et al., 2022, Algorithm 2 for order 2);
            `"ddim"` is DDIM (Song et al., 2021, eq. (12)).
        solver_order (`int`, 1 or 2, defaults to `2`):
            The order of DPM-Solver++: 2 is DPM-Solver++(2M), whose first and last steps are first order; 1 is
            DPM-Solver++1 (DDIM for `eta=0`). DDIM is first order and ignores it.
        eta (`float`, in [0, 1], defaults to `0.0`):
            The stochasticity. 0 solves the probability-flow ODE (deterministic). For `"ddim"` it is DDIM's eta,
            sigma_t = eta * sqrt((1 - gamma_{t-1}) / (1 - gamma_t)) * sqrt(1 - gamma_t / gamma_{t-1}) (eq. (16)):
            1 gives DDPM's posterior variance. For `"dpmsolver++"` it scales the noise injected per unit of lambda:
            1 is SDE-DPM-Solver++(2M) (diffusers' `"sde-dpmsolver++"`), values in between follow k-diffusion's
            `sample_dpmpp_2m_sde(eta=...)`.
        noise_level_spacing (`"log_snr"` or `"reference"`, defaults to `"log_snr"`):
            How the N noise levels are chosen (see above).
        reference_steps (`int`, defaults to `100`):
            Length of SR3's sampling schedule used by `"reference"` spacing (an [`SR3Scheduler`] config's
            `num_inference_steps`).
        inference_beta_start (`float`, defaults to `1e-4`):
            First beta of SR3's linear sampling schedule (`1e-6` for `sr3-32-128`); `"reference"` spacing only.
        inference_beta_end (`float`, defaults to `0.1`):
            Last beta of SR3's linear sampling schedule (`0.05` for `sr3-32-128`); `"reference"` spacing only.
        clip_sample (`bool`, defaults to `False`):
            Clip the predicted x_0 to [-`clip_sample_range`, `clip_sample_range`] in every step; DDIM then re-derives
            its noise from the clipped x_0. Off in the paper and the reference, which only clamp the final output.
        clip_sample_range (`float`, defaults to `1.0`):
            The clipping bound, used only when `clip_sample=True`; must be positive.
        prediction_type (`str`, defaults to `"epsilon"`):
            What the model predicts, as in [`SR3Scheduler`]: `"epsilon"`, `"sample"` (x_0) or `"v_prediction"`.
        trained_betas (`np.ndarray` or `List[float]`, *optional*):
            The betas of the training schedule, replacing the linear one of `beta_start` .. `beta_end` (as in
            diffusers' schedulers); their number is then T, whatever `num_train_timesteps` says.
    """

    # `SR3Scheduler` configs load here (and its own keys, e.g. `variance_type`, are kept aside silently); see
    # `SR3NoiseLevelMixin._get_compatibles`, which finds the SR3 schedulers in this package rather than in diffusers.
    _compatibles = ["SR3Scheduler"]
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 2000,
        beta_start: float = 1e-4,
        beta_end: float = 0.005,
        num_inference_steps: int = 20,
        algorithm_type: str = "dpmsolver++",
        solver_order: int = 2,
        eta: float = 0.0,
        noise_level_spacing: str = "log_snr",
        reference_steps: int = 100,
        inference_beta_start: float = 1e-4,
        inference_beta_end: float = 0.1,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        prediction_type: str = "epsilon",
        trained_betas: Optional[Union[np.ndarray, List[float]]] = None,
    ):
        _check_positive_int("num_train_timesteps", num_train_timesteps)
        _check_positive_int("num_inference_steps", num_inference_steps)
        _check_positive_int("reference_steps", reference_steps)
        _check_beta_range("beta_start", beta_start, "beta_end", beta_end)
        _check_beta_range("inference_beta_start", inference_beta_start, "inference_beta_end", inference_beta_end)
        if algorithm_type not in ALGORITHM_TYPES:
            raise ValueError(f"`algorithm_type` must be one of {list(ALGORITHM_TYPES)}, got {algorithm_type!r}.")
        if isinstance(solver_order, bool) or solver_order not in SOLVER_ORDERS:
            raise ValueError(f"`solver_order` must be one of {list(SOLVER_ORDERS)}, got {solver_order!r}.")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
            raise ValueError(f"`eta` must be a number in [0, 1], got {eta!r}.")
        if noise_level_spacing not in NOISE_LEVEL_SPACINGS:
            raise ValueError(
                f"`noise_level_spacing` must be one of {list(NOISE_LEVEL_SPACINGS)}, got {noise_level_spacing!r}."
            )
        if not clip_sample_range > 0:
            raise ValueError(f"`clip_sample_range` must be positive, got {clip_sample_range!r}.")
        _check_prediction_type(prediction_type)
        self._check_num_inference_steps(num_inference_steps, noise_level_spacing, reference_steps)

        self._set_training_schedule(beta_start, beta_end, num_train_timesteps, trained_betas)

        # multistep state: the predicted x_0 of the previous step and that step's timestep
        self._previous_pred_original_sample = None
        self._previous_timestep = None

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs=False, **kwargs):
        """
        Instantiate from a config dict, see [`~ConfigMixin.from_config`].

        An [`SR3Scheduler`] config (e.g. `pipe.scheduler.config`; recognised by its `variance_type` key and the
        absence of `reference_steps`) is translated first: its `num_inference_steps` is the length of SR3's sampling
        schedule and becomes `reference_steps`, so the number of steps stays this class's default (20) unless given
        in `kwargs` or the config was made from one of this class's (it then carries that one's step count). Its
        training schedule, `inference_beta_*` and `clip_sample*` keep their meaning; a non-default `variance_type` is
        kept in the config, unused.
        """
        if isinstance(config, dict) and "variance_type" in config and "reference_steps" not in config:
            config = _rename_config_key(config, "num_inference_steps", "reference_steps")
            config = _rename_config_key(config, FEW_STEP_NUM_INFERENCE_STEPS, "num_inference_steps")
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "SR3DPMSolverScheduler":
        """
        The training and reference sampling schedules of one of the reference's tasks, `"sr3-64-256"` or
        `"sr3-32-128"` (see [`SR3Scheduler.from_preset`]), with this class's sampler defaults.

        Args:
            name (`str`):
                The preset name, a key of `SR3_SCHEDULER_PRESETS`.
            **overrides:
                Config fields that replace the preset's values, e.g. `num_inference_steps=10`.
        """
        if name not in SR3_SCHEDULER_PRESETS:
            raise ValueError(f"Unknown SR3 scheduler preset {name!r}; choose one of {sorted(SR3_SCHEDULER_PRESETS)}.")
        preset = dict(SR3_SCHEDULER_PRESETS[name])
        preset["reference_steps"] = preset.pop("num_inference_steps")
        return cls(**{**preset, **overrides})

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None):
        """
        Choose the N noise levels gamma_{N-1} (noisiest) .. gamma_0 and the timesteps N-1, ..., 0 (to be run before
        inference); this also clears the multistep history.

        `"log_snr"`: evenly spaced in log-SNR from gamma_T down to gamma_1 of the training schedule
        (`log_snr_spaced_gammas`). `"reference"`: SR3's sampling schedule of `reference_steps` linear betas, respaced
        to N steps that keep its first and last levels (`respace_gammas`, Nichol & Dhariwal, 2021, section 4).

        Args:
            num_inference_steps (`int`, *optional*):
                N, the number of sampling steps (model calls); defaults to `config.num_inference_steps`. At most
                `reference_steps` with `"reference"` spacing.
            device (`str` or `torch.device`, *optional*):
                The device to which the timesteps are moved. If `None`, they stay on the CPU.
        """
        if num_inference_steps is None:
            num_inference_steps = self.config.num_inference_steps
        _check_positive_int("num_inference_steps", num_inference_steps)
        self._check_num_inference_steps(
            num_inference_steps, self.config.noise_level_spacing, self.config.reference_steps
        )

        if self.config.noise_level_spacing == "log_snr":
            gamma_min, gamma_max = self.alphas_cumprod[-1].item(), self.alphas_cumprod[0].item()
            alphas_cumprod = log_snr_spaced_gammas(gamma_min, gamma_max, num_inference_steps)
        else:
            betas = linear_betas(
                self.config.inference_beta_start, self.config.inference_beta_end, self.config.reference_steps
            )
            alphas_cumprod = respace_gammas(gammas_from_betas(betas), num_inference_steps)

        if num_inference_steps > 1 and not bool((alphas_cumprod[1:] < alphas_cumprod[:-1]).all()):
            raise ValueError(
                f"The {num_inference_steps} noise levels are not distinct (gammas {alphas_cumprod.tolist()}): the "
                "training schedule is too short for `noise_level_spacing='log_snr'`; use fewer steps or a longer one."
            )

        self.num_inference_steps = num_inference_steps
        self.inference_alphas_cumprod = alphas_cumprod
        self.timesteps = torch.arange(num_inference_steps - 1, -1, -1, dtype=torch.int64, device=device)
        self._previous_pred_original_sample = None
        self._previous_timestep = None

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> SR3SchedulerOutput | tuple:
        """
        One sampling step from the noise level gamma_t of x_t to gamma_{t-1} (gamma_{-1} := 1), with DDIM or
        DPM-Solver++ (`config.algorithm_type`).

        DPM-Solver++(2M) uses the predicted x_0 of the previous call when that call was the step just before (t + 1);
        otherwise (the first step, or steps taken out of order) it takes a first-order step.

        Args:
            model_output (`torch.Tensor`):
                The model's output at (x_t, sqrt(gamma_t)): the predicted noise eps_theta for the default
                `prediction_type="epsilon"`, else x_0 or v.
            timestep (`int` or `torch.Tensor`):
                The current step t, one of `self.timesteps`.
            sample (`torch.Tensor`):
                The current sample x_t, of the shape of `model_output`.
            generator (`torch.Generator`, *optional*):
                A random number generator for the noise of `eta > 0`; no noise is drawn for `eta = 0`.
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`SR3SchedulerOutput`] or a tuple.

        Returns:
            [`SR3SchedulerOutput`] or `tuple`:
                If `return_dict` is `True`, an [`SR3SchedulerOutput`], otherwise the tuple
                `(prev_sample, pred_original_sample)`.
        """
        t = self._check_step_inputs(model_output, timestep, sample)

        # 1. compute alphas (float64 Python numbers; gamma_{-1} := 1)
        alpha_prod_t = self.inference_alphas_cumprod[t].item()
        alpha_prod_t_prev = self.inference_alphas_cumprod[t - 1].item() if t > 0 else 1.0

        # 2. compute the predicted noise and original sample x_0 ("predicted x_0" of formula (12) of DDIM)
        pred_epsilon, pred_original_sample = noise_and_original_from_model_output(
            self.config.prediction_type, model_output, sample, alpha_prod_t
        )

        # 3. clip "predicted x_0"
        if self.config.clip_sample:
            pred_original_sample = pred_original_sample.clamp(
                -self.config.clip_sample_range, self.config.clip_sample_range
            )

        # 4. the last step goes to gamma = 1: x_{-1} = x_0 (formula (12) of DDIM with alpha_{t-1} = 1, sigma_t = 0;
        # the first-order DPM-Solver++ step with sigma_{t-1} = 0)
        if t == 0:
            prev_sample = pred_original_sample
        elif self.config.algorithm_type == "ddim":
            prev_sample = self._ddim_step(
                pred_epsilon, sample, pred_original_sample, alpha_prod_t, alpha_prod_t_prev, generator
            )
        else:
            prev_sample = self._dpm_solver_step(sample, pred_original_sample, t, generator)

        self._previous_pred_original_sample = pred_original_sample
        self._previous_timestep = t

        if not return_dict:
            return (prev_sample, pred_original_sample)

        return SR3SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def _ddim_step(
        self,
        pred_epsilon: torch.Tensor,
        sample: torch.Tensor,
        pred_original_sample: torch.Tensor,
        alpha_prod_t: float,
        alpha_prod_t_prev: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """DDIM, formulas (12) and (16) of Song et al. (2021), from x_t at gamma_t to x_{t-1} at gamma_{t-1} < 1."""
        # Notation (<variable name> -> <name in DDIM>)
        # - alpha_prod_t, alpha_prod_t_prev -> alpha_t, alpha_{t-1} (SR3's gamma_t, gamma_{t-1})
        # - pred_epsilon -> eps_theta(x_t), pred_original_sample -> "predicted x_0"
        # - std_dev_t -> sigma_t, eta -> η
        # - pred_sample_direction -> "direction pointing to x_t"
        beta_prod_t = 1.0 - alpha_prod_t
        beta_prod_t_prev = 1.0 - alpha_prod_t_prev

        # 1. the noise: the model's, or re-derived from the clipped x_0 so that the update stays consistent
        if self.config.clip_sample:
            pred_epsilon = (sample - alpha_prod_t**0.5 * pred_original_sample) / beta_prod_t**0.5

        # 2. compute variance: "sigma_t(η)" of formula (16)
        variance = beta_prod_t_prev / beta_prod_t * (1.0 - alpha_prod_t / alpha_prod_t_prev)
        std_dev_t = self.config.eta * variance**0.5

        # 3. compute "direction pointing to x_t" of formula (12); max() guards the rounding of 1 - gamma - sigma^2 ~ 0
        pred_sample_direction = max(beta_prod_t_prev - std_dev_t**2, 0.0) ** 0.5 * pred_epsilon

        # 4. compute x_{t-1} without "random noise" of formula (12)
        prev_sample = alpha_prod_t_prev**0.5 * pred_original_sample + pred_sample_direction

        # 5. add "random noise" sigma_t z of formula (12)
        if self.config.eta > 0:
            variance_noise = randn_tensor(
                sample.shape, generator=generator, device=sample.device, dtype=sample.dtype
            )
            prev_sample = prev_sample + std_dev_t * variance_noise
        return prev_sample

    def _dpm_solver_step(
        self,
        sample: torch.Tensor,
        pred_original_sample: torch.Tensor,
        t: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """DPM-Solver++(2M) of Lu et al. (2022), Algorithm 2, or its SDE variant for eta > 0, from gamma_t to
        gamma_{t-1} < 1; first order when the previous step's x_0 is unavailable or `solver_order=1`."""
        # Notation (<variable name> -> <name in DPM-Solver++>)
        # - alpha_s, sigma_s, lambda_s -> alpha, sigma, lambda at the current level gamma_t: sqrt(gamma_t),
        #   sqrt(1 - gamma_t), log(alpha / sigma)
        # - alpha_t, sigma_t, lambda_t -> the same at the target level gamma_{t-1}
        # - h -> h_i = lambda_t - lambda_s, r0 -> r_i = h_{i-1} / h_i
        # - pred_original_sample -> x_theta(x_s, s); D0, D1 -> x_theta and its scaled difference, D = D0 + D1 / 2
        # - eta -> k-diffusion's eta: the noise injected per unit of lambda (0: ODE, 1: SDE-DPM-Solver++)

        # 1. compute alphas, sigmas, lambdas and the step size h in lambda
        alpha_prod_s = self.inference_alphas_cumprod[t].item()
        alpha_prod_t = self.inference_alphas_cumprod[t - 1].item()
        sigma_s = (1.0 - alpha_prod_s) ** 0.5
        alpha_t, sigma_t = alpha_prod_t**0.5, (1.0 - alpha_prod_t) ** 0.5
        lambda_s, lambda_t = half_log_snr(alpha_prod_s), half_log_snr(alpha_prod_t)
        h = lambda_t - lambda_s
        eta_h = self.config.eta * h

        # 2. the data prediction: D0 = x_theta(x_s, s); second order adds D1 = (D0 - x_theta(previous)) / r0
        D0 = pred_original_sample
        second_order = (
            self.config.solver_order == 2
            and self._previous_timestep == t + 1
            and self._previous_pred_original_sample is not None
        )
        if second_order:
            lambda_last = half_log_snr(self.inference_alphas_cumprod[t + 1].item())
            r0 = (lambda_s - lambda_last) / h
            D1 = (D0 - self._previous_pred_original_sample) / r0

        # 3. DPM-Solver++1 (DDIM for eta = 0):
        # x_t = sigma_t / sigma_s e^{-eta h} x_s + alpha_t (1 - e^{-(1 + eta) h}) D0;
        # for eta = 1 the first-order SDE-DPM-Solver++ step, DDPM's posterior mean (Ho et al., 2020, eq. (7))
        data_coeff = alpha_t * -math.expm1(-h - eta_h)
        prev_sample = sigma_t / sigma_s * math.exp(-eta_h) * sample + data_coeff * D0

        # 4. DPM-Solver++(2M), Algorithm 2 line "x_t = ... D_i" with D_i = (1 + 1/(2 r_i)) x_i - 1/(2 r_i) x_{i-1}
        # (the "midpoint" form of the SDE variant for eta > 0)
        if second_order:
            prev_sample = prev_sample + 0.5 * data_coeff * D1

        # 5. add noise sigma_t sqrt(1 - e^{-2 eta h}) z of the SDE variant (DDPM's posterior variance for eta = 1)
        if self.config.eta > 0:
            noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev_sample = prev_sample + sigma_t * (-math.expm1(-2.0 * eta_h)) ** 0.5 * noise
        return prev_sample

    @staticmethod
    def _check_num_inference_steps(num_inference_steps: int, noise_level_spacing: str, reference_steps: int) -> None:
        """Raise if `"reference"` spacing is asked for more steps than SR3's sampling schedule has."""
        if noise_level_spacing == "reference" and num_inference_steps > reference_steps:
            raise ValueError(
                f"`num_inference_steps` must be at most `reference_steps` ({reference_steps}) with "
                f"`noise_level_spacing='reference'`, got {num_inference_steps}: the reference schedule can only be "
                "respaced to fewer steps. Use `noise_level_spacing='log_snr'` or raise `reference_steps`."
            )
