"""A patch discriminator for `train_sr3.py --adversarial_loss_weight` (training only; never part of a pipeline).

Perceptual super-resolution (SRGAN, Ledig et al., 2017; ESRGAN, Wang et al., 2018) adds an adversarial term so that the
generated detail has the statistics of real photographs rather than of their conditional mean; one-step diffusion
super-resolution models train their single step the same way. This is pix2pix's PatchGAN (Isola et al., 2017): a few
stride-2 convolutions whose output is one real/fake logit per overlapping patch, with spectral normalisation
(Miyato et al., 2018) instead of batch normalisation, since the batches here are small.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class SR3DiscriminatorOutput(BaseOutput):
    """
    The output of [`SR3PatchDiscriminatorModel`].

    Args:
        logits (`torch.Tensor` of shape `(batch_size, 1, height / 2**num_downsamples, width / 2**num_downsamples)`):
            One logit per patch: positive means "a real photograph".
    """

    logits: torch.Tensor


class SR3PatchDiscriminatorModel(ModelMixin, ConfigMixin):
    r"""
    A PatchGAN discriminator with spectral normalisation: `num_downsamples` stride-2 4x4 convolutions (channels doubling
    from `num_channels`, at most 8x), one stride-1 3x3 convolution and a 3x3 convolution to one logit per patch, with
    LeakyReLU(0.2) between them.

    Args:
        in_channels (`int`, defaults to 3): Channels of the images it judges.
        num_channels (`int`, defaults to 64): Channels of the first convolution.
        num_downsamples (`int`, defaults to 3): Stride-2 convolutions; the receptive field grows with them.
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, num_channels: int = 64, num_downsamples: int = 3):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_channels", num_channels), ("num_downsamples", num_downsamples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        layers = []
        channels = in_channels
        for index in range(num_downsamples):
            out_channels = num_channels * min(2**index, 8)
            layers += [spectral_norm(nn.Conv2d(channels, out_channels, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            channels = out_channels
        layers += [spectral_norm(nn.Conv2d(channels, channels, 3, padding=1)), nn.LeakyReLU(0.2)]
        layers.append(spectral_norm(nn.Conv2d(channels, 1, 3, padding=1)))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, return_dict: bool = True):
        r"""
        Args:
            images (`torch.Tensor` of shape `(batch_size, in_channels, height, width)`): Images in [-1, 1].
            return_dict (`bool`, defaults to `True`): Return an [`SR3DiscriminatorOutput`] instead of a tuple.

        Returns:
            [`SR3DiscriminatorOutput`] or `tuple`: the patch logits.
        """
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"`images` must have shape (batch, {self.config.in_channels}, height, width), got {tuple(images.shape)}."
            )
        logits = self.layers(images)
        if not return_dict:
            return (logits,)
        return SR3DiscriminatorOutput(logits=logits)
