"""What the SR3 schedulers share (`SR3Scheduler`, `SR3DPMSolverScheduler`): the schedule helpers, the conversions
between model outputs, and `SR3NoiseLevelMixin` (the training schedule, SR3's Algorithm 1, the sampling schedule's noise
levels). As diffusers' `scheduling_utils.py`, both scheduler modules import this one and never each other's internals.
"""

import numpy as np
import torch


# What the model predicts, in diffusers' names: the noise (SR3), the clean sample x_0, or v (Salimans & Ho, 2022).
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def linear_betas(beta_start: float, beta_end: float, num_steps: int) -> torch.Tensor:
    """Linear beta schedule of DDPM (Ho et al., 2020, section 4), used by SR3 for training and sampling; float64."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def gammas_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """gamma_t = prod_{s<=t} (1 - beta_s): SR3's gamma, DDPM's alpha-bar (Ho et al., 2020, eq. (4))."""
    return torch.cumprod(1.0 - betas, dim=0)


def betas_from_gammas(gammas: torch.Tensor) -> torch.Tensor:
    """beta_t = 1 - gamma_t / gamma_{t-1}, gamma_{-1} := 1 (Nichol & Dhariwal, 2021, section 4, respacing)."""
    gammas_prev = torch.cat([gammas.new_ones(1), gammas[:-1]])
    return 1.0 - gammas / gammas_prev


def respace_gammas(gammas: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Keep `num_steps` evenly spaced gammas, always with the last (noisiest) (Nichol & Dhariwal, 2021, section 4)."""
    # Counting down from the last index keeps it even for num_steps = 1; spacing >= 1 keeps the indices distinct.
    indices = np.round(np.linspace(len(gammas) - 1, 0, num_steps))[::-1].astype(np.int64)
    return gammas[torch.from_numpy(indices.copy())]


def continuous_gamma(gammas: torch.Tensor, timesteps: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Algorithm 1 of SR3: gamma ~ U(gamma_t, gamma_{t-1}) for t in 1..T, gamma_0 := 1, given `uniform` in [0, 1]."""
    gammas_with_one = torch.cat([gammas.new_ones(1), gammas])  # index t holds gamma_t, t = 0..T
    gamma_t = gammas_with_one[timesteps]
    gamma_t_prev = gammas_with_one[timesteps - 1]
    return gamma_t + (gamma_t_prev - gamma_t) * uniform


def noise_and_original_from_model_output(
    prediction_type: str, model_output: torch.Tensor, sample: torch.Tensor, gamma: float
) -> tuple:
    """(eps, x_0) implied by a model output at x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) eps, for 0 < gamma < 1.

    `"epsilon"`: x_0 = (x_t - sqrt(1 - gamma) eps) / sqrt(gamma) (DDPM, eq. (15)); `"sample"`: eps = (x_t - sqrt(gamma)
    x_0) / sqrt(1 - gamma); `"v_prediction"` with v = sqrt(gamma) eps - sqrt(1 - gamma) x_0 (Salimans & Ho, 2022,
    section 4): x_0 = sqrt(gamma) x_t - sqrt(1 - gamma) v and eps = sqrt(1 - gamma) x_t + sqrt(gamma) v.
    """
    sqrt_gamma, sqrt_one_minus_gamma = gamma**0.5, (1.0 - gamma) ** 0.5
    if prediction_type == "epsilon":
        return model_output, (sample - sqrt_one_minus_gamma * model_output) / sqrt_gamma
    if prediction_type == "sample":
        return (sample - sqrt_gamma * model_output) / sqrt_one_minus_gamma, model_output
    if prediction_type == "v_prediction":
        return sqrt_one_minus_gamma * sample + sqrt_gamma * model_output, sqrt_gamma * sample - sqrt_one_minus_gamma * model_output
    raise ValueError(f"`prediction_type` must be one of {list(PREDICTION_TYPES)}, got {prediction_type!r}.")


def model_output_from_original(
    prediction_type: str, pred_original_sample: torch.Tensor, sample: torch.Tensor, gamma: float
) -> torch.Tensor:
    """The model output of `prediction_type` that implies x_0 = `pred_original_sample` at x_t = `sample` (the inverse
    of `noise_and_original_from_model_output`): eps = (x_t - sqrt(gamma) x_0) / sqrt(1 - gamma), v = sqrt(gamma) eps -
    sqrt(1 - gamma) x_0."""
    if prediction_type == "sample":
        return pred_original_sample
    epsilon = (sample - gamma**0.5 * pred_original_sample) / (1.0 - gamma) ** 0.5
    if prediction_type == "epsilon":
        return epsilon
    if prediction_type == "v_prediction":
        return gamma**0.5 * epsilon - (1.0 - gamma) ** 0.5 * pred_original_sample
    raise ValueError(f"`prediction_type` must be one of {list(PREDICTION_TYPES)}, got {prediction_type!r}.")


def _check_prediction_type(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"`prediction_type` must be one of {list(PREDICTION_TYPES)}, got {prediction_type!r}.")


class SR3NoiseLevelMixin:
    """
    What the SR3 schedulers share: the training schedule and SR3's Algorithm 1 (`sample_gamma`, `add_noise`), and a
    sampling schedule indexed by steps t = N-1 (noisiest) .. 0 whose noise levels gamma_t are
    `inference_alphas_cumprod[t]` (`get_noise_level`, timestep checks). The classes that use it set the training
    schedule with `_set_training_schedule` and build `inference_alphas_cumprod` in `set_timesteps`.
    """

    def _set_training_schedule(
        self, beta_start: float, beta_end: float, num_train_timesteps: int, trained_betas=None
    ) -> None:
        """The linear-beta training schedule (Algorithm 1), float64 so that 1 - gamma keeps its digits near gamma = 1;
        x_T ~ N(0, I) starts sampling, and the sampling schedule is unset until `set_timesteps`."""
        if trained_betas is None:
            self.betas = linear_betas(beta_start, beta_end, num_train_timesteps)
        else:
            self.betas = torch.tensor(np.asarray(trained_betas), dtype=torch.float64).reshape(-1)
            if len(self.betas) == 0 or not bool(((self.betas > 0) & (self.betas < 1)).all()):
                raise ValueError(f"`trained_betas` must be values in (0, 1), got {trained_betas!r}.")
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = gammas_from_betas(self.betas)

        # standard deviation of the initial noise distribution: x_T ~ N(0, I)
        self.init_noise_sigma = 1.0

        # setable values: the sampling schedule, built by `set_timesteps`
        self.num_inference_steps = None
        self.timesteps = None
        self.inference_alphas_cumprod = None

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        """
        Ensures interchangeability with schedulers that need to scale the denoising model input depending on the
        current timestep. SR3 does not scale it.

        Args:
            sample (`torch.Tensor`):
                The input sample.
            timestep (`int`, *optional*):
                The current timestep in the diffusion chain.

        Returns:
            `torch.Tensor`:
                The input sample, unchanged.
        """
        return sample

    def sample_gamma(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """
        Draw one continuous noise level gamma per sample, as in SR3's Algorithm 1: t ~ Uniform{1, ..., T}, then
        gamma ~ Uniform(gamma_t, gamma_{t-1}) with gamma_0 := 1 (see `continuous_gamma`). Feed the model
        `noise_level = gamma.sqrt()`.

        The reference's code draws t from {2, ..., T} in these terms, so it never trains on the top interval
        (gamma_1, 1); this follows the paper.

        Args:
            batch_size (`int`):
                The number of noise levels to draw.
            generator (`torch.Generator`, *optional*):
                A random number generator; draws happen on its device.
            device (`str` or `torch.device`, *optional*):
                The device of the returned tensor; defaults to the CPU.

        Returns:
            `torch.Tensor`:
                float32 gammas of shape `(batch_size,)`, in [gamma_T, 1].
        """
        _check_positive_int("batch_size", batch_size)
        device = torch.device(device) if device is not None else torch.device("cpu")
        rand_device = generator.device if generator is not None else device
        timesteps = torch.randint(
            1, len(self.betas) + 1, (batch_size,), generator=generator, device=rand_device
        )
        uniform = torch.rand((batch_size,), generator=generator, device=rand_device, dtype=torch.float32)
        gamma = continuous_gamma(self.alphas_cumprod, timesteps.cpu(), uniform.cpu().double())
        return gamma.to(device=device, dtype=torch.float32)

    def add_noise(
        self,
        original_samples: torch.Tensor,
        noise: torch.Tensor,
        gamma: torch.Tensor | float,
    ) -> torch.Tensor:
        """
        Noise clean samples to a continuous noise level: x = sqrt(gamma) x_0 + sqrt(1 - gamma) eps (SR3's Algorithm 1,
        DDPM's eq. (4)).

        Args:
            original_samples (`torch.Tensor` of shape `(batch_size, ...)`):
                The clean samples x_0.
            noise (`torch.Tensor`, same shape as `original_samples`):
                The noise eps ~ N(0, I).
            gamma (`torch.Tensor` of shape `(batch_size,)` or a single value):
                The noise level gamma in [0, 1] per sample, e.g. from `sample_gamma`.

        Returns:
            `torch.Tensor`:
                The noisy samples, in the dtype of `original_samples`.
        """
        if noise.shape != original_samples.shape:
            raise ValueError(
                f"`noise` must have the shape of `original_samples` {tuple(original_samples.shape)}, "
                f"got {tuple(noise.shape)}."
            )
        # Coefficients in at least float32 (float64 for a Python float), so that 1 - gamma keeps its digits
        compute_dtype = torch.promote_types(original_samples.dtype, torch.float32)
        if not torch.is_tensor(gamma):
            gamma = torch.tensor(float(gamma), dtype=torch.float64)
            compute_dtype = torch.float64
        if gamma.numel() != 1 and tuple(gamma.shape) != (original_samples.shape[0],):
            raise ValueError(
                f"`gamma` must be a single value or have shape ({original_samples.shape[0]},) (one per sample), "
                f"got shape {tuple(gamma.shape)}."
            )
        if not bool(((gamma >= 0) & (gamma <= 1)).all()):
            raise ValueError(
                f"`gamma` must lie in [0, 1], got values from {gamma.min().item()} to {gamma.max().item()}."
            )

        gamma = gamma.to(device=original_samples.device, dtype=compute_dtype).reshape(-1)
        gamma = gamma.reshape(-1, *([1] * (original_samples.ndim - 1)))
        sqrt_gamma = gamma.sqrt()
        sqrt_one_minus_gamma = (1.0 - gamma).sqrt()
        noisy_samples = sqrt_gamma * original_samples + sqrt_one_minus_gamma * noise
        return noisy_samples.to(original_samples.dtype)

    def get_velocity(self, original_samples: torch.Tensor, noise: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """
        The `"v_prediction"` training target v = sqrt(gamma) eps - sqrt(1 - gamma) x_0 (Salimans & Ho, 2022, section
        4), as diffusers' `DDPMScheduler.get_velocity` but at continuous noise levels.

        Args:
            original_samples (`torch.Tensor` of shape `(batch_size, ...)`): The clean samples x_0.
            noise (`torch.Tensor`, same shape): The noise eps of `add_noise`.
            gamma (`torch.Tensor` of shape `(batch_size,)`): The noise level of each sample.
        """
        gamma = gamma.to(device=original_samples.device, dtype=torch.float32)
        gamma = gamma.reshape(-1, *([1] * (original_samples.ndim - 1)))
        return (gamma.sqrt() * noise - (1.0 - gamma).sqrt() * original_samples).to(original_samples.dtype)

    def get_noise_level(self, timestep: int | torch.Tensor) -> torch.Tensor:
        """
        The model input sqrt(gamma_t) of sampling step `timestep` (SR3's Algorithm 2).

        Args:
            timestep (`int` or `torch.Tensor`):
                A timestep of `self.timesteps`.

        Returns:
            `torch.Tensor`:
                A 0-dim float32 tensor on the device of `self.timesteps`.
        """
        t = self._check_timestep(timestep)
        noise_level = self.inference_alphas_cumprod[t].sqrt().float()
        return noise_level.to(self.timesteps.device)

    def _check_step_inputs(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor) -> int:
        """Return `timestep` as an index of the sampling schedule, or raise if it is not one or the shapes differ."""
        t = self._check_timestep(timestep)
        if model_output.shape != sample.shape:
            raise ValueError(
                f"`model_output` must have the shape of `sample` {tuple(sample.shape)}, "
                f"got {tuple(model_output.shape)}."
            )
        return t

    def _check_timestep(self, timestep: int | torch.Tensor) -> int:
        """Return `timestep` as an index of the sampling schedule, or raise if it is not one."""
        if self.num_inference_steps is None:
            raise ValueError(
                "The sampling schedule is not set: call `scheduler.set_timesteps(num_inference_steps)` before "
                "`step` or `get_noise_level`."
            )
        if torch.is_tensor(timestep):
            if timestep.numel() != 1:
                raise ValueError(f"`timestep` must be a single value, got a tensor of shape {tuple(timestep.shape)}.")
            timestep = timestep.item()
        if isinstance(timestep, bool) or not isinstance(timestep, (int, np.integer)):
            raise TypeError(f"`timestep` must be an integer step of `scheduler.timesteps`, got {timestep!r}.")
        if not 0 <= timestep < self.num_inference_steps:
            raise ValueError(
                f"`timestep` {timestep} is not in the sampling schedule: it must be one of "
                f"0..{self.num_inference_steps - 1} (`scheduler.timesteps`)."
            )
        return int(timestep)

    @classmethod
    def _get_compatibles(cls) -> list:
        """The classes whose configs this one shares: every SR3 scheduler (each class built on this mixin), whose
        `from_config` translates the others' configs; diffusers would look `_compatibles` up in its own namespace."""
        return [cls] + [other for other in SR3NoiseLevelMixin.__subclasses__() if other is not cls]

    def __len__(self) -> int:
        return len(self.betas)


# Where an `SR3Scheduler` config made from an `SR3DPMSolverScheduler` one keeps that scheduler's own number of steps,
# for which it has no field (its `num_inference_steps` is SR3's sampling schedule). A private key is carried along by
# diffusers' `from_config` unused and without a warning, so the step count comes back when the config returns.
FEW_STEP_NUM_INFERENCE_STEPS = "_few_step_num_inference_steps"


def _rename_config_key(config, old_key: str, new_key: str) -> dict:
    """A copy of the scheduler config `config` with `old_key`'s value under `new_key`, as one SR3 scheduler's
    `from_config` translates the other's config. `new_key` inherits `old_key`'s place in `_use_default_values` (the
    keys that `ConfigMixin.extract_init_dict` drops, as the saving class's defaults), so that a value given explicitly
    survives the translation and a default stays a default."""
    config = dict(config)
    if old_key not in config:
        return config
    config[new_key] = config.pop(old_key)
    defaults = [key for key in config.get("_use_default_values", []) if key != new_key]
    if old_key in defaults:
        defaults[defaults.index(old_key)] = new_key
    if "_use_default_values" in config:
        config["_use_default_values"] = defaults
    return config


def _check_positive_int(name: str, value) -> None:
    """Raise unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be a positive integer, got {value!r}.")
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value}.")


def _check_beta_range(start_name: str, start: float, end_name: str, end: float) -> None:
    """Raise unless 0 < start <= end < 1."""
    for name, value in ((start_name, start), (end_name, end)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"`{name}` must lie in the open interval (0, 1), got {value!r}.")
    if start > end:
        raise ValueError(f"`{start_name}` ({start}) must not exceed `{end_name}` ({end}).")
