from .discriminator_sr3 import SR3DiscriminatorOutput, SR3PatchDiscriminatorModel
from .predictor_sr3 import SR3PredictorModel, SR3PredictorOutput, interpolate_predictors
from .unet_sr3 import SR3_UNET_PRESETS, SR3UNet2DModel, SR3UNet2DOutput

__all__ = [
    "SR3_UNET_PRESETS",
    "SR3DiscriminatorOutput",
    "SR3PatchDiscriminatorModel",
    "SR3PredictorModel",
    "SR3PredictorOutput",
    "SR3UNet2DModel",
    "SR3UNet2DOutput",
    "interpolate_predictors",
]
