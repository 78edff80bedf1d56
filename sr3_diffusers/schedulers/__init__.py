from .samplers import SAMPLERS, check_sampler, sampler_label, scheduler_for_sampler
from .scheduling_sr3 import SR3_SCHEDULER_PRESETS, SR3Scheduler, SR3SchedulerOutput
from .scheduling_sr3_dpmsolver import SR3DPMSolverScheduler
from .scheduling_sr3_utils import PREDICTION_TYPES, model_output_from_original, noise_and_original_from_model_output

__all__ = [
    "PREDICTION_TYPES",
    "SAMPLERS",
    "SR3_SCHEDULER_PRESETS",
    "SR3DPMSolverScheduler",
    "SR3Scheduler",
    "SR3SchedulerOutput",
    "check_sampler",
    "model_output_from_original",
    "noise_and_original_from_model_output",
    "sampler_label",
    "scheduler_for_sampler",
]
