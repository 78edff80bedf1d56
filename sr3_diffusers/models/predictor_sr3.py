"""A small deterministic x`scale` super-resolution CNN: the predictor of predict-and-refine SR3.

"Deblurring via Stochastic Refinement" (Whang et al., CVPR 2022, https://arxiv.org/abs/2112.02475) pairs a
deterministic predictor, trained with an L1 loss, with a diffusion model that generates only what the predictor
misses. Here the predictor's output replaces SR3's bicubic condition, and the UNet refines its residual (see
`SR3Pipeline`'s `residual_scale`). The network follows EDSR's baseline (Lim et al., 2017: residual blocks without
normalisation at the low resolution, a pixel-shuffle upsampler), plus a global bicubic skip as in SPAN/ESPCN-style
efficient upscalers, so that it starts as bicubic interpolation and only learns the correction. An optional branch at
the high resolution (`num_high_res_blocks`) adds convolutions after the upsampling, as ESRGAN's last layers (Wang et
al., 2018), for texture that a per-pixel-shuffle output cannot draw.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput


@dataclass
class SR3PredictorOutput(BaseOutput):
    """
    The output of [`SR3PredictorModel`].

    Args:
        sample (`torch.Tensor` of shape `(batch_size, out_channels, scale * height, scale * width)`):
            The predicted high-resolution image, in the input's value range ([-1, 1] in SR3).
    """

    sample: torch.Tensor


class ResidualBlock(nn.Module):
    """EDSR's residual block: conv3x3 -> ReLU -> conv3x3, added to the input (no normalisation, no rescaling)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.conv2(F.relu(self.conv1(hidden_states)))


class SR3PredictorModel(ModelMixin, ConfigMixin):
    r"""
    A deterministic super-resolution CNN whose output becomes SR3's condition (predict-and-refine).

    `sample = bicubic(low_res) + PixelShuffle(conv(h))` with `h = body(conv_in(low_res))`: all convolutions run at
    the low resolution, so it costs a few percent of one UNet step; the last convolution starts at zero, so an
    untrained predictor is exactly bicubic upsampling (PyTorch's, `align_corners=False`). With `num_high_res_blocks`
    n > 0, `conv(blocks_n(PixelShuffle(conv(h))))` is added: n residual blocks of `high_res_channels` features at the
    output's resolution. Its last convolution starts at zero too, so a trained predictor's weights loaded into a model
    with the branch (`load_state_dict(..., strict=False)`) give the same output until the branch is trained.

    Args:
        in_channels (`int`, defaults to 3): Channels of the low-resolution input.
        out_channels (`int`, defaults to 3): Channels of the predicted image.
        scale (`int`, defaults to 4): The upscaling factor.
        num_channels (`int`, defaults to 48): Feature channels of the body.
        num_blocks (`int`, defaults to 8): Residual blocks in the body.
        num_high_res_blocks (`int`, defaults to 0): Residual blocks of the branch at the high resolution; 0: no
            branch.
        high_res_channels (`int`, defaults to 32): Feature channels of that branch.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 4,
        num_channels: int = 48,
        num_blocks: int = 8,
        num_high_res_blocks: int = 0,
        high_res_channels: int = 32,
    ):
        super().__init__()
        positive = (("scale", scale), ("num_channels", num_channels), ("in_channels", in_channels))
        for name, value in positive + (("high_res_channels", high_res_channels),):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        for name, value in (("num_blocks", num_blocks), ("num_high_res_blocks", num_high_res_blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
        if in_channels != out_channels:
            raise ValueError(
                f"`out_channels` ({out_channels}) must equal `in_channels` ({in_channels}): the output adds a bicubic "
                "upsampling of the input."
            )

        self.conv_in = nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList([ResidualBlock(num_channels) for _ in range(num_blocks)])
        self.conv_body = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv_out = nn.Conv2d(num_channels, out_channels * scale**2, kernel_size=3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(scale)
        # Start as plain bicubic upsampling: the learned correction is zero at initialisation.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        if num_high_res_blocks > 0:
            self.high_res_in = nn.Conv2d(num_channels, high_res_channels * scale**2, kernel_size=3, padding=1)
            high_res_blocks = [ResidualBlock(high_res_channels) for _ in range(num_high_res_blocks)]
            self.high_res_blocks = nn.ModuleList(high_res_blocks)
            self.high_res_out = nn.Conv2d(high_res_channels, out_channels, kernel_size=3, padding=1)
            # Adding the branch leaves the predictor's output unchanged until it is trained.
            nn.init.zeros_(self.high_res_out.weight)
            nn.init.zeros_(self.high_res_out.bias)

    def forward(self, low_res: torch.Tensor, return_dict: bool = True):
        r"""
        Args:
            low_res (`torch.Tensor` of shape `(batch_size, in_channels, height, width)`):
                The low-resolution image (SR3 uses [-1, 1]).
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`SR3PredictorOutput`] or a plain tuple.

        Returns:
            [`SR3PredictorOutput`] or `tuple`: the predicted image, `scale` times larger; not clamped.
        """
        if low_res.ndim != 4 or low_res.shape[1] != self.config.in_channels:
            raise ValueError(
                f"`low_res` must have shape (batch, {self.config.in_channels}, height, width), got {tuple(low_res.shape)}."
            )
        base = F.interpolate(low_res, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        features = self.conv_in(low_res)
        hidden_states = features
        for block in self.blocks:
            hidden_states = block(hidden_states)
        hidden_states = self.conv_body(hidden_states) + features
        sample = base + self.pixel_shuffle(self.conv_out(hidden_states))
        if self.config.num_high_res_blocks > 0:
            high_res_states = self.pixel_shuffle(self.high_res_in(hidden_states))
            for block in self.high_res_blocks:
                high_res_states = block(high_res_states)
            sample = sample + self.high_res_out(high_res_states)
        if not return_dict:
            return (sample,)
        return SR3PredictorOutput(sample=sample)
