"""SR3 image super-resolution (Saharia et al., 2021) as Hugging Face diffusers components."""

from .models import SR3PredictorModel, SR3PredictorOutput, SR3UNet2DModel, SR3UNet2DOutput
from .pipelines import SHIPPED_MODEL, SR3Pipeline
from .schedulers import SR3DPMSolverScheduler, SR3Scheduler, SR3SchedulerOutput


__version__ = "0.1.0"

__all__ = [
    "SHIPPED_MODEL",
    "SR3DPMSolverScheduler",
    "SR3Pipeline",
    "SR3PredictorModel",
    "SR3PredictorOutput",
    "SR3Scheduler",
    "SR3SchedulerOutput",
    "SR3UNet2DModel",
    "SR3UNet2DOutput",
]
