"""SR3 image super-resolution (Saharia et al., 2021) as Hugging Face diffusers components."""

# `DiffusionPipeline.from_pretrained` loads a component that `model_index.json` names `["sr3_diffusers", <class>]` by
# importing this package and looking up here the base classes it knows how to load (as with
# `transformers.PreTrainedModel`); without them it finds no loading method.
from diffusers import ModelMixin, SchedulerMixin  # noqa: F401

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
