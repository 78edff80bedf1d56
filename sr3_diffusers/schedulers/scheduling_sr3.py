"""The SR3 noise scheduler (Saharia et al., 2021, https://huggingface.co/papers/2104.07636), SPEC section 2.

SR3 uses two schedules, both linear in beta, with gamma_t = prod_{s<=t} (1 - beta_s) (DDPM's alpha-bar):

- the *training* schedule (`num_train_timesteps` steps, `beta_start` .. `beta_end`), from which Algorithm 1 draws a
  continuous noise level gamma per sample (`sample_gamma`, `add_noise`);
- the *sampling* schedule (`num_inference_steps` steps, `inference_beta_start` .. `inference_beta_end`), which
  Algorithm 2 walks from t = N - 1 down to 0 (`set_timesteps`, `step`).

The model never sees an integer timestep: it is conditioned on the continuous noise level sqrt(gamma), which
`get_noise_level` gives for each sampling step. Code names follow diffusers (`alphas_cumprod`, `alpha_prod_t`,
`pred_original_sample`); `alphas_cumprod` is the paper's gamma.
"""

from dataclasses import dataclass

from typing import List, Optional, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .scheduling_sr3_utils import (
    FEW_STEP_NUM_INFERENCE_STEPS,
    SR3NoiseLevelMixin,
    _check_beta_range,
    _check_positive_int,
    _check_prediction_type,
    _rename_config_key,
    betas_from_gammas,
    gammas_from_betas,
    linear_betas,
    noise_and_original_from_model_output,
    respace_gammas,
)


SR3_SCHEDULER_PRESETS = {
    # 64 -> 256 (and 256 -> 1024 with the same model): T = 2000 as in the reference's code (its README says 1000).
    "sr3-64-256": {
        "num_train_timesteps": 2000,
        "beta_start": 1e-4,
        "beta_end": 0.005,
        "num_inference_steps": 100,
        "inference_beta_start": 1e-4,
        "inference_beta_end": 0.1,
    },
    # 32 -> 128: its sampling schedule ends at gamma ~ 0.079, inside a T = 1000 training schedule.
    "sr3-32-128": {
        "num_train_timesteps": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.005,
        "num_inference_steps": 100,
        "inference_beta_start": 1e-6,
        "inference_beta_end": 0.05,
    },
}

VARIANCE_TYPES = ("beta", "posterior")

@dataclass
class SR3SchedulerOutput(BaseOutput):
    """
    Output class for the scheduler's `step` function output.

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            Computed sample `x_{t-1}` of the previous step. `prev_sample` is the next model input in the denoising
            loop.
        pred_original_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The predicted high-resolution image `x_0` from the model output at the current step, a natural preview
            of an SR run.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


class SR3Scheduler(SR3NoiseLevelMixin, SchedulerMixin, ConfigMixin):
    """
    `SR3Scheduler` implements the noise schedules of SR3, "Image Super-Resolution via Iterative Refinement"
    (Saharia et al., 2021, https://huggingface.co/papers/2104.07636): continuous noise-level training (Algorithm 1)
    and ancestral sampling (Algorithm 2) on a separate, shorter sampling schedule.

    The defaults are the reference's 64 -> 256 settings (`SR3Scheduler()` equals `from_preset("sr3-64-256")`);
    `from_preset("sr3-32-128")` gives the 32 -> 128 ones. Note that the 64 -> 256 sampling schedule ends at
    gamma ~ 0.00562, a little below the smallest training gamma (~ 0.00604 for T = 2000), as in the reference.

    This model inherits from [`SchedulerMixin`] and [`ConfigMixin`]. Check the superclass documentation for the generic
    methods the library implements for all schedulers such as loading and saving.

    Args:
        num_train_timesteps (`int`, defaults to `2000`):
            T, the number of steps of the training schedule: 2000 for `sr3-64-256` (the reference's code; its README
            says 1000), 1000 for `sr3-32-128`.
        beta_start (`float`, defaults to `1e-4`):
            First beta of the linear training schedule, in (0, 1).
        beta_end (`float`, defaults to `0.005`):
            Last beta of the linear training schedule, in (0, 1) and at least `beta_start`.
        num_inference_steps (`int`, defaults to `100`):
            N, the number of steps of the sampling schedule. `set_timesteps` may ask for fewer (respaced), never more.
        inference_beta_start (`float`, defaults to `1e-4`):
            First beta of the linear sampling schedule (`1e-6` for `sr3-32-128`).
        inference_beta_end (`float`, defaults to `0.1`):
            Last beta of the linear sampling schedule (`0.05` for `sr3-32-128`).
        variance_type (`"beta"` or `"posterior"`, defaults to `"beta"`):
            The variance of each sampling step: `"beta"` is sigma_t^2 = beta_t of SR3's Algorithm 2 (the reference);
            `"posterior"` is DDPM's beta-tilde, beta_t (1 - gamma_{t-1}) / (1 - gamma_t) (Ho et al., 2020, eq. (7)).
        clip_sample (`bool`, defaults to `False`):
            Clip the predicted `x_0` to [-`clip_sample_range`, `clip_sample_range`] in each step and take the mean
            from the clipped `x_0`. Off in the paper and the reference, which only clamp the final output.
        clip_sample_range (`float`, defaults to `1.0`):
            The clipping bound, used only when `clip_sample=True`; must be positive.
        prediction_type (`str`, defaults to `"epsilon"`):
            What the model predicts: `"epsilon"` (the noise, SR3), `"sample"` (x_0) or `"v_prediction"` (v =
            sqrt(gamma) eps - sqrt(1 - gamma) x_0, Salimans & Ho, 2022). `step` takes the model output of this type.
        trained_betas (`np.ndarray` or `List[float]`, *optional*):
            The betas of the training schedule, replacing the linear one of `beta_start` .. `beta_end` (as in
            diffusers' schedulers); their number is then T, whatever `num_train_timesteps` says.
    """

    _compatibles = []
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 2000,
        beta_start: float = 1e-4,
        beta_end: float = 0.005,
        num_inference_steps: int = 100,
        inference_beta_start: float = 1e-4,
        inference_beta_end: float = 0.1,
        variance_type: str = "beta",
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        prediction_type: str = "epsilon",
        trained_betas: Optional[Union[np.ndarray, List[float]]] = None,
    ):
        _check_positive_int("num_train_timesteps", num_train_timesteps)
        _check_positive_int("num_inference_steps", num_inference_steps)
        _check_beta_range("beta_start", beta_start, "beta_end", beta_end)
        _check_beta_range("inference_beta_start", inference_beta_start, "inference_beta_end", inference_beta_end)
        _check_prediction_type(prediction_type)
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"`variance_type` must be one of {list(VARIANCE_TYPES)}, got {variance_type!r}.")
        if not clip_sample_range > 0:
            raise ValueError(f"`clip_sample_range` must be positive, got {clip_sample_range!r}.")

        self._set_training_schedule(beta_start, beta_end, num_train_timesteps, trained_betas)
        # the sampling schedule's betas and alphas (Algorithm 2), built by `set_timesteps`
        self.inference_betas = None
        self.inference_alphas = None

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "SR3Scheduler":
        """
        Build the scheduler of one of the reference's tasks, `"sr3-64-256"` or `"sr3-32-128"`.

        Args:
            name (`str`):
                The preset name, a key of `SR3_SCHEDULER_PRESETS`.
            **overrides:
                Config fields that replace the preset's values, e.g. `variance_type="posterior"`.
        """
        if name not in SR3_SCHEDULER_PRESETS:
            raise ValueError(f"Unknown SR3 scheduler preset {name!r}; choose one of {sorted(SR3_SCHEDULER_PRESETS)}.")
        return cls(**{**SR3_SCHEDULER_PRESETS[name], **overrides})

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs=False, **kwargs):
        """
        Instantiate from a config dict, see [`~ConfigMixin.from_config`].

        A few-step [`SR3DPMSolverScheduler`] config (recognised by its `reference_steps` key) is translated first: its
        `reference_steps` is the length of SR3's sampling schedule, this class's `num_inference_steps`; its sampler
        settings (`algorithm_type`, `eta`, ...) are ignored, kept in the config for the way back.
        """
        if isinstance(config, dict) and "reference_steps" in config:
            config = _rename_config_key(config, "num_inference_steps", FEW_STEP_NUM_INFERENCE_STEPS)
            config = _rename_config_key(config, "reference_steps", "num_inference_steps")
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None):
        """
        Build the sampling schedule and its timesteps N-1, ..., 0 (to be run before inference).

        With the configured N (`config.num_inference_steps`, the default) the schedule is exactly the linear beta
        schedule from `inference_beta_start` to `inference_beta_end`. With fewer steps N' the configured schedule is
        *respaced* (Nichol & Dhariwal, 2021, section 4): its gammas are kept at N' evenly spaced steps that include
        the first and the last (noisiest), and the betas are re-derived as 1 - gamma_t / gamma_{t-1}. The walk thus
        starts from the same noise level in fewer, larger steps; a plain N'-step linear schedule would end at another
        gamma (~0.60 instead of ~0.0056 for 10 steps of 1e-4..0.1). More steps than configured are refused: raise
        `num_inference_steps` in the config instead.

        Args:
            num_inference_steps (`int`, *optional*):
                N', the number of sampling steps, 1 to `config.num_inference_steps`; defaults to the configured N.
            device (`str` or `torch.device`, *optional*):
                The device to which the timesteps are moved. If `None`, they stay on the CPU.
        """
        configured_steps = self.config.num_inference_steps
        if num_inference_steps is None:
            num_inference_steps = configured_steps
        _check_positive_int("num_inference_steps", num_inference_steps)
        if num_inference_steps > configured_steps:
            raise ValueError(
                f"`num_inference_steps` must be at most the configured {configured_steps}, got {num_inference_steps}: "
                "the sampling schedule can only be respaced to fewer steps. Raise `num_inference_steps` in the "
                "scheduler config instead."
            )

        betas = linear_betas(self.config.inference_beta_start, self.config.inference_beta_end, configured_steps)
        alphas_cumprod = gammas_from_betas(betas)
        if num_inference_steps < configured_steps:
            alphas_cumprod = respace_gammas(alphas_cumprod, num_inference_steps)
            betas = betas_from_gammas(alphas_cumprod)

        self.num_inference_steps = num_inference_steps
        self.inference_betas = betas
        self.inference_alphas = 1.0 - betas
        self.inference_alphas_cumprod = alphas_cumprod
        self.timesteps = torch.arange(num_inference_steps - 1, -1, -1, dtype=torch.int64, device=device)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> SR3SchedulerOutput | tuple:
        """
        One step of SR3's Algorithm 2: from x_t and the predicted noise, draw x_{t-1}.

        x_{t-1} = (x_t - beta_t / sqrt(1 - gamma_t) * eps) / sqrt(alpha_t) + sigma_t z, with z ~ N(0, I) and z = 0
        at t = 0. With `clip_sample=True` the predicted x_0 is clipped and the mean is recomputed from the clipped
        x_0 with DDPM's posterior-mean coefficients (Ho et al., 2020, eq. (7)); without clipping that mean equals
        the one above, so the option only changes steps whose x_0 leaves the range.

        Args:
            model_output (`torch.Tensor`):
                The model's output at (x_t, sqrt(gamma_t)): the predicted noise eps_theta for the default
                `prediction_type="epsilon"`, else x_0 or v.
            timestep (`int` or `torch.Tensor`):
                The current step t, one of `self.timesteps`.
            sample (`torch.Tensor`):
                The current sample x_t, of the shape of `model_output`.
            generator (`torch.Generator`, *optional*):
                A random number generator for z.
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`SR3SchedulerOutput`] or a tuple.

        Returns:
            [`SR3SchedulerOutput`] or `tuple`:
                If `return_dict` is `True`, an [`SR3SchedulerOutput`], otherwise the tuple
                `(prev_sample, pred_original_sample)`.
        """
        t = self._check_step_inputs(model_output, timestep, sample)

        # Notation (<variable name> -> <name in SR3 / DDPM>)
        # - alpha_prod_t -> gamma_t (SR3), alpha-bar_t (DDPM)
        # - current_alpha_t, current_beta_t -> alpha_t, beta_t = 1 - alpha_t
        # - pred_epsilon -> eps_theta(x_t, sqrt(gamma_t)), the predicted noise
        # - pred_original_sample -> x_0 predicted from x_t
        # - variance -> sigma_t^2
        # - prev_sample -> x_{t-1}

        # 1. compute alphas, betas (float64 Python numbers; gamma_{-1} := 1)
        alpha_prod_t = self.inference_alphas_cumprod[t].item()
        alpha_prod_t_prev = self.inference_alphas_cumprod[t - 1].item() if t > 0 else 1.0
        beta_prod_t = 1.0 - alpha_prod_t
        beta_prod_t_prev = 1.0 - alpha_prod_t_prev
        current_alpha_t = self.inference_alphas[t].item()
        current_beta_t = self.inference_betas[t].item()

        # 2. compute the predicted noise and original sample x_0, formula (15) of DDPM for epsilon prediction
        pred_epsilon, pred_original_sample = noise_and_original_from_model_output(
            self.config.prediction_type, model_output, sample, alpha_prod_t
        )

        # 3. compute the mean of x_{t-1}
        if self.config.clip_sample:
            # 3a. clip x_0, then take the posterior mean from it, formula (7) of DDPM
            pred_original_sample = pred_original_sample.clamp(
                -self.config.clip_sample_range, self.config.clip_sample_range
            )
            pred_original_sample_coeff = alpha_prod_t_prev**0.5 * current_beta_t / beta_prod_t
            current_sample_coeff = current_alpha_t**0.5 * beta_prod_t_prev / beta_prod_t
            pred_prev_sample = pred_original_sample_coeff * pred_original_sample + current_sample_coeff * sample
        else:
            # 3b. Algorithm 2 line 4 of SR3, formula (11) of DDPM
            pred_prev_sample = (sample - current_beta_t / beta_prod_t**0.5 * pred_epsilon) / current_alpha_t**0.5

        # 4. compute the variance sigma_t^2: beta_t (Algorithm 2) or beta-tilde_t, formula (7) of DDPM
        if self.config.variance_type == "beta":
            variance = current_beta_t
        else:
            variance = current_beta_t * beta_prod_t_prev / beta_prod_t

        # 5. add noise sigma_t z, with z = 0 at the last step (Algorithm 2 lines 3-4)
        prev_sample = pred_prev_sample
        if t > 0:
            variance_noise = randn_tensor(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
            )
            prev_sample = pred_prev_sample + variance**0.5 * variance_noise

        if not return_dict:
            return (prev_sample, pred_original_sample)

        return SR3SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
