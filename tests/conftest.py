import pytest

from sr3_diffusers import SR3Pipeline, SR3Scheduler, SR3UNet2DModel
from tests.testing_utils import TINY_UNET_CONFIG, randomise_weights


@pytest.fixture
def tiny_pipeline():
    """An SR3 x4 pipeline with a tiny random UNet and a 4-step sampling schedule, progress bar off."""
    unet = randomise_weights(SR3UNet2DModel(**TINY_UNET_CONFIG)).eval()
    pipe = SR3Pipeline(unet=unet, scheduler=SR3Scheduler(num_inference_steps=4), scale=4)
    pipe.set_progress_bar_config(disable=True)
    return pipe
