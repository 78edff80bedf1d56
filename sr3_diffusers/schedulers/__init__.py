from .scheduling_sr3 import SR3_SCHEDULER_PRESETS, SR3Scheduler, SR3SchedulerOutput

__all__ = ["SR3_SCHEDULER_PRESETS", "SR3Scheduler", "SR3SchedulerOutput"]
