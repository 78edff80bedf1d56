"""`memory`: the estimate that decides tiling is computed from sizes alone, and scales as the UNet's memory does."""

import resource

import pytest
import torch

from sr3_diffusers import SR3Pipeline
from sr3_diffusers.memory import available_memory, choose_tile_size, estimate_sampling_memory


GIB = 2**30


@pytest.fixture(scope="module")
def shipped_unet_config():
    return SR3Pipeline.from_pretrained("sr3_diffusers/default").unet.config


def test_the_issues_1500_pixel_input_is_known_not_to_fit_before_anything_is_allocated(shipped_unet_config):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    untiled = estimate_sampling_memory(shipped_unet_config, 6000, 6000)
    tiled = estimate_sampling_memory(shipped_unet_config, 6000, 6000, tile_size=256)
    # Untiled it peaked at 14.9 GB and still failed on a 16 GB machine; in 256-pixel tiles it needs little.
    assert untiled > 16e9 and tiled < 4 * GIB
    assert choose_tile_size(shipped_unet_config, 6000, 6000, available_bytes=12 * GIB) == 512
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: nothing big was allocated


def test_the_estimate_grows_with_pixels_batch_and_dtype(shipped_unet_config):
    one = estimate_sampling_memory(shipped_unet_config, 512, 512)
    assert estimate_sampling_memory(shipped_unet_config, 1024, 1024) == 4 * one
    assert estimate_sampling_memory(shipped_unet_config, 512, 512, batch_size=3) == 3 * one
    assert estimate_sampling_memory(shipped_unet_config, 512, 512, dtype=torch.bfloat16) < 0.6 * one


def test_no_tile_size_when_even_the_smallest_tiles_do_not_fit(shipped_unet_config):
    assert choose_tile_size(shipped_unet_config, 6000, 6000, available_bytes=GIB) is None
    # Tiles are multiples of the UNet's downsampling (8 here) and smaller than the canvas.
    just_enough = estimate_sampling_memory(shipped_unet_config, 100, 40, tile_size=64)
    assert choose_tile_size(shipped_unet_config, 100, 40, available_bytes=just_enough) == 64


def test_the_cpu_reports_its_free_memory():
    free = available_memory(torch.device("cpu"))
    assert free is not None and 0 < free
    assert available_memory(torch.device("meta")) is None
