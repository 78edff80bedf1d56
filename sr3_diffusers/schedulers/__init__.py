from .samplers import SAMPLERS, check_sampler, sampler_label, scheduler_for_sampler
from .scheduling_sr3 import SR3_SCHEDULER_PRESETS, SR3Scheduler, SR3SchedulerOutput
from .scheduling_sr3_dpmsolver import SR3DPMSolverScheduler

__all__ = [
    "SAMPLERS",
    "SR3_SCHEDULER_PRESETS",
    "SR3DPMSolverScheduler",
    "SR3Scheduler",
    "SR3SchedulerOutput",
    "check_sampler",
    "sampler_label",
    "scheduler_for_sampler",
]
