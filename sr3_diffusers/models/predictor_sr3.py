"""A small deterministic x`scale` super-resolution CNN: the predictor of predict-and-refine SR3.

"Deblurring via Stochastic Refinement" (Whang et al., CVPR 2022, https://arxiv.org/abs/2112.02475) pairs a
deterministic predictor, trained with an L1 loss, with a diffusion model that generates only what the predictor
misses. Here the predictor's output replaces SR3's bicubic condition, and the UNet refines its residual (see
`SR3Pipeline`'s `residual_scale`). The network follows EDSR's baseline (Lim et al., 2017: residual blocks without
normalisation at the low resolution, a pixel-shuffle upsampler), plus a global bicubic skip as in SPAN/ESPCN-style
efficient upscalers, so that it starts as bicubic interpolation and only learns the correction.
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

    `sample = bicubic(low_res) + PixelShuffle(conv(body(conv_in(low_res))))`: all convolutions run at the low
    resolution, so it costs a few percent of one UNet step; the last convolution starts at zero, so an untrained
    predictor is exactly bicubic upsampling (PyTorch's, `align_corners=False`).

    Args:
        in_channels (`int`, defaults to 3): Channels of the low-resolution input.
        out_channels (`int`, defaults to 3): Channels of the predicted image.
        scale (`int`, defaults to 4): The upscaling factor.
        num_channels (`int`, defaults to 48): Feature channels of the body.
        num_blocks (`int`, defaults to 8): Residual blocks in the body.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 4,
        num_channels: int = 48,
        num_blocks: int = 8,
    ):
        super().__init__()
        for name, value in (("scale", scale), ("num_channels", num_channels), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(f"`num_blocks` must be a non-negative integer, got {num_blocks!r}.")
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
        if not return_dict:
            return (sample,)
        return SR3PredictorOutput(sample=sample)


def interpolate_predictors(start: SR3PredictorModel, end: SR3PredictorModel, alpha: float) -> SR3PredictorModel:
    r"""
    Network interpolation (ESRGAN, Wang et al., 2018, section 3.4): a predictor with the weights (1 - alpha) x start +
    alpha x end. With `start` a faithful (L1) predictor and `end` a perceptual one trained from it, alpha in [0, 1]
    moves between their images, and alpha > 1 extrapolates past `end` along the direction perceptual training moved
    the weights (sharper, less faithful).
    """
    def architecture(predictor):  # the config without the `_name_or_path`, `_diffusers_version` it was saved with
        return {name: value for name, value in predictor.config.items() if not name.startswith("_")}

    if architecture(start) != architecture(end):
        raise ValueError("Only predictors of the same config (architecture and scale) can be interpolated.")
    predictor = SR3PredictorModel.from_config(end.config)
    start_weights = start.state_dict()
    predictor.load_state_dict(
        {name: torch.lerp(start_weights[name].float(), weight.float(), alpha) for name, weight in end.state_dict().items()}
    )
    predictor.to(end.device)
    return (predictor if end.dtype == torch.float32 else predictor.to(end.dtype)).eval()
