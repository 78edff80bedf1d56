import math

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from sr3_diffusers import SR3UNet2DModel
from tests.testing_utils import TINY_UNET_CONFIG, randomise_weights


TINY_CONFIG = TINY_UNET_CONFIG


def tiny_inputs(batch_size=2, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch_size, 3, size, size, generator=generator)
    condition = torch.rand(batch_size, 3, size, size, generator=generator) * 2 - 1
    noise_level = torch.rand(batch_size, generator=generator)
    return sample, noise_level, condition


def expected_parameter_count(base_channels, multipliers=(1, 2, 4, 4, 8, 8), blocks=3, attention_depth=4):
    """Count the SPEC section 1 architecture by hand: conv, GroupNorm, Linear, ResBlock and attention sizes."""

    def conv(c_in, c_out, kernel=3):
        return c_in * c_out * kernel * kernel + c_out

    def linear(c_in, c_out):
        return c_in * c_out + c_out

    def norm(c):
        return 2 * c

    embedding_dim = 4 * base_channels

    def resblock(c_in, c_out):
        skip = conv(c_in, c_out, kernel=1) if c_in != c_out else 0
        return norm(c_in) + conv(c_in, c_out) + linear(embedding_dim, c_out) + norm(c_out) + conv(c_out, c_out) + skip

    def attention(c):
        return norm(c) + 3 * linear(c, c) + linear(c, c)

    channels = [base_channels * m for m in multipliers]
    total = linear(base_channels, embedding_dim) + linear(embedding_dim, embedding_dim) + conv(6, base_channels)
    skip_channels = [base_channels]
    current = base_channels
    for depth, out in enumerate(channels):
        for _ in range(blocks):
            total += resblock(current, out) + (attention(out) if depth == attention_depth else 0)
            current = out
            skip_channels.append(current)
        if depth < len(channels) - 1:
            total += conv(current, current)
            skip_channels.append(current)
    total += resblock(current, current) + attention(current) + resblock(current, current)
    for depth in reversed(range(len(channels))):
        out = channels[depth]
        for _ in range(blocks + 1):
            total += resblock(current + skip_channels.pop(), out) + (attention(out) if depth == attention_depth else 0)
            current = out
        if depth > 0:
            total += conv(current, current)
    return total + norm(base_channels) + conv(base_channels, 3)


@pytest.mark.parametrize("preset, base_channels, millions", [("sr3-64-256", 56, 110), ("sr3-32-128", 64, 144)])
def test_preset_parameter_count_matches_the_reference_architecture(preset, base_channels, millions):
    model = SR3UNet2DModel.from_preset(preset)
    count = sum(parameter.numel() for parameter in model.parameters())
    assert count == expected_parameter_count(base_channels)
    assert abs(count / 1e6 - millions) < 1.0


def test_default_model_is_the_64_to_256_preset():
    default, preset = SR3UNet2DModel().config, SR3UNet2DModel.from_preset("sr3-64-256").config
    assert {key: value for key, value in default.items() if not key.startswith("_")} == {
        key: value for key, value in preset.items() if not key.startswith("_")
    }


def test_attention_runs_at_16x16_down_and_up_and_8x8_in_the_middle_for_a_256_input():
    model = SR3UNet2DModel.from_preset("sr3-64-256").eval()
    seen_sizes = []
    for module in model.modules():
        if isinstance(module, Attention):
            module.register_forward_hook(lambda module, args, output: seen_sizes.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        model(torch.zeros(1, 3, 256, 256), 0.5, torch.zeros(1, 3, 256, 256))
    # 3 down ResBlocks + 4 up ResBlocks at depth 4 (16x16), one attention in the middle (8x8).
    assert sorted(seen_sizes) == [(8, 8)] + [(16, 16)] * 7


def test_noise_level_embedding_is_the_reference_sinusoid():
    model = SR3UNet2DModel(**TINY_CONFIG)
    captured = []
    model.noise_level_embedding.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    noise_level = torch.tensor([0.0, 0.25, 1.0])
    model(torch.zeros(3, 3, 16, 16), noise_level, torch.zeros(3, 3, 16, 16))
    half = 8 // 2
    frequencies = np.exp(-np.arange(half) * np.log(5000.0) / (half - 1))
    assert frequencies[0] == 1.0  # highest frequency 1, lowest 1/5000
    angles = noise_level.numpy()[:, None] * frequencies[None, :]
    expected = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    np.testing.assert_allclose(captured[0].numpy(), expected, atol=1e-6)


def test_wavegrad_embedding_variant_is_one_config_change_away():
    model = SR3UNet2DModel(**TINY_CONFIG, embedding_scale=5000.0, embedding_max_period=10000.0)
    captured = []
    model.noise_level_embedding.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    model(torch.zeros(1, 3, 16, 16), 0.3, torch.zeros(1, 3, 16, 16))
    frequencies = np.exp(-np.arange(4) * np.log(10000.0) / 3)
    angles = 5000.0 * 0.3 * frequencies
    np.testing.assert_allclose(captured[0][0].numpy(), np.concatenate([np.sin(angles), np.cos(angles)]), atol=2e-3)


def test_condition_is_concatenated_after_the_noisy_sample():
    model = randomise_weights(SR3UNet2DModel(**TINY_CONFIG)).eval()
    sample, noise_level, condition = tiny_inputs()
    captured = []
    model.conv_in.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    model(sample, noise_level, condition)
    torch.testing.assert_close(captured[0], torch.cat([sample, condition], dim=1))


def test_initial_model_predicts_near_zero_and_output_layers_start_near_zero():
    model = SR3UNet2DModel(**TINY_CONFIG)
    sample, noise_level, condition = tiny_inputs()
    assert model(sample, noise_level, condition).sample.abs().max() < 1e-3
    assert model.conv_out.weight.abs().max() < 1e-4
    assert all(bias.abs().max() == 0 for name, bias in model.named_parameters() if name.endswith("bias") and "norm" not in name)


def test_return_dict_false_gives_a_tuple_and_float_noise_level_equals_tensor():
    model = randomise_weights(SR3UNet2DModel(**TINY_CONFIG)).eval()
    sample, _, condition = tiny_inputs()
    as_tuple = model(sample, 0.7, condition, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    torch.testing.assert_close(as_tuple[0], model(sample, torch.tensor([0.7, 0.7]), condition).sample)


def test_reference_disabled_attention_reproduces_x_plus_projection_of_groupnorm():
    config = dict(TINY_CONFIG, attention_variant="reference-disabled")
    model = randomise_weights(SR3UNet2DModel(**config)).eval()
    attention = next(module for module in model.modules() if isinstance(module, Attention))
    hidden = torch.randn(2, 16, 4, 4)
    normed = torch.nn.functional.group_norm(hidden, 4, attention.group_norm.weight, attention.group_norm.bias, 1e-5)
    projected = torch.einsum("oc,bchw->bohw", attention.to_out[0].weight, normed) + attention.to_out[0].bias[:, None, None]
    torch.testing.assert_close(attention(hidden), hidden + projected)
    # The working variant differs on the same weights.
    working = SR3UNet2DModel(**TINY_CONFIG)
    working.load_state_dict(model.state_dict())
    sample, noise_level, condition = tiny_inputs()
    assert not torch.allclose(working(sample, noise_level, condition).sample, model(sample, noise_level, condition).sample)


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path):
    model = randomise_weights(SR3UNet2DModel(**TINY_CONFIG)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = SR3UNet2DModel.from_pretrained(tmp_path).eval()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    sample, noise_level, condition = tiny_inputs()
    # Memory-mapped safetensors weights can be aligned differently, which may change one float rounding.
    torch.testing.assert_close(model(sample, noise_level, condition).sample, loaded(sample, noise_level, condition).sample,
                               atol=1e-6, rtol=0)
    reference_variant = SR3UNet2DModel(**TINY_CONFIG, attention_variant="reference-disabled")
    reference_variant.save_pretrained(tmp_path / "reference")
    reloaded = SR3UNet2DModel.from_pretrained(tmp_path / "reference")
    assert reloaded.config.attention_variant == "reference-disabled"
    assert all(type(p).__name__ == "ReferenceDisabledAttnProcessor" for p in reloaded.attn_processors.values())


def test_torch_dtype_and_device_moves(tmp_path):
    model = randomise_weights(SR3UNet2DModel(**TINY_CONFIG)).eval()
    model.save_pretrained(tmp_path)
    half = SR3UNet2DModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    sample, noise_level, condition = tiny_inputs()
    low = half(sample.bfloat16(), noise_level, condition.bfloat16()).sample
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    full = model(sample, noise_level, condition).sample
    assert (low.float() - full).abs().max() < 0.05 * full.abs().max()
    assert model.to("cpu", torch.float64)(sample.double(), noise_level, condition.double()).sample.dtype == torch.float64


def test_gradient_checkpointing_gives_the_same_gradients():
    model = randomise_weights(SR3UNet2DModel(**TINY_CONFIG))
    sample, noise_level, condition = tiny_inputs()
    model(sample, noise_level, condition).sample.square().mean().backward()
    plain = [parameter.grad.clone() for parameter in model.parameters()]
    model.zero_grad()
    model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing
    model(sample, noise_level, condition).sample.square().mean().backward()
    for expected, parameter in zip(plain, model.parameters()):
        torch.testing.assert_close(parameter.grad, expected)


def test_any_multiple_of_the_downsampling_works_and_the_model_is_fully_convolutional():
    model = SR3UNet2DModel(**TINY_CONFIG)
    assert model.downsample_factor == 2
    assert model(torch.zeros(1, 3, 6, 10), 0.1, torch.zeros(1, 3, 6, 10)).sample.shape == (1, 3, 6, 10)
    assert SR3UNet2DModel().downsample_factor == 32


def test_patched_unet_runs_at_one_patch_per_pixel_and_puts_the_patches_back():
    """With patch_size p the UNet sees the p x p patches of (sample, condition) as channels and its conv_out's channels
    go back to p x p pixels: its output is the unpatched UNet's, run on pixel_unshuffle(input), pixel-shuffled."""
    model = randomise_weights(SR3UNet2DModel(**TINY_CONFIG, patch_size=4))
    assert model.downsample_factor == 8
    assert model.conv_in.in_channels == 6 * 16 and model.conv_out.out_channels == 3 * 16
    unpatched = SR3UNet2DModel(**{**TINY_CONFIG, "in_channels": 48, "condition_channels": 48, "out_channels": 48})
    unpatched.load_state_dict(model.state_dict())
    sample, noise_level, condition = tiny_inputs(size=32)
    with torch.no_grad():
        output = model(sample, noise_level, condition).sample
        patches = torch.nn.functional.pixel_unshuffle(torch.cat([sample, condition], dim=1), 4)
        # The unpatched model concatenates its own two inputs: split the patches back into sample and condition.
        expected = unpatched(patches[:, :48], noise_level, patches[:, 48:]).sample
    assert output.shape == sample.shape
    torch.testing.assert_close(output, torch.nn.functional.pixel_shuffle(expected, 4))
    with pytest.raises(ValueError, match="cuts 4-pixel patches and halves them 1 times"):
        model(torch.zeros(1, 3, 12, 12), 0.5, torch.zeros(1, 3, 12, 12))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"patch_size": 0}, "`patch_size` must be a positive integer"),
        ({"patch_size": 2.0}, "`patch_size` must be a positive integer"),
        ({"block_out_channels": (10, 16)}, "multiple of `norm_num_groups`"),
        ({"attention_depths": (2,)}, "do not exist"),
        ({"block_out_channels": ()}, "at least one depth"),
        ({"attention_variant": "none"}, "attention_variant"),
        ({"layers_per_block": 0}, "layers_per_block"),
        ({"num_attention_heads": 3}, "num_attention_heads"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_configs_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        SR3UNet2DModel(**{**TINY_CONFIG, **overrides})


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match="sr3-32-128"):
        SR3UNet2DModel.from_preset("sr3-16-128")


@pytest.mark.parametrize(
    "sample_shape, condition_shape, noise_level, error, message",
    [
        ((1, 4, 16, 16), (1, 3, 16, 16), 0.5, ValueError, "sample"),
        ((1, 3, 16, 16), (1, 3, 8, 8), 0.5, ValueError, "same batch size and spatial size"),
        ((1, 3, 15, 16), (1, 3, 15, 16), 0.5, ValueError, "multiples of 2"),
        ((3, 16, 16), (3, 16, 16), 0.5, ValueError, "shape"),
        ((2, 3, 16, 16), (2, 3, 16, 16), torch.ones(3), ValueError, "one per batch element"),
        ((1, 3, 16, 16), (1, 3, 16, 16), 1.5, ValueError, r"\[0, 1\]"),
        ((1, 3, 16, 16), (1, 3, 16, 16), "0.5", TypeError, "noise_level"),
    ],
)
def test_bad_inputs_raise_clear_errors(sample_shape, condition_shape, noise_level, error, message):
    model = SR3UNet2DModel(**TINY_CONFIG)
    with pytest.raises(error, match=message):
        model(torch.zeros(sample_shape), noise_level, torch.zeros(condition_shape))


def test_non_tensor_sample_is_a_type_error():
    with pytest.raises(TypeError, match="sample"):
        SR3UNet2DModel(**TINY_CONFIG)(np.zeros((1, 3, 16, 16)), 0.5, torch.zeros(1, 3, 16, 16))


def test_embedding_frequency_count_matches_half_the_base_channels():
    model = SR3UNet2DModel(**TINY_CONFIG)
    assert model.noise_level_embedding.linear_1.in_features == 8
    assert model.noise_level_embedding.linear_2.out_features == 32
    assert math.isclose(model.config.embedding_max_period, 5000.0)
