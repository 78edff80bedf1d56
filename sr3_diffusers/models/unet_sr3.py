"""The SR3 UNet: a DDPM-style UNet conditioned on a continuous noise level and an upsampled low-resolution image."""

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, get_down_block, get_up_block
from diffusers.utils import BaseOutput


SR3_UNET_PRESETS = {
    # SPEC section 1: base channels C times the multipliers (1, 2, 4, 4, 8, 8).
    "sr3-64-256": {"block_out_channels": (56, 112, 224, 224, 448, 448)},
    "sr3-32-128": {"block_out_channels": (64, 128, 256, 256, 512, 512)},
}

ATTENTION_VARIANTS = ("softmax", "reference-disabled")


@dataclass
class SR3UNet2DOutput(BaseOutput):
    """
    The output of [`SR3UNet2DModel`].

    Args:
        sample (`torch.Tensor` of shape `(batch_size, out_channels, height, width)`):
            The predicted noise epsilon.
    """

    sample: torch.Tensor


class ReferenceDisabledAttnProcessor:
    r"""
    Reproduces the reference implementation's attention bug: its block returned `x + proj(GroupNorm(x))`, discarding the
    softmax attention it computed. Its published numbers were measured this way; use it only to compare with them.
    """

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        residual = hidden_states
        projected = attn.group_norm(hidden_states).permute(0, 2, 3, 1)  # (B, H, W, C): channels last for the Linear
        projected = attn.to_out[1](attn.to_out[0](projected)).permute(0, 3, 1, 2)
        return (projected + residual) / attn.rescale_output_factor


class SR3UNet2DModel(ModelMixin, AttentionMixin, ConfigMixin):
    r"""
    The UNet of SR3 ([Saharia et al., 2021](https://arxiv.org/abs/2104.07636)), as in the reference implementation.

    It predicts the noise epsilon in a noisy high-resolution image `sample`, given the noise level
    `sqrt(gamma)` and the bicubic-upsampled low-resolution image `condition`, which is concatenated to `sample` on the
    channel axis before the first convolution (the only way the condition enters). It is built from diffusers' own UNet
    blocks, so its ResBlocks, attention (`scaled_dot_product_attention`), down- and upsamplers and gradient
    checkpointing are those of [`~diffusers.UNet2DModel`]; what differs is the continuous noise-level embedding and the
    explicit condition.

    Layout (defaults = the `sr3-64-256` preset, SPEC section 1): six depths with channels `C * (1, 2, 4, 4, 8, 8)`,
    C = 56; `layers_per_block` ResBlocks per depth on the way down, each depth but the last ending with a stride-2 conv;
    `layers_per_block + 1` ResBlocks per depth on the way up, each consuming one skip connection, each depth but the
    first ending with nearest x2 upsampling and a conv; a middle block ResBlock -> attention -> ResBlock; single-head
    self-attention after the ResBlocks of the depths in `attention_depths` (depth 4 = 16x16 for a 256 input); GroupNorm
    with 8 groups everywhere; ResBlocks add a projection of the embedding (no scale/shift) and do not rescale the sum.

    Args:
        in_channels (`int`, defaults to 3): Channels of the noisy sample.
        condition_channels (`int`, defaults to 3): Channels of the upsampled low-resolution condition.
        out_channels (`int`, defaults to 3): Channels of the predicted noise.
        block_out_channels (`Tuple[int]`, defaults to `(56, 112, 224, 224, 448, 448)`):
            Channels per depth, i.e. base channels C times the channel multipliers; its length is the number of depths.
        layers_per_block (`int`, defaults to 3): ResBlocks per depth on the down path (the up path has one more).
        attention_depths (`Tuple[int]`, defaults to `(4,)`):
            Depths (0 = full resolution) whose ResBlocks are followed by self-attention, down and up.
        mid_block_attention (`bool`, defaults to `True`): Self-attention between the two middle ResBlocks.
        num_attention_heads (`int`, defaults to 1): Heads of every attention layer (the reference uses one).
        attention_variant (`str`, defaults to `"softmax"`):
            `"softmax"` is working self-attention. `"reference-disabled"` reproduces the reference implementation, whose
            published models ran with the attention output discarded (`x + proj(GroupNorm(x))`).
        norm_num_groups (`int`, defaults to 8): GroupNorm groups (C = 56 is not divisible by 32).
        norm_eps (`float`, defaults to 1e-5): GroupNorm epsilon (PyTorch's default, as in the reference).
        dropout (`float`, defaults to 0.0): Dropout inside the ResBlocks.
        embedding_scale (`float`, defaults to 1.0):
            Multiplies the noise level before the sinusoids. WaveGrad's variant uses 5000 (with period 10000).
        embedding_max_period (`float`, defaults to 5000.0):
            Period base of the sinusoidal embedding: frequencies `exp(-i ln(max_period) / (C/2 - 1))`.
        embedding_dim_multiplier (`int`, defaults to 4): The embedding MLP maps C to `multiplier * C` channels.
        patch_size (`int`, defaults to 1):
            Beyond SR3: with `p > 1` the input is cut into p x p patches (`pixel_unshuffle`, the noisy image and the
            condition each to `3 p^2` channels) before `conv_in`, and `conv_out` makes `out_channels p^2` channels
            that `pixel_shuffle` puts back, so the whole UNet runs at 1/p of the resolution, as pixel-space diffusion
            models do to avoid full-resolution feature maps (simple diffusion, Hoogeboom et al., 2023). With p = the
            upscaling factor it runs at the low resolution, like the predictor. 1 (no patching) is the reference.
        scale (`int`, *optional*):
            The upscaling factor the UNet was trained for (its condition is the low-resolution image upsampled
            x`scale`). Only recorded, so that [`SR3Pipeline`] can check its own `scale` against it; the network runs at
            any factor. `train_sr3.py` sets it; `None` (models saved before) means unknown.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        condition_channels: int = 3,
        out_channels: int = 3,
        block_out_channels: Tuple[int, ...] = (56, 112, 224, 224, 448, 448),
        layers_per_block: int = 3,
        attention_depths: Tuple[int, ...] = (4,),
        mid_block_attention: bool = True,
        num_attention_heads: int = 1,
        attention_variant: str = "softmax",
        norm_num_groups: int = 8,
        norm_eps: float = 1e-5,
        dropout: float = 0.0,
        embedding_scale: float = 1.0,
        embedding_max_period: float = 5000.0,
        embedding_dim_multiplier: int = 4,
        patch_size: int = 1,
        scale: Optional[int] = None,
    ):
        super().__init__()
        self._check_config()
        num_depths = len(block_out_channels)
        base_channels = block_out_channels[0]
        embedding_dim = base_channels * embedding_dim_multiplier

        # Noise-level embedding: sinusoids of sqrt(gamma), then Linear -> SiLU -> Linear (SPEC section 1).
        self.noise_level_embedding = TimestepEmbedding(base_channels, embedding_dim)

        patch_area = patch_size**2
        self.conv_in = nn.Conv2d(
            (in_channels + condition_channels) * patch_area, base_channels, kernel_size=3, padding=1
        )

        self.down_blocks = nn.ModuleList()
        output_channel = base_channels
        for depth, channels in enumerate(block_out_channels):
            input_channel, output_channel = output_channel, channels
            has_attention = depth in attention_depths
            self.down_blocks.append(
                get_down_block(
                    "AttnDownBlock2D" if has_attention else "DownBlock2D",
                    num_layers=layers_per_block,
                    in_channels=input_channel,
                    out_channels=output_channel,
                    temb_channels=embedding_dim,
                    add_downsample=depth < num_depths - 1,
                    resnet_eps=norm_eps,
                    resnet_act_fn="silu",
                    resnet_groups=norm_num_groups,
                    attention_head_dim=output_channel // num_attention_heads,
                    downsample_padding=1,
                    downsample_type="conv",
                    dropout=dropout,
                )
            )

        self.mid_block = UNetMidBlock2D(
            in_channels=block_out_channels[-1],
            temb_channels=embedding_dim,
            dropout=dropout,
            resnet_eps=norm_eps,
            resnet_act_fn="silu",
            resnet_groups=norm_num_groups,
            attention_head_dim=block_out_channels[-1] // num_attention_heads,
            add_attention=mid_block_attention,
        )

        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        output_channel = reversed_channels[0]
        for index, channels in enumerate(reversed_channels):
            depth = num_depths - 1 - index
            prev_output_channel, output_channel = output_channel, channels
            # Skips from the down path arrive with the channels of the depth below (or this depth's input channels).
            input_channel = reversed_channels[min(index + 1, num_depths - 1)]
            has_attention = depth in attention_depths
            self.up_blocks.append(
                get_up_block(
                    "AttnUpBlock2D" if has_attention else "UpBlock2D",
                    num_layers=layers_per_block + 1,
                    in_channels=input_channel,
                    out_channels=output_channel,
                    prev_output_channel=prev_output_channel,
                    temb_channels=embedding_dim,
                    add_upsample=depth > 0,
                    resnet_eps=norm_eps,
                    resnet_act_fn="silu",
                    resnet_groups=norm_num_groups,
                    attention_head_dim=output_channel // num_attention_heads,
                    upsample_type="conv",
                    dropout=dropout,
                )
            )

        self.conv_norm_out = nn.GroupNorm(num_groups=norm_num_groups, num_channels=base_channels, eps=norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(base_channels, out_channels * patch_area, kernel_size=3, padding=1)

        self._init_weights()
        if attention_variant == "reference-disabled":
            self.set_attn_processor(ReferenceDisabledAttnProcessor())

    def _check_config(self) -> None:
        config = self.config
        scale = config.scale
        if scale is not None and (not isinstance(scale, int) or isinstance(scale, bool) or scale < 1):
            raise ValueError(f"`scale` must be a positive integer upscaling factor or None, got {config.scale!r}.")
        channels = tuple(config.block_out_channels)
        if len(channels) == 0:
            raise ValueError("`block_out_channels` must name at least one depth, e.g. (56, 112, 224, 224, 448, 448).")
        for value in channels:
            if value <= 0 or value % config.norm_num_groups != 0:
                raise ValueError(
                    f"Every entry of `block_out_channels` {channels} must be a positive multiple of "
                    f"`norm_num_groups`={config.norm_num_groups}; change one of them."
                )
            if value % config.num_attention_heads != 0:
                raise ValueError(
                    f"Every entry of `block_out_channels` {channels} must be divisible by "
                    f"`num_attention_heads`={config.num_attention_heads}."
                )
        bad_depths = [depth for depth in config.attention_depths if not 0 <= depth < len(channels)]
        if bad_depths:
            raise ValueError(
                f"`attention_depths` {tuple(config.attention_depths)} names depths {bad_depths} that do not exist; "
                f"this model has depths 0..{len(channels) - 1} (one per entry of `block_out_channels`)."
            )
        patch_size = config.patch_size
        if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1:
            raise ValueError(f"`patch_size` must be a positive integer (1: no patching), got {patch_size!r}.")
        if config.layers_per_block < 1:
            raise ValueError(f"`layers_per_block` must be at least 1, got {config.layers_per_block}.")
        if config.attention_variant not in ATTENTION_VARIANTS:
            raise ValueError(
                f"`attention_variant` must be one of {ATTENTION_VARIANTS}, got {config.attention_variant!r}."
            )
        if not 0.0 <= config.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {config.dropout}.")
        if config.embedding_max_period <= 1 or channels[0] < 4:
            raise ValueError(
                "The noise-level embedding needs `embedding_max_period` > 1 and at least 4 base channels, got "
                f"{config.embedding_max_period} and {channels[0]}."
            )

    def _init_weights(self) -> None:
        """The reference's init: xavier-uniform weights, zero biases; the last layer of each residual branch and the
        output conv start near zero (xavier with gain sqrt(1e-10)), so every block starts close to the identity."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        near_zero = [self.conv_out]
        for module in self.modules():
            if isinstance(module, ResnetBlock2D):
                near_zero.append(module.conv2)
            elif isinstance(module, Attention):
                near_zero.append(module.to_out[0])
        for layer in near_zero:
            nn.init.xavier_uniform_(layer.weight, gain=1e-5)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "SR3UNet2DModel":
        """A freshly initialised model of a published preset (`"sr3-64-256"` or `"sr3-32-128"`), with optional overrides."""
        if name not in SR3_UNET_PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(SR3_UNET_PRESETS)}.")
        return cls(**{**SR3_UNET_PRESETS[name], **overrides})

    @property
    def downsample_factor(self) -> int:
        """Total downsampling of the UNet (patching, then halving per depth): input height and width must be multiples
        of this."""
        return self.config.patch_size * 2 ** (len(self.config.block_out_channels) - 1)

    def _check_inputs(self, sample: torch.Tensor, condition: torch.Tensor) -> None:
        for name, tensor, channels in (
            ("sample", sample, self.config.in_channels),
            ("condition", condition, self.config.condition_channels),
        ):
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"`{name}` must be a torch.Tensor, got {type(tensor).__name__}.")
            if tensor.ndim != 4 or tensor.shape[1] != channels:
                raise ValueError(
                    f"`{name}` must have shape (batch, {channels}, height, width), got {tuple(tensor.shape)}."
                )
        if sample.shape[0] != condition.shape[0] or sample.shape[2:] != condition.shape[2:]:
            raise ValueError(
                f"`sample` {tuple(sample.shape)} and `condition` {tuple(condition.shape)} must have the same batch size "
                "and spatial size: the condition is the low-resolution image already upsampled to the output size."
            )
        height, width = sample.shape[2:]
        factor = self.downsample_factor
        if height % factor or width % factor:
            patching = f"cuts {self.config.patch_size}-pixel patches and " if self.config.patch_size > 1 else ""
            raise ValueError(
                f"Height and width must be multiples of {factor} (this UNet {patching}halves them "
                f"{len(self.config.block_out_channels) - 1} times), got {height}x{width}; pad the input first "
                "(SR3Pipeline does this for you)."
            )

    def _noise_level_tensor(self, noise_level: Union[torch.Tensor, float], batch_size: int, device) -> torch.Tensor:
        if isinstance(noise_level, (int, float)):
            if not 0.0 <= noise_level <= 1.0:
                raise ValueError(f"`noise_level` is sqrt(gamma) and must lie in [0, 1], got {noise_level}.")
            noise_level = torch.tensor([float(noise_level)], device=device)
        if not isinstance(noise_level, torch.Tensor):
            raise TypeError(f"`noise_level` must be a float or a torch.Tensor, got {type(noise_level).__name__}.")
        noise_level = noise_level.to(device).reshape(-1)
        if noise_level.numel() == 1:
            noise_level = noise_level.expand(batch_size)
        if noise_level.numel() != batch_size:
            raise ValueError(
                f"`noise_level` must hold one value or one per batch element ({batch_size}), got {noise_level.numel()}."
            )
        return noise_level

    def forward(
        self,
        sample: torch.Tensor,
        noise_level: Union[torch.Tensor, float],
        condition: torch.Tensor,
        return_dict: bool = True,
    ) -> Union[SR3UNet2DOutput, Tuple[torch.Tensor]]:
        r"""
        Predict the noise in `sample`.

        Args:
            sample (`torch.Tensor` of shape `(batch, in_channels, height, width)`):
                The noisy high-resolution image x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) epsilon, in [-1, 1] scale.
            noise_level (`torch.Tensor` of shape `(batch,)` or `()`, or `float`):
                The continuous noise level sqrt(gamma) in [0, 1] (not an integer timestep; SR3 section 2.4).
            condition (`torch.Tensor` of shape `(batch, condition_channels, height, width)`):
                The low-resolution image upsampled to the output size, in [-1, 1].
            return_dict (`bool`, defaults to `True`): Return an [`SR3UNet2DOutput`] instead of a tuple.

        Returns:
            [`SR3UNet2DOutput`] or `tuple`: the predicted noise, `(batch, out_channels, height, width)`.
        """
        self._check_inputs(sample, condition)
        noise_level = self._noise_level_tensor(noise_level, sample.shape[0], sample.device)

        # 1. Noise-level embedding: emb = [sin(s f_i), cos(s f_i)], f_i = exp(-i ln(max_period) / (C/2 - 1)), s = scale * sqrt(gamma).
        embedding = get_timestep_embedding(
            noise_level,
            self.config.block_out_channels[0],
            flip_sin_to_cos=False,
            downscale_freq_shift=1,
            scale=self.config.embedding_scale,
            max_period=self.config.embedding_max_period,
        )
        embedding = self.noise_level_embedding(embedding.to(dtype=self.dtype))

        # 2. The condition enters only here, concatenated after the noisy image (SPEC section 1); with patch_size p,
        # cut into p x p patches: channel c's p^2 pixels of a patch become channels c p^2 ... (c + 1) p^2 - 1.
        model_input = torch.cat([sample, condition.to(sample.dtype)], dim=1)
        if self.config.patch_size > 1:
            model_input = F.pixel_unshuffle(model_input, self.config.patch_size)
        hidden_states = self.conv_in(model_input)

        # 3. Down path, keeping every skip: the input conv, each ResBlock and each downsampler output.
        skips = (hidden_states,)
        for down_block in self.down_blocks:
            hidden_states, block_skips = down_block(hidden_states, embedding)
            skips += block_skips

        # 4. Middle: ResBlock -> attention -> ResBlock.
        hidden_states = self.mid_block(hidden_states, embedding)

        # 5. Up path: each ResBlock consumes one skip, deepest first.
        for up_block in self.up_blocks:
            block_skips = skips[-len(up_block.resnets) :]
            skips = skips[: -len(up_block.resnets)]
            hidden_states = up_block(hidden_states, block_skips, embedding)

        # 6. Output head: GroupNorm -> SiLU -> conv3x3.
        noise_pred = self.conv_out(self.conv_act(self.conv_norm_out(hidden_states)))
        if self.config.patch_size > 1:
            noise_pred = F.pixel_shuffle(noise_pred, self.config.patch_size)

        if not return_dict:
            return (noise_pred,)
        return SR3UNet2DOutput(sample=noise_pred)
