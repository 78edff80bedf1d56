import pytest

from sr3_diffusers import SR3DPMSolverScheduler, SR3Scheduler
from sr3_diffusers.schedulers import SAMPLERS, check_sampler, sampler_label, scheduler_for_sampler


SR3_CONFIG = SR3Scheduler.from_preset("sr3-64-256").config


def test_each_sampler_keeps_the_training_schedule():
    for sampler in SAMPLERS:
        scheduler = scheduler_for_sampler(SR3_CONFIG, sampler)
        for key in ("num_train_timesteps", "beta_start", "beta_end", "inference_beta_start", "inference_beta_end"):
            assert scheduler.config[key] == SR3_CONFIG[key], (sampler, key)


def test_ancestral_is_sr3s_own_scheduler_and_the_others_are_few_step():
    ancestral = scheduler_for_sampler(SR3_CONFIG, "ancestral")
    assert type(ancestral) is SR3Scheduler and dict(ancestral.config) == dict(SR3_CONFIG)
    for sampler in ("ddim", "dpmsolver++"):
        scheduler = scheduler_for_sampler(SR3_CONFIG, sampler)
        assert isinstance(scheduler, SR3DPMSolverScheduler)
        assert (scheduler.config.algorithm_type, scheduler.config.eta) == (sampler, 0.0)
        assert (scheduler.config.num_inference_steps, scheduler.config.reference_steps) == (20, 100)


def test_eta_and_num_inference_steps_reach_the_few_step_config():
    scheduler = scheduler_for_sampler(SR3_CONFIG, "ddim", eta=0.5, num_inference_steps=8)
    assert (scheduler.config.eta, scheduler.config.num_inference_steps) == (0.5, 8)
    # From a few-step config the other sampler keeps its step count and drops its eta unless given.
    switched = scheduler_for_sampler(scheduler.config, "dpmsolver++").config
    assert (switched.algorithm_type, switched.eta, switched.num_inference_steps) == ("dpmsolver++", 0.0, 8)
    assert scheduler_for_sampler(scheduler.config, "ancestral").config.num_inference_steps == 100


@pytest.mark.parametrize(
    "sampler, kwargs, message",
    [
        ("euler", {}, r"`sampler` must be one of \['ancestral', 'ddim', 'dpmsolver\+\+'\], got 'euler'"),
        ("ancestral", {"eta": 0.0}, "ancestral sampling has none"),
        ("ancestral", {"num_inference_steps": 10}, "pass fewer steps to the pipeline call"),
        ("ddim", {"eta": -0.1}, r"eta must be a number in \[0, 1\], got -0.1"),
    ],
)
def test_bad_choices_raise(sampler, kwargs, message):
    with pytest.raises(ValueError, match=message):
        scheduler_for_sampler(SR3_CONFIG, sampler, **kwargs)


def test_eta_without_a_sampler_is_refused():
    check_sampler(None)
    with pytest.raises(ValueError, match="eta=0.3 needs the ddim or dpmsolver\\+\\+ sampler"):
        check_sampler(None, 0.3)


def test_sampler_label():
    assert sampler_label(scheduler_for_sampler(SR3_CONFIG, "ancestral")) == "ancestral"
    assert sampler_label(scheduler_for_sampler(SR3_CONFIG, "dpmsolver++")) == "dpmsolver++"
    assert sampler_label(scheduler_for_sampler(SR3_CONFIG, "ddim", eta=0.5)) == "ddim, eta 0.5"
