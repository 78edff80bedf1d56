"""Choose how an SR3 model is sampled, by name: the one place `sr3-upscale` and `sr3-evaluate` take `--sampler` from.

- `"ancestral"`: SR3's Algorithm 2 ([`SR3Scheduler`]), the paper's sampler: stochastic, 100 steps for 64 -> 256.
- `"ddim"`: DDIM ([`SR3DPMSolverScheduler`] with `algorithm_type="ddim"`), first order.
- `"dpmsolver++"`: DPM-Solver++(2M) ([`SR3DPMSolverScheduler`] with `algorithm_type="dpmsolver++"`); 20 steps is the
  fast setting.

The few-step samplers are deterministic (the probability-flow ODE) for `eta = 0`, their default, and add noise for
`eta > 0`. Each sampler is built from the model's scheduler config, so it keeps the training schedule (the noise
levels the model was trained on) and SR3's sampling schedule.
"""

from typing import Optional

from .scheduling_sr3 import SR3Scheduler
from .scheduling_sr3_dpmsolver import SR3DPMSolverScheduler


SAMPLERS = ("ancestral", "ddim", "dpmsolver++")


def check_sampler(sampler: Optional[str], eta: Optional[float] = None) -> None:
    """Refuse an unknown `sampler` and an `eta` that it cannot take (`ValueError`); `None` is the model's own scheduler.

    `eta` is the stochasticity of `"ddim"` and `"dpmsolver++"`, in [0, 1]; ancestral sampling has none.
    """
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {list(SAMPLERS)}, got {sampler!r}.")
    if eta is None:
        return
    if sampler is None:
        raise ValueError(f"eta={eta} needs the ddim or dpmsolver++ sampler; without a sampler the model's own is used.")
    if sampler == "ancestral":
        raise ValueError("eta applies to the ddim and dpmsolver++ samplers; ancestral sampling has none.")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}.")


def scheduler_for_sampler(
    config: dict, sampler: str, eta: Optional[float] = None, num_inference_steps: Optional[int] = None
):
    """The scheduler that samples with `sampler`, built from a scheduler config (e.g. `pipe.scheduler.config`).

    Args:
        config (`dict`): the config of an [`SR3Scheduler`] or an [`SR3DPMSolverScheduler`]; its training and
            sampling schedules are kept (see their `from_config`).
        sampler (`str`): one of `SAMPLERS`. `"ancestral"` gives `SR3Scheduler.from_config(config)`; `"ddim"` and
            `"dpmsolver++"` give `SR3DPMSolverScheduler.from_config(config, algorithm_type=sampler, eta=eta)`.
        eta (`float`, *optional*): the stochasticity of `"ddim"` and `"dpmsolver++"`, in [0, 1]; `None` gives 0
            (deterministic). Refused for `"ancestral"`.
        num_inference_steps (`int`, *optional*): the default number of steps of `"ddim"` and `"dpmsolver++"`; `None`
            keeps the config's for an `SR3DPMSolverScheduler` config and gives 20 for an `SR3Scheduler` one. Refused
            for `"ancestral"`, whose configured steps define SR3's sampling schedule: pass fewer steps to the pipeline
            call instead, which respaces that schedule.
    """
    check_sampler(sampler, eta)
    if sampler == "ancestral":
        if num_inference_steps is not None:
            raise ValueError(
                "num_inference_steps sets the default of the ddim and dpmsolver++ samplers; ancestral sampling's "
                "configured steps define its schedule, so pass fewer steps to the pipeline call instead."
            )
        return SR3Scheduler.from_config(config)
    overrides = {"algorithm_type": sampler, "eta": 0.0 if eta is None else eta}
    if num_inference_steps is not None:
        overrides["num_inference_steps"] = num_inference_steps
    return SR3DPMSolverScheduler.from_config(config, **overrides)


def sampler_label(scheduler) -> str:
    """The sampler of a scheduler in words, e.g. `"ancestral"` or `"dpmsolver++, eta 0.5"`."""
    if isinstance(scheduler, SR3DPMSolverScheduler):
        label = scheduler.config.algorithm_type
        return f"{label}, eta {scheduler.config.eta:g}" if scheduler.config.eta else label
    if isinstance(scheduler, SR3Scheduler):
        return "ancestral"
    return type(scheduler).__name__
