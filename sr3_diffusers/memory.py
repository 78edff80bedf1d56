"""The memory an SR3 sampling run needs, estimated from sizes alone (nothing is allocated), and the memory a device has
free: `sr3-upscale` uses them to tile an image that would not fit before it spends minutes failing inside `conv2d`.

The estimate counts, per output pixel, what a no-grad forward pass of [`SR3UNet2DModel`] holds at its peak, which is
in the first ResBlocks of the up path at full resolution:

- the skip connections kept for the up path: `conv_in`'s output, then per depth d the outputs of its
  `layers_per_block` ResBlocks and of its downsampler, each at 1 / 4^d of the pixels;
- the working set of an up-path ResBlock: its input (the upsampled features concatenated with a skip), GroupNorm and
  SiLU copies of it (3 tensors), and its conv, shortcut and sum (3 tensors of the block's channels);
- the input and output ends (sample, condition, their concatenation; GroupNorm, SiLU and `conv_out`);
- the pipeline's own full-canvas float32 tensors (sample, condition, noise prediction, step outputs, noise: 8 x 3).

Self-attention adds no `N^2` term: `scaled_dot_product_attention` runs blockwise (flash attention) on CPU and CUDA, so
an attention layer costs about what a ResBlock does at its depth.

Checked against the shipped model's 1-step pipeline call on CPU (peak RSS growth; `python
benchmarks/memory_estimate.py`): 558 MiB measured vs 588 MiB estimated at 512x512, 1899 vs 2354 MiB at 1024x1024, and
212 vs 237 MiB at 1024x1024 in 256-pixel tiles; for the tiny test UNet, 673-705 bytes/pixel measured vs 692
estimated. It errs on the high side, as a fit check should.
"""

import os
from typing import Optional, Sequence

import torch


_PIPELINE_CANVAS_FLOATS = 8 * 3
_TILE_CANDIDATES = (512, 256, 128, 64, 32)


def estimate_sampling_memory(
    unet_config,
    height: int,
    width: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    tile_size: Optional[int] = None,
    tile_batch_size: int = 1,
) -> int:
    """
    Bytes that sampling a `batch_size x height x width` output canvas needs at its peak (see the module docstring).

    Args:
        unet_config: The UNet's config (`pipe.unet.config`): `block_out_channels`, `layers_per_block`,
            `attention_depths`, `mid_block_attention`, `num_attention_heads`.
        height (`int`), width (`int`): The output canvas, in pixels.
        batch_size (`int`): Images sampled together.
        dtype (`torch.dtype`): The UNet's dtype; the pipeline's canvases are always float32.
        tile_size (`int`, *optional*): With tiling, the UNet sees `tile_size` windows, `tile_batch_size` at a time.
    """
    canvas_pixels = height * width * batch_size
    if tile_size is not None:
        height, width = min(height, tile_size), min(width, tile_size)
        batch_size *= tile_batch_size
    channels: Sequence[int] = tuple(unet_config.block_out_channels)
    layers = unet_config.layers_per_block
    last = len(channels) - 1

    # The ends: sample, condition and their concatenation going in; GroupNorm, SiLU and conv_out coming out.
    end_floats = 3 + 3 + 6 + 2 * channels[0] + 3
    skip_floats = channels[0]  # conv_in
    working_floats = 0.0
    for depth, depth_channels in enumerate(channels):
        shrink = 4**depth
        downsampled = depth_channels / 4 if depth < last else 0
        skip_floats += (layers * depth_channels + downsampled) / shrink
        upsampled_channels = channels[min(depth + 1, last)]
        working_floats = max(working_floats, (3 * (upsampled_channels + depth_channels) + 3 * depth_channels) / shrink)
    unet_pixels = height * width * batch_size
    element_size = torch.empty((), dtype=dtype).element_size()
    unet_bytes = (end_floats + skip_floats + working_floats) * unet_pixels * element_size

    return int(unet_bytes + _PIPELINE_CANVAS_FLOATS * canvas_pixels * 4)


def choose_tile_size(
    unet_config,
    height: int,
    width: int,
    available_bytes: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    tile_batch_size: int = 1,
) -> Optional[int]:
    """The largest of 512, 256, 128, 64, 32 (a multiple of the UNet's downsampling, smaller than the canvas) whose tiled
    sampling fits in `available_bytes`, or `None` when none does."""
    factor = 2 ** (len(unet_config.block_out_channels) - 1)
    for tile_size in _TILE_CANDIDATES:
        if tile_size % factor or tile_size >= max(height, width):
            continue
        needed = estimate_sampling_memory(unet_config, height, width, batch_size, dtype, tile_size, tile_batch_size)
        if needed <= available_bytes:
            return tile_size
    return None


def available_memory(device: torch.device) -> Optional[int]:
    """Bytes free for new tensors on `device`: CUDA's free memory, or the operating system's available RAM for the CPU
    (`MemAvailable`, which counts reclaimable caches); `None` where it cannot be told (e.g. MPS)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
